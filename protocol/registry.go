package protocol

import (
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Handler serves one decoded request. It returns the response to send, or nil to send none
// (acks=0 produce). A non-nil error closes the connection after the responses already
// queued on it are written; Kafka errors belong in the response, not here.
//
// Handlers run on the connection's reader goroutine, one request at a time per connection,
// so the responses leave in request order. A handler that waits (a long-poll fetch) holds
// back only its own connection. A handler may instead return a deferredResponse after
// r.holdFrame(): the writer completes it in order (see 00_produce.go).
type Handler func(s *Server, r *Request) (kmsg.Response, error)

// api is one row of the registration table.
type api struct {
	key      int16
	min, max int16
	handle   Handler
}

// apis is the registration table, indexed by API key; filled by init functions only.
var apis [maxAPIKey + 1]*api

// maxAPIKey bounds the table; Kafka keys are small and dense.
const maxAPIKey = 127

// register adds an API key with the versions this server serves. Every file named after
// an API key calls it from init, so ApiVersions lists exactly what is implemented:
//
//	func init() { register(kmsg.Produce, 3, 11, (*Server).produce) }
func register(key kmsg.Key, min, max int16, h Handler) {
	k := int16(key)
	if k < 0 || k > maxAPIKey {
		panic(fmt.Sprintf("protocol: register key %d out of range", k))
	}
	if apis[k] != nil {
		panic(fmt.Sprintf("protocol: key %d (%s) registered twice", k, kmsg.NameForKey(k)))
	}
	if min < 0 || min > max {
		panic(fmt.Sprintf("protocol: key %d: bad version range %d-%d", k, min, max))
	}
	// kmsg must know every version we claim, or decoding would misread the body.
	if req := kmsg.RequestForKey(k); req == nil || req.MaxVersion() < max {
		panic(fmt.Sprintf("protocol: key %d: kmsg does not know version %d", k, max))
	}
	apis[k] = &api{key: k, min: min, max: max, handle: h}
}

// lookup returns the registration of key, or nil.
func lookup(key int16) *api {
	if key < 0 || key > maxAPIKey {
		return nil
	}
	return apis[key]
}

// registered returns the table sorted by key.
func registered() []api {
	var out []api
	for _, a := range apis {
		if a != nil {
			out = append(out, *a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}
