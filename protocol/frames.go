package protocol

import (
	"math/bits"
	"sync"
	"unsafe"
)

// Produce frames are the large ones; their buffers are reused through size-class pools
// (powers of two from 64 KiB to 64 MiB), which keeps the produce path free of large
// allocations and the garbage collector quiet. Only Produce frames are pooled: its handler
// keeps no reference to the frame once it returns (partition.ProduceInPlace guarantees it
// for the records), while other handlers may keep slices of their requests.
const (
	minPooledFrame = 64 << 10
	maxPooledFrame = 64 << 20
	frameClasses   = 11 // 64 KiB << 0..10
)

var framePools [frameClasses]sync.Pool

func frameClass(n int) int {
	if n <= minPooledFrame {
		return 0
	}
	return bits.Len(uint(n-1)) - bits.Len(uint(minPooledFrame-1))
}

// getFrame returns a buffer of length n, pooled when n fits a class.
func getFrame(n int) []byte {
	if n > maxPooledFrame {
		return make([]byte, n)
	}
	c := frameClass(n)
	if b, ok := framePools[c].Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, minPooledFrame<<c)
}

// putFrame gives a buffer from getFrame back.
func putFrame(b []byte) {
	if cap(b) > maxPooledFrame || cap(b) < minPooledFrame || cap(b)&(cap(b)-1) != 0 {
		return
	}
	b = b[:cap(b)]
	framePools[frameClass(cap(b))].Put(&b)
}

// withPrefixByte returns sub extended by the byte before it in frame, when sub lies
// inside frame past its first byte: the spare byte partition.ProduceInPlace needs, which
// in a decoded request is the last byte of the records' length prefix, already read.
func withPrefixByte(frame, sub []byte) ([]byte, bool) {
	if len(sub) == 0 || len(frame) == 0 {
		return nil, false
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(frame)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(sub)))
	if p <= base || p+uintptr(len(sub)) > base+uintptr(len(frame)) {
		return nil, false
	}
	off := int(p - base)
	return frame[off-1 : off+len(sub)], true
}
