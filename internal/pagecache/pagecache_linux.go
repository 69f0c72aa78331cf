package pagecache

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Resident reports, per page of the file at path, whether it is in the page cache.
func Resident(path string) ([]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() == 0 {
		return nil, nil
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	defer unix.Munmap(m)
	page := os.Getpagesize()
	vec := make([]byte, (len(m)+page-1)/page)
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		return nil, fmt.Errorf("mincore %s: %w", path, errno)
	}
	out := make([]bool, len(vec))
	for i, v := range vec {
		out[i] = v&1 != 0
	}
	return out, nil
}

// Count counts the resident pages among pages[from:to].
func Count(pages []bool, from, to int) int {
	n := 0
	for _, r := range pages[min(from, len(pages)):min(to, len(pages))] {
		if r {
			n++
		}
	}
	return n
}

// DropWorks reports whether the file system of dir drops pages that fadvise(DONTNEED)
// asks to drop (tmpfs keeps them: it has no disk to read them back from).
func DropWorks(dir string) (bool, error) {
	f, err := os.CreateTemp(dir, "pagecache-probe")
	if err != nil {
		return false, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	const n = 64 << 10
	if _, err := f.Write(make([]byte, n)); err != nil {
		return false, err
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return false, err
	}
	if err := unix.Fadvise(int(f.Fd()), 0, n, unix.FADV_DONTNEED); err != nil {
		return false, nil
	}
	pages, err := Resident(f.Name())
	if err != nil {
		return false, err
	}
	return Count(pages, 0, len(pages)) == 0, nil
}
