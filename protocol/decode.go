package protocol

import (
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// errTrailingBytes is returned by decodeBody for a request kmsg decodes without using all
// of it: a length field that lied, such as a negative array length (which kmsg reads as
// an empty array) with the array's elements after it.
var errTrailingBytes = errors.New("protocol: request body not fully decoded")

var encodePool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// decodeBody decodes body into req and checks that re-encoding req gives back as many
// bytes: requests are written canonically by every client, so a difference means part of
// the body was skipped. Produce records are not re-encoded, only counted.
func decodeBody(req kmsg.Request, body []byte) error {
	if err := req.ReadFrom(body); err != nil {
		return err
	}
	n := encodedLen(req)
	if n != len(body) {
		return fmt.Errorf("%w: %d bytes, %d decoded", errTrailingBytes, len(body), n)
	}
	return nil
}

// encodedLen is the length of req's encoding.
func encodedLen(req kmsg.Request) int {
	bp := encodePool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 1<<20 {
			encodePool.Put(bp)
		}
	}()
	p, ok := req.(*kmsg.ProduceRequest)
	if !ok {
		*bp = req.AppendTo((*bp)[:0])
		return len(*bp)
	}
	// Encode without the record batches (as nulls) and add their encoded sizes.
	flex := p.IsFlexible()
	var saved [][]byte
	extra := 0
	for i := range p.Topics {
		for j := range p.Topics[i].Partitions {
			rp := &p.Topics[i].Partitions[j]
			saved = append(saved, rp.Records)
			if rp.Records != nil {
				if flex {
					extra += len(kbin.AppendUvarint(nil, uint32(len(rp.Records)+1))) - 1 + len(rp.Records)
				} else {
					extra += len(rp.Records)
				}
			}
			rp.Records = nil
		}
	}
	*bp = req.AppendTo((*bp)[:0])
	k := 0
	for i := range p.Topics {
		for j := range p.Topics[i].Partitions {
			p.Topics[i].Partitions[j].Records = saved[k]
			k++
		}
	}
	return len(*bp) + extra
}

// decoded is a request frame taken apart.
type decoded struct {
	header
	api *api
	// req is the decoded body; nil for an ApiVersions version above ours, which is
	// answered without decoding.
	req kmsg.Request
}

// requestError says why a frame cannot be served; the connection is closed with a log
// line made of what and err.
type requestError struct {
	what string
	h    header
	err  error
}

func (e *requestError) Error() string { return e.what + ": " + e.err.Error() }
func (e *requestError) Unwrap() error { return e.err }

var (
	errUnknownKey     = errors.New("protocol: unknown api key")
	errUnsupportedVer = errors.New("protocol: unsupported api version")
)

// decodeRequest parses the header of a frame (without its size prefix), finds the
// handler and decodes the body.
func decodeRequest(frame []byte) (decoded, error) {
	var d decoded
	h, err := parseHeader(frame)
	if err != nil {
		return d, &requestError{what: "malformed request header", h: h, err: err}
	}
	d.header = h
	a := lookup(h.key)
	if a == nil {
		return d, &requestError{what: "unsupported api key", h: h, err: errUnknownKey}
	}
	d.api = a
	if h.key == int16(kmsg.ApiVersions) && h.version > a.max {
		return d, nil
	}
	if h.version < a.min || h.version > a.max {
		return d, &requestError{what: "unsupported api version", h: h,
			err: fmt.Errorf("%w: %d not in %d-%d", errUnsupportedVer, h.version, a.min, a.max)}
	}
	req := kmsg.RequestForKey(h.key)
	req.SetVersion(h.version)
	body := h.body
	if req.IsFlexible() {
		if body, err = skipHeaderTags(body); err != nil {
			return d, &requestError{what: "malformed request header", h: h, err: err}
		}
	}
	if err := decodeBody(req, body); err != nil {
		return d, &requestError{what: "malformed request", h: h, err: err}
	}
	d.req = req
	return d, nil
}
