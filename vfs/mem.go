package vfs

import (
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MemFS is an in-memory FS that remembers what was synced, so that CrashClone can
// produce what a power failure would leave. A file's bytes and size are durable once the
// file is synced. Changes to directory entries (files created, renamed, removed) go to
// an ordered journal, as in a journaling file system: syncing a directory makes durable
// every change up to the last one in that directory; a crash keeps a random prefix of
// the rest. Directories themselves, RemoveAll and directory renames are durable at once.
// Open files keep their data after Remove, as on POSIX.
type MemFS struct {
	mu      sync.Mutex
	files   map[string]*memNode // current directory entries: clean path -> file
	durable map[string]*memNode // entries as of the last journal commit
	pending []memDirOp          // directory changes since then, in order
	dirs    map[string]bool
}

// memDirOp is one change of a directory entry: create (node set), remove (node nil,
// from empty), rename (from set).
type memDirOp struct {
	path string
	from string
	node *memNode
}

func (op memDirOp) apply(entries map[string]*memNode) {
	switch {
	case op.from != "":
		if n := entries[op.from]; n != nil {
			entries[op.path] = n
			delete(entries, op.from)
		}
	case op.node != nil:
		entries[op.path] = op.node
	default:
		delete(entries, op.path)
	}
}

func (op memDirOp) touches(dir string) bool {
	return path.Dir(op.path) == dir || (op.from != "" && path.Dir(op.from) == dir)
}

// commit makes the first n journal entries durable. m.mu is held.
func (m *MemFS) commit(n int) {
	for _, op := range m.pending[:n] {
		op.apply(m.durable)
	}
	m.pending = slices.Delete(m.pending, 0, n)
}

type memNode struct {
	mu      sync.Mutex
	data    []byte
	durable []byte // the bytes as of the last Sync
	// Invariant: dirtyFrom <= min(len(data), len(durable)) and
	// data[:dirtyFrom] == durable[:dirtyFrom].
	dirtyFrom int
	modTime   time.Time
}

// NewMem returns an empty MemFS holding the root directory "/" and ".".
func NewMem() *MemFS {
	return &MemFS{
		files:   map[string]*memNode{},
		durable: map[string]*memNode{},
		dirs:    map[string]bool{"/": true, ".": true},
	}
}

func clean(name string) string { return path.Clean(name) }

func pathErr(op, name string, err error) error {
	return &fs.PathError{Op: op, Path: name, Err: err}
}

func (m *MemFS) parentExists(p string) bool { return m.dirs[path.Dir(p)] }

func (m *MemFS) Create(name string) (File, error) {
	p := clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dirs[p] {
		return nil, pathErr("create", name, syscall.EISDIR)
	}
	if !m.parentExists(p) {
		return nil, pathErr("create", name, fs.ErrNotExist)
	}
	n := m.files[p]
	if n == nil {
		n = &memNode{modTime: time.Now()}
		m.files[p] = n
		m.pending = append(m.pending, memDirOp{path: p, node: n})
	} else {
		n.mu.Lock()
		n.truncate(0)
		n.mu.Unlock()
	}
	return &memFile{name: name, node: n, writable: true}, nil
}

func (m *MemFS) Open(name string) (File, error) {
	p := clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dirs[p] {
		return &memFile{name: name, dirFS: m, dir: p}, nil
	}
	n := m.files[p]
	if n == nil {
		return nil, pathErr("open", name, fs.ErrNotExist)
	}
	return &memFile{name: name, node: n}, nil
}

func (m *MemFS) OpenReadWrite(name string) (File, error) {
	p := clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dirs[p] {
		return nil, pathErr("open", name, syscall.EISDIR)
	}
	n := m.files[p]
	if n == nil {
		if !m.parentExists(p) {
			return nil, pathErr("open", name, fs.ErrNotExist)
		}
		n = &memNode{modTime: time.Now()}
		m.files[p] = n
		m.pending = append(m.pending, memDirOp{path: p, node: n})
	}
	return &memFile{name: name, node: n, writable: true}, nil
}

func (m *MemFS) OpenDir(name string) (File, error) {
	p := clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.dirs[p] {
		return nil, pathErr("open", name, fs.ErrNotExist)
	}
	return &memFile{name: name, dirFS: m, dir: p}, nil
}

// syncDir commits the journal up to the last change in dir.
func (m *MemFS) syncDir(dir string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	last := -1
	for i, op := range m.pending {
		if op.touches(dir) {
			last = i
		}
	}
	m.commit(last + 1)
}

func (m *MemFS) Rename(oldname, newname string) error {
	o, n := clean(oldname), clean(newname)
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.parentExists(n) {
		return pathErr("rename", newname, fs.ErrNotExist)
	}
	if node := m.files[o]; node != nil {
		if m.dirs[n] {
			return pathErr("rename", newname, syscall.EISDIR)
		}
		delete(m.files, o)
		m.files[n] = node
		m.pending = append(m.pending, memDirOp{path: n, from: o})
		return nil
	}
	if !m.dirs[o] || o == "/" || o == "." {
		return pathErr("rename", oldname, fs.ErrNotExist)
	}
	if m.dirs[n] || m.files[n] != nil {
		return pathErr("rename", newname, fs.ErrExist)
	}
	// A directory: move it and everything under it. Directories are always durable,
	// and so is this rename, with every change before it (a simplification: real
	// directory renames need a sync of the parent).
	m.commit(len(m.pending))
	prefix := o + "/"
	for d := range m.dirs {
		if d == o || strings.HasPrefix(d, prefix) {
			delete(m.dirs, d)
			m.dirs[n+strings.TrimPrefix(d, o)] = true
		}
	}
	for _, tab := range []map[string]*memNode{m.files, m.durable} {
		for p, node := range tab {
			if strings.HasPrefix(p, prefix) {
				delete(tab, p)
				tab[n+strings.TrimPrefix(p, o)] = node
			}
		}
	}
	return nil
}

func (m *MemFS) Remove(name string) error {
	p := clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.files[p] != nil {
		delete(m.files, p)
		m.pending = append(m.pending, memDirOp{path: p})
		return nil
	}
	if !m.dirs[p] {
		return pathErr("remove", name, fs.ErrNotExist)
	}
	prefix := p + "/"
	for q := range m.files {
		if strings.HasPrefix(q, prefix) {
			return pathErr("remove", name, syscall.ENOTEMPTY)
		}
	}
	for d := range m.dirs {
		if strings.HasPrefix(d, prefix) {
			return pathErr("remove", name, syscall.ENOTEMPTY)
		}
	}
	delete(m.dirs, p)
	return nil
}

func (m *MemFS) RemoveAll(name string) error {
	p := clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.commit(len(m.pending))
	delete(m.files, p)
	prefix := p + "/"
	for q := range m.files {
		if strings.HasPrefix(q, prefix) {
			delete(m.files, q)
		}
	}
	// Removing a directory tree is durable at once, with every change before it (a
	// simplification, like MkdirAll).
	for q := range m.durable {
		if q == p || strings.HasPrefix(q, prefix) {
			delete(m.durable, q)
		}
	}
	if p != "/" && p != "." {
		for d := range m.dirs {
			if d == p || strings.HasPrefix(d, prefix) {
				delete(m.dirs, d)
			}
		}
	}
	return nil
}

func (m *MemFS) MkdirAll(name string, perm os.FileMode) error {
	p := clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	for d := p; ; d = path.Dir(d) {
		if m.files[d] != nil {
			return pathErr("mkdir", name, syscall.ENOTDIR)
		}
		m.dirs[d] = true
		if d == "/" || d == "." {
			break
		}
	}
	return nil
}

func (m *MemFS) List(dir string) ([]string, error) {
	p := clean(dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.dirs[p] {
		return nil, pathErr("open", dir, fs.ErrNotExist)
	}
	var names []string
	for q := range m.files {
		if path.Dir(q) == p {
			names = append(names, path.Base(q))
		}
	}
	for d := range m.dirs {
		if d != p && path.Dir(d) == p {
			names = append(names, path.Base(d))
		}
	}
	slices.Sort(names)
	return names, nil
}

func (m *MemFS) Stat(name string) (os.FileInfo, error) {
	p := clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dirs[p] {
		return memInfo{name: path.Base(p), dir: true}, nil
	}
	n := m.files[p]
	if n == nil {
		return nil, pathErr("stat", name, fs.ErrNotExist)
	}
	return n.info(path.Base(p)), nil
}

// CrashClone returns the file system a power failure at this moment could leave: the
// synced bytes of every file and the committed directory changes, plus, chosen by rng,
// part of the rest. For each file, the unsynced region is cut at a random length and
// every 512-byte block in it holds the new bytes, the old synced bytes or zeros. A
// random prefix of the uncommitted directory changes survives. Open files of m are not
// carried over; m itself is unchanged.
func (m *MemFS) CrashClone(rng *rand.Rand) *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := NewMem()
	for d := range m.dirs {
		c.dirs[d] = true
	}
	clones := map[*memNode]*memNode{}
	cloneOf := func(n *memNode) *memNode {
		if cn, ok := clones[n]; ok {
			return cn
		}
		n.mu.Lock()
		data := n.crashBytes(rng)
		mod := n.modTime
		n.mu.Unlock()
		cn := &memNode{data: data, durable: slices.Clone(data), dirtyFrom: len(data), modTime: mod}
		clones[n] = cn
		return cn
	}
	entries := make(map[string]*memNode, len(m.durable))
	for p, n := range m.durable {
		entries[p] = n
	}
	for _, op := range m.pending[:rng.IntN(len(m.pending)+1)] {
		op.apply(entries)
	}
	sorted := make([]string, 0, len(entries))
	for p := range entries {
		sorted = append(sorted, p)
	}
	slices.Sort(sorted) // rng draws in a fixed order: a seed gives one outcome
	for _, p := range sorted {
		if !c.dirs[path.Dir(p)] {
			continue
		}
		cn := cloneOf(entries[p])
		c.files[p] = cn
		c.durable[p] = cn
	}
	return c
}

const crashBlock = 512

// crashBytes returns what a crash leaves of n. n.mu is held.
func (n *memNode) crashBytes(rng *rand.Rand) []byte {
	lo, hi := len(n.durable), len(n.data)
	if lo > hi {
		lo, hi = hi, lo
	}
	var size int
	switch rng.IntN(3) {
	case 0:
		size = len(n.durable)
	case 1:
		size = len(n.data)
	default:
		size = lo + rng.IntN(hi-lo+1)
	}
	out := make([]byte, size)
	copy(out, n.durable[:n.dirtyFrom])
	for b := n.dirtyFrom; b < size; {
		end := min((b/crashBlock+1)*crashBlock, size)
		var src []byte
		switch rng.IntN(3) {
		case 0:
			src = n.data
		case 1:
			src = n.durable
		}
		if b < len(src) {
			copy(out[b:end], src[b:min(end, len(src))])
		}
		b = end
	}
	return out
}

func (n *memNode) truncate(size int) {
	n.dirtyFrom = min(n.dirtyFrom, size)
	if size <= len(n.data) {
		n.data = n.data[:size]
	} else {
		n.data = append(n.data, make([]byte, size-len(n.data))...)
	}
	n.modTime = time.Now()
}

func (n *memNode) writeAt(b []byte, off int) {
	n.dirtyFrom = min(n.dirtyFrom, off, len(n.data))
	if end := off + len(b); end > len(n.data) {
		if end <= cap(n.data) {
			old := len(n.data)
			n.data = n.data[:end]
			clear(n.data[old:max(old, off)]) // capacity may hold bytes from before a truncate
		} else {
			grown := make([]byte, end, max(2*cap(n.data), end, 4096))
			copy(grown, n.data)
			n.data = grown
		}
	}
	copy(n.data[off:], b)
	n.modTime = time.Now()
}

func (n *memNode) sync() {
	n.durable = append(n.durable[:n.dirtyFrom], n.data[n.dirtyFrom:]...)
	n.dirtyFrom = len(n.data)
}

func (n *memNode) info(name string) memInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	return memInfo{name: name, size: int64(len(n.data)), modTime: n.modTime}
}

type memFile struct {
	name     string
	node     *memNode // nil for a directory
	dirFS    *MemFS
	dir      string
	writable bool
	mu       sync.Mutex // guards pos and closed
	pos      int64
	closed   bool
}

func (f *memFile) check(op string, write bool) error {
	f.mu.Lock()
	closed := f.closed
	f.mu.Unlock()
	if closed {
		return pathErr(op, f.name, fs.ErrClosed)
	}
	if f.node == nil {
		return pathErr(op, f.name, syscall.EISDIR)
	}
	if write && !f.writable {
		return pathErr(op, f.name, syscall.EBADF)
	}
	return nil
}

func (f *memFile) Name() string { return f.name }

func (f *memFile) ReadAt(b []byte, off int64) (int, error) {
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, pathErr("read", f.name, syscall.EINVAL)
	}
	f.node.mu.Lock()
	defer f.node.mu.Unlock()
	if off >= int64(len(f.node.data)) {
		return 0, io.EOF
	}
	n := copy(b, f.node.data[off:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) Read(b []byte) (int, error) {
	f.mu.Lock()
	pos := f.pos
	f.mu.Unlock()
	n, err := f.ReadAt(b, pos)
	f.mu.Lock()
	f.pos += int64(n)
	f.mu.Unlock()
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (f *memFile) WriteAt(b []byte, off int64) (int, error) {
	if err := f.check("write", true); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, pathErr("write", f.name, syscall.EINVAL)
	}
	f.node.mu.Lock()
	f.node.writeAt(b, int(off))
	f.node.mu.Unlock()
	return len(b), nil
}

func (f *memFile) WriteVAt(bufs [][]byte, off int64) (int, error) {
	if err := f.check("write", true); err != nil {
		return 0, err
	}
	f.node.mu.Lock()
	defer f.node.mu.Unlock()
	total := 0
	for _, b := range bufs {
		f.node.writeAt(b, int(off)+total)
		total += len(b)
	}
	return total, nil
}

func (f *memFile) Write(b []byte) (int, error) {
	f.mu.Lock()
	pos := f.pos
	f.mu.Unlock()
	n, err := f.WriteAt(b, pos)
	f.mu.Lock()
	f.pos += int64(n)
	f.mu.Unlock()
	return n, err
}

func (f *memFile) Truncate(size int64) error {
	if err := f.check("truncate", true); err != nil {
		return err
	}
	if size < 0 {
		return pathErr("truncate", f.name, syscall.EINVAL)
	}
	f.node.mu.Lock()
	f.node.truncate(int(size))
	f.node.mu.Unlock()
	return nil
}

func (f *memFile) Sync() error {
	f.mu.Lock()
	closed := f.closed
	f.mu.Unlock()
	if closed {
		return pathErr("sync", f.name, fs.ErrClosed)
	}
	if f.node == nil {
		f.dirFS.syncDir(f.dir)
		return nil
	}
	f.node.mu.Lock()
	f.node.sync()
	f.node.mu.Unlock()
	return nil
}

func (f *memFile) Stat() (os.FileInfo, error) {
	if f.node == nil {
		return memInfo{name: path.Base(f.dir), dir: true}, nil
	}
	return f.node.info(path.Base(f.name)), nil
}

func (f *memFile) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return pathErr("close", f.name, fs.ErrClosed)
	}
	f.closed = true
	return nil
}

type memInfo struct {
	name    string
	size    int64
	modTime time.Time
	dir     bool
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) ModTime() time.Time { return i.modTime }
func (i memInfo) IsDir() bool        { return i.dir }
func (i memInfo) Sys() any           { return nil }
func (i memInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}
