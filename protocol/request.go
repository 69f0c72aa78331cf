package protocol

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
)

// Request is one decoded request as a handler sees it.
type Request struct {
	Key           int16
	Version       int16
	CorrelationID int32
	ClientID      string
	// Body is the decoded request; its dynamic type is the kmsg type for Key
	// (*kmsg.ProduceRequest for Produce) with its Version set.
	Body kmsg.Request
	// Ctx is cancelled when the connection closes or the server stops hard; a graceful
	// shutdown leaves it alive so in-flight writes finish, and closes Draining instead.
	Ctx context.Context
	// Log carries the connection and request fields.
	Log *zap.Logger
	// Remote is the client's address.
	Remote string

	conn *conn
	// frame is the request's bytes; Body's byte fields point into it.
	frame []byte
	// held is set by holdFrame: the frame lives until the response is written.
	held bool
	// readyBy ends the waits of this request for partitions whose leadership this node
	// is taking up (awaitReady); zero until the first.
	readyBy time.Time
}

// Errors returned by parseHeader; each closes the connection.
var (
	errFrameTooShort = errors.New("protocol: frame shorter than a request header")
	errBadHeader     = errors.New("protocol: malformed request header")
)

// header is the part of a request before its body.
type header struct {
	key, version  int16
	correlationID int32
	clientID      string
	// body is what follows the header (and its tagged fields, when flexible).
	body []byte
}

// minHeaderLen is key + version + correlation ID + client ID length.
const minHeaderLen = 2 + 2 + 4 + 2

// parseHeader reads the fixed part of request header v0-v2 from a frame (without its size
// prefix): key, version, correlation ID and the client ID, which stays a non-compact
// nullable string in every header version. h.body is what follows; for a flexible request
// (header v2) it starts with the header's tagged fields, which skipHeaderTags removes.
func parseHeader(frame []byte) (header, error) {
	var h header
	if len(frame) < minHeaderLen {
		return h, errFrameTooShort
	}
	h.key = int16(binary.BigEndian.Uint16(frame[0:]))
	h.version = int16(binary.BigEndian.Uint16(frame[2:]))
	h.correlationID = int32(binary.BigEndian.Uint32(frame[4:]))
	r := kbin.Reader{Src: frame[8:]}
	if id := r.NullableString(); id != nil {
		h.clientID = *id
	}
	if !r.Ok() {
		return h, fmt.Errorf("%w: client id", errBadHeader)
	}
	h.body = r.Src
	return h, nil
}

// skipHeaderTags removes request header v2's tagged fields from the front of body.
func skipHeaderTags(body []byte) ([]byte, error) {
	r := kbin.Reader{Src: body}
	kmsg.SkipTags(&r)
	if !r.Ok() {
		return nil, fmt.Errorf("%w: tagged fields", errBadHeader)
	}
	return r.Src, nil
}

// timeoutCtx is r.Ctx bounded by a request's TimeoutMillis; none when it is 0 or less.
// Call cancel once the request's waits are over.
func (r *Request) timeoutCtx(timeoutMillis int32) (ctx context.Context, cancel context.CancelFunc) {
	if timeoutMillis <= 0 {
		return r.Ctx, func() {}
	}
	return context.WithTimeout(r.Ctx, time.Duration(timeoutMillis)*time.Millisecond)
}
