package vfs

import (
	"syscall"
	"unsafe"
)

func fdatasync(fd int) error { return syscall.Fdatasync(fd) }

func pwritev(fd int, iov []syscall.Iovec, off int64) (int, error) {
	n, _, errno := syscall.Syscall6(syscall.SYS_PWRITEV, uintptr(fd),
		uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)), uintptr(off), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
