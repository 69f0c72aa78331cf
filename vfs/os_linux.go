package vfs

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
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

// fadviseDontNeed is posix_fadvise(fd, off, n, POSIX_FADV_DONTNEED).
func fadviseDontNeed(fd int, off, n int64) error {
	return unix.Fadvise(fd, off, n, unix.FADV_DONTNEED)
}

// startWriteback is sync_file_range(fd, off, n, SYNC_FILE_RANGE_WRITE).
func startWriteback(fd int, off, n int64) error {
	return unix.SyncFileRange(fd, off, n, unix.SYNC_FILE_RANGE_WRITE)
}
