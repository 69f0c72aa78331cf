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
