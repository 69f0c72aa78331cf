package vfs

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
)

// Op names a kind of operation that FaultFS counts.
type Op uint16

const (
	OpCreate Op = 1 << iota
	OpOpen
	OpOpenReadWrite
	OpOpenDir
	OpRename
	OpRemove
	OpRemoveAll
	OpMkdirAll
	OpList
	OpStat
	OpRead
	OpWrite
	OpSync
	OpTruncate
	OpClose

	// OpAll is every operation.
	OpAll Op = 1<<15 - 1
	// OpMutating is every operation that changes the file system.
	OpMutating = OpCreate | OpOpenReadWrite | OpRename | OpRemove | OpRemoveAll |
		OpMkdirAll | OpWrite | OpSync | OpTruncate
)

var opNames = map[Op]string{
	OpCreate: "create", OpOpen: "open", OpOpenReadWrite: "open-rw", OpOpenDir: "open-dir",
	OpRename: "rename", OpRemove: "remove", OpRemoveAll: "remove-all", OpMkdirAll: "mkdir",
	OpList: "list", OpStat: "stat", OpRead: "read", OpWrite: "write", OpSync: "sync",
	OpTruncate: "truncate", OpClose: "close",
}

func (o Op) String() string {
	if s, ok := opNames[o]; ok {
		return s
	}
	return fmt.Sprintf("op(%#x)", uint16(o))
}

// ErrInjected is the error FaultFS returns for an injected fault unless told otherwise.
var ErrInjected = errors.New("vfs: injected fault")

// FaultFS wraps an FS and injects faults. It counts the operations whose kind is in its
// mask (OpAll unless SetMask says otherwise) and fails the one numbered by FailAt, or
// every one from it on when sticky. Independently, SetSpace gives writes a budget of
// bytes; a write that would exceed it writes what fits and fails with ENOSPC, like a
// full disk, until the budget is raised. A failed write, whatever the cause, writes the
// first half of its bytes first.
type FaultFS struct {
	fs FS

	mu     sync.Mutex
	mask   Op
	count  int64 // operations counted so far
	failAt int64 // 0: never
	err    error
	sticky bool
	space  int64 // bytes writes may still add; < 0: unlimited
	trace  func(n int64, op Op, name string)
}

// NewFaultFS returns a FaultFS over fs that injects nothing until told to.
func NewFaultFS(fs FS) *FaultFS {
	return &FaultFS{fs: fs, mask: OpAll, space: -1}
}

// SetMask sets the kinds of operation that are counted and may fail.
func (f *FaultFS) SetMask(mask Op) {
	f.mu.Lock()
	f.mask = mask
	f.mu.Unlock()
}

// FailAt makes the nth counted operation from now fail with err (ErrInjected when nil);
// n = 1 is the next one. With sticky, every later counted operation fails too. n <= 0
// clears the fault.
func (f *FaultFS) FailAt(n int64, err error, sticky bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		err = ErrInjected
	}
	f.err, f.sticky = err, sticky
	if n <= 0 {
		f.failAt = 0
		return
	}
	f.failAt = f.count + n
}

// SetSpace sets how many more bytes writes may add; n < 0 removes the limit.
func (f *FaultFS) SetSpace(n int64) {
	f.mu.Lock()
	f.space = n
	f.mu.Unlock()
}

// Count returns how many operations have been counted.
func (f *FaultFS) Count() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count
}

// Trace calls fn for every counted operation (for debugging a failing schedule).
func (f *FaultFS) Trace(fn func(n int64, op Op, name string)) {
	f.mu.Lock()
	f.trace = fn
	f.mu.Unlock()
}

// inject counts op and returns the error to inject, if any.
func (f *FaultFS) inject(op Op, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mask&op == 0 {
		return nil
	}
	f.count++
	if f.trace != nil {
		f.trace(f.count, op, name)
	}
	if f.failAt > 0 && (f.count == f.failAt || (f.sticky && f.count > f.failAt)) {
		return &os.PathError{Op: op.String(), Path: name, Err: f.err}
	}
	return nil
}

// reserve takes up to n bytes of space and reports how many may be written.
func (f *FaultFS) reserve(n int) (int, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.space < 0 || int64(n) <= f.space {
		if f.space >= 0 {
			f.space -= int64(n)
		}
		return n, true
	}
	ok := int(f.space)
	f.space = 0
	return ok, false
}

func (f *FaultFS) wrap(file File, err error) (File, error) {
	if err != nil {
		return nil, err
	}
	return &faultFile{f: file, fs: f}, nil
}

func (f *FaultFS) Create(name string) (File, error) {
	if err := f.inject(OpCreate, name); err != nil {
		return nil, err
	}
	return f.wrap(f.fs.Create(name))
}

func (f *FaultFS) Open(name string) (File, error) {
	if err := f.inject(OpOpen, name); err != nil {
		return nil, err
	}
	return f.wrap(f.fs.Open(name))
}

func (f *FaultFS) OpenReadWrite(name string) (File, error) {
	if err := f.inject(OpOpenReadWrite, name); err != nil {
		return nil, err
	}
	return f.wrap(f.fs.OpenReadWrite(name))
}

func (f *FaultFS) OpenDir(name string) (File, error) {
	if err := f.inject(OpOpenDir, name); err != nil {
		return nil, err
	}
	return f.wrap(f.fs.OpenDir(name))
}

func (f *FaultFS) Rename(oldname, newname string) error {
	if err := f.inject(OpRename, oldname); err != nil {
		return err
	}
	return f.fs.Rename(oldname, newname)
}

func (f *FaultFS) Remove(name string) error {
	if err := f.inject(OpRemove, name); err != nil {
		return err
	}
	return f.fs.Remove(name)
}

func (f *FaultFS) RemoveAll(name string) error {
	if err := f.inject(OpRemoveAll, name); err != nil {
		return err
	}
	return f.fs.RemoveAll(name)
}

func (f *FaultFS) MkdirAll(name string, perm os.FileMode) error {
	if err := f.inject(OpMkdirAll, name); err != nil {
		return err
	}
	return f.fs.MkdirAll(name, perm)
}

func (f *FaultFS) List(dir string) ([]string, error) {
	if err := f.inject(OpList, dir); err != nil {
		return nil, err
	}
	return f.fs.List(dir)
}

func (f *FaultFS) Stat(name string) (os.FileInfo, error) {
	if err := f.inject(OpStat, name); err != nil {
		return nil, err
	}
	return f.fs.Stat(name)
}

type faultFile struct {
	f  File
	fs *FaultFS
}

func (f *faultFile) Name() string { return f.f.Name() }

func (f *faultFile) Read(b []byte) (int, error) {
	if err := f.fs.inject(OpRead, f.f.Name()); err != nil {
		return 0, err
	}
	return f.f.Read(b)
}

func (f *faultFile) ReadAt(b []byte, off int64) (int, error) {
	if err := f.fs.inject(OpRead, f.f.Name()); err != nil {
		return 0, err
	}
	return f.f.ReadAt(b, off)
}

// write runs one write of total bytes through the fault and space checks; do writes
// the first n bytes.
func (f *faultFile) write(total int, do func(n int) (int, error)) (int, error) {
	if err := f.fs.inject(OpWrite, f.f.Name()); err != nil {
		n, _ := do(total / 2)
		return n, err
	}
	allowed, ok := f.fs.reserve(total)
	if !ok {
		n, _ := do(allowed)
		return n, &os.PathError{Op: "write", Path: f.f.Name(), Err: syscall.ENOSPC}
	}
	return do(total)
}

func (f *faultFile) Write(b []byte) (int, error) {
	return f.write(len(b), func(n int) (int, error) { return f.f.Write(b[:n]) })
}

func (f *faultFile) WriteAt(b []byte, off int64) (int, error) {
	return f.write(len(b), func(n int) (int, error) { return f.f.WriteAt(b[:n], off) })
}

func (f *faultFile) WriteVAt(bufs [][]byte, off int64) (int, error) {
	total := 0
	for _, b := range bufs {
		total += len(b)
	}
	return f.write(total, func(n int) (int, error) {
		var cut [][]byte
		for _, b := range bufs {
			if n == 0 {
				break
			}
			k := min(n, len(b))
			cut = append(cut, b[:k])
			n -= k
		}
		return WriteVAt(f.f, cut, off)
	})
}

func (f *faultFile) Sync() error {
	if err := f.fs.inject(OpSync, f.f.Name()); err != nil {
		return err
	}
	return f.f.Sync()
}

func (f *faultFile) Stat() (os.FileInfo, error) {
	if err := f.fs.inject(OpStat, f.f.Name()); err != nil {
		return nil, err
	}
	return f.f.Stat()
}

func (f *faultFile) Truncate(size int64) error {
	if err := f.fs.inject(OpTruncate, f.f.Name()); err != nil {
		return err
	}
	return f.f.Truncate(size)
}

// Close always closes the file underneath, even when it reports an injected fault.
func (f *faultFile) Close() error {
	injected := f.fs.inject(OpClose, f.f.Name())
	err := f.f.Close()
	if injected != nil {
		return injected
	}
	return err
}
