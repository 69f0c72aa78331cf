package vfs

import (
	"io"
	"os"
	"slices"
	"syscall"
)

// Default is the real file system.
var Default FS = osFS{}

// OSFile returns the *os.File behind f, for sendfile and the like, and false when f is
// not backed by one (MemFS, FaultFS).
func OSFile(f File) (*os.File, bool) {
	if o, ok := f.(*osFile); ok {
		return o.File, true
	}
	return nil, false
}

type osFS struct{}

type osFile struct {
	*os.File
	fd  int // cached: pwritev and fdatasync on the hot path
	dir bool
}

func wrapOS(f *os.File, err error, dir bool) (File, error) {
	if err != nil {
		return nil, err
	}
	return &osFile{File: f, fd: int(f.Fd()), dir: dir}, nil
}

func (osFS) Create(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	return wrapOS(f, err, false)
}

func (osFS) Open(name string) (File, error) {
	f, err := os.Open(name)
	return wrapOS(f, err, false)
}

func (osFS) OpenReadWrite(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	return wrapOS(f, err, false)
}

func (osFS) OpenDir(name string) (File, error) {
	f, err := os.Open(name)
	return wrapOS(f, err, true)
}

func (osFS) Rename(oldname, newname string) error         { return os.Rename(oldname, newname) }
func (osFS) Remove(name string) error                     { return os.Remove(name) }
func (osFS) RemoveAll(name string) error                  { return os.RemoveAll(name) }
func (osFS) MkdirAll(name string, perm os.FileMode) error { return os.MkdirAll(name, perm) }
func (osFS) Stat(name string) (os.FileInfo, error)        { return os.Stat(name) }

func (osFS) List(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

// Sync is fdatasync(2) for files and fsync(2) for directories.
func (f *osFile) Sync() error {
	if f.dir {
		return f.File.Sync()
	}
	for {
		err := fdatasync(f.fd)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
		}
		return nil
	}
}

// StartWriteback is sync_file_range(2) SYNC_FILE_RANGE_WRITE over [off, off+n).
func (f *osFile) StartWriteback(off, n int64) error {
	if err := startWriteback(f.fd, off, n); err != nil {
		return &os.PathError{Op: "sync_file_range", Path: f.Name(), Err: err}
	}
	return nil
}

// DropCache is posix_fadvise(2) POSIX_FADV_DONTNEED over [off, off+n).
func (f *osFile) DropCache(off, n int64) error {
	if err := fadviseDontNeed(f.fd, off, n); err != nil {
		return &os.PathError{Op: "fadvise", Path: f.Name(), Err: err}
	}
	return nil
}

// WriteVAt writes bufs at off with pwritev(2), looping over short writes.
func (f *osFile) WriteVAt(bufs [][]byte, off int64) (int, error) {
	var iov [8]syscall.Iovec
	if len(bufs) > len(iov) {
		return writeEach(f, bufs, off)
	}
	total := 0
	for {
		n := 0
		for _, b := range bufs {
			if len(b) == 0 {
				continue
			}
			iov[n].Base = &b[0]
			iov[n].SetLen(len(b))
			n++
		}
		if n == 0 {
			return total, nil
		}
		w, err := pwritev(f.fd, iov[:n], off)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return total, &os.PathError{Op: "pwritev", Path: f.Name(), Err: err}
		}
		if w == 0 {
			return total, &os.PathError{Op: "pwritev", Path: f.Name(), Err: io.ErrShortWrite}
		}
		total += w
		off += int64(w)
		// Drop what was written and go again with the rest.
		for w > 0 && len(bufs) > 0 {
			if w >= len(bufs[0]) {
				w -= len(bufs[0])
				bufs = bufs[1:]
				continue
			}
			rest := make([][]byte, len(bufs))
			copy(rest, bufs)
			rest[0] = rest[0][w:]
			bufs = rest
			w = 0
		}
	}
}

func writeEach(f File, bufs [][]byte, off int64) (int, error) {
	total := 0
	for _, b := range bufs {
		n, err := f.WriteAt(b, off+int64(total))
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
