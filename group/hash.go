package group

import "unicode/utf16"

// Partition returns the __consumer_offsets partition that holds group's state when the
// topic has n partitions: Kafka's Utils.abs(groupId.hashCode()) % n, so that every tool and
// broker agrees on it.
func Partition(group string, n int32) int32 {
	if n <= 0 {
		return 0
	}
	return javaAbs(javaHashCode(group)) % n
}

// javaHashCode is Java's String.hashCode: s[0]*31^(k-1) + ... + s[k-1] over the UTF-16 code
// units of s, in 32-bit arithmetic that wraps.
func javaHashCode(s string) int32 {
	var h int32
	for _, r := range s {
		if r < 0x10000 {
			h = 31*h + int32(r)
			continue
		}
		hi, lo := utf16.EncodeRune(r)
		h = 31*h + int32(hi)
		h = 31*h + int32(lo)
	}
	return h
}

// javaAbs is Kafka's Utils.abs: the absolute value, with MinInt32 mapped to 0.
func javaAbs(n int32) int32 {
	switch {
	case n == -1<<31:
		return 0
	case n < 0:
		return -n
	}
	return n
}
