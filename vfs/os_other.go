//go:build !linux

package vfs

import (
	"syscall"
	"unsafe"
)

func fdatasync(fd int) error { return syscall.Fsync(fd) }

// pwritev falls back to one pwrite per buffer.
func pwritev(fd int, iov []syscall.Iovec, off int64) (int, error) {
	total := 0
	for _, v := range iov {
		b := unsafe.Slice(v.Base, v.Len)
		n, err := syscall.Pwrite(fd, b, off+int64(total))
		total += n
		if err != nil {
			return total, err
		}
		if n < len(b) {
			break
		}
	}
	return total, nil
}

// Page cache advice is taken only on Linux.
func fadviseDontNeed(fd int, off, n int64) error { return nil }
func startWriteback(fd int, off, n int64) error  { return nil }
