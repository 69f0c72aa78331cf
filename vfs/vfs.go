package vfs

import (
	"io"
	"os"
	"path/filepath"
)

// File is an open file. ReadAt and WriteAt may be called concurrently with each other;
// Read and Write use the file's own position and must not be.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.WriterAt
	io.Closer
	// Sync makes the file's data and size durable (fdatasync). A file opened with
	// OpenDir syncs the directory's entries instead.
	Sync() error
	Stat() (os.FileInfo, error)
	Truncate(size int64) error
	Name() string
}

// FS is a file system. Names are slash-separated paths as os uses them.
type FS interface {
	// Create opens name read-write, creating it or truncating it to zero.
	Create(name string) (File, error)
	// Open opens name read-only.
	Open(name string) (File, error)
	// OpenReadWrite opens name read-write, creating it if needed, without truncating.
	OpenReadWrite(name string) (File, error)
	// OpenDir opens a directory so that Sync makes creates, renames and removes in it
	// durable.
	OpenDir(name string) (File, error)
	Rename(oldname, newname string) error
	Remove(name string) error
	RemoveAll(name string) error
	MkdirAll(name string, perm os.FileMode) error
	// List returns the names (not paths) of the entries of dir, sorted.
	List(dir string) ([]string, error)
	Stat(name string) (os.FileInfo, error)
}

// VectorWriterAt is implemented by files that can write several buffers at one offset
// in one operation (pwritev). All files of this package implement it.
type VectorWriterAt interface {
	WriteVAt(bufs [][]byte, off int64) (int, error)
}

// WriteVAt writes bufs one after the other at off, in one system call when f supports
// it. It returns the number of bytes written; n < the total only with an error.
func WriteVAt(f File, bufs [][]byte, off int64) (int, error) {
	if v, ok := f.(VectorWriterAt); ok {
		return v.WriteVAt(bufs, off)
	}
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

// PageCacher is implemented by files whose pages the kernel caches and that can take
// advice about them. It changes nothing about durability: Sync does that.
type PageCacher interface {
	// StartWriteback starts writing the dirty pages of [off, off+n) to disk without
	// waiting for them (sync_file_range SYNC_FILE_RANGE_WRITE).
	StartWriteback(off, n int64) error
	// DropCache drops the cached pages of [off, off+n) that are clean (posix_fadvise
	// POSIX_FADV_DONTNEED); dirty ones and ones being written back stay.
	DropCache(off, n int64) error
}

// StartWriteback starts the write-back of f's dirty pages in [off, off+n) when f
// supports it, and is a no-op otherwise.
func StartWriteback(f File, off, n int64) error {
	if c, ok := f.(PageCacher); ok && n > 0 {
		return c.StartWriteback(off, n)
	}
	return nil
}

// DropCache drops f's clean cached pages in [off, off+n) when f supports it, and is a
// no-op otherwise. It is advice: the data stays on disk and the next read fetches it.
func DropCache(f File, off, n int64) error {
	if c, ok := f.(PageCacher); ok && n > 0 {
		return c.DropCache(off, n)
	}
	return nil
}

// SyncDir makes the entries of dir durable: it opens dir, syncs and closes it.
func SyncDir(fs FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}

// WriteFile creates (or truncates) name, writes data to it and syncs it before closing.
func WriteFile(fs FS, name string, data []byte) error {
	f, err := fs.Create(name)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ReplaceFile replaces name with data atomically and durably: data is written and synced
// to name+".tmp", which is renamed over name, and the directory is synced. After a crash
// name holds either its old or its new contents; a leftover .tmp is garbage.
func ReplaceFile(fs FS, name string, data []byte) error {
	tmp := name + ".tmp"
	if err := WriteFile(fs, tmp, data); err != nil {
		return err
	}
	if err := fs.Rename(tmp, name); err != nil {
		return err
	}
	return SyncDir(fs, filepath.Dir(name))
}
