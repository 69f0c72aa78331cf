package cli

import (
	"math/bits"
	"time"
)

// histogram counts durations in log-linear buckets: exact below 256 ns, then 128 buckets
// per power of two, so a quantile is within 0.8% of the true value. The zero value is
// ready to use; it is not safe for concurrent use.
type histogram struct {
	counts [57 * 128]uint64
	total  uint64
	sum    time.Duration
	min    time.Duration
	max    time.Duration
}

const histSubBits = 7

func histBucket(v uint64) int {
	if v < 1<<(histSubBits+1) {
		return int(v)
	}
	shift := bits.Len64(v) - (histSubBits + 1)
	m := v >> shift // in [128, 256)
	return (shift+1)<<histSubBits + int(m) - 1<<histSubBits
}

// histLow is the smallest value in bucket i; histHigh the smallest of the next.
func histLow(i int) uint64 {
	if i < 1<<(histSubBits+1) {
		return uint64(i)
	}
	shift := i>>histSubBits - 1
	m := uint64(i&(1<<histSubBits-1)) + 1<<histSubBits
	return m << shift
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[histBucket(uint64(d))]++
	if h.total == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.total++
	h.sum += d
}

func (h *histogram) merge(o *histogram) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.total += o.total
	h.sum += o.sum
}

func (h *histogram) reset() { *h = histogram{} }

// quantile returns the value at q (0 < q <= 1): the middle of the bucket holding it,
// clamped to the observed min and max.
func (h *histogram) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(q*float64(h.total) + 0.5)
	rank = min(max(rank, 1), h.total)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := histLow(i), histLow(i+1)
			mid := time.Duration(lo + (hi-lo)/2)
			return min(max(mid, h.min), h.max)
		}
	}
	return h.max
}

func (h *histogram) mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return h.sum / time.Duration(h.total)
}
