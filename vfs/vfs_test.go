package vfs_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/sluicemq/sluice/vfs"
)

// TestFS runs the same checks on the real and the memory file systems.
func TestFS(t *testing.T) {
	for name, mk := range map[string]func(t *testing.T) (vfs.FS, string){
		"os":  func(t *testing.T) (vfs.FS, string) { return vfs.Default, t.TempDir() },
		"mem": func(t *testing.T) (vfs.FS, string) { return vfs.NewMem(), "/tmp/x" },
		"fault": func(t *testing.T) (vfs.FS, string) {
			return vfs.NewFaultFS(vfs.NewMem()), "/tmp/x"
		},
	} {
		t.Run(name, func(t *testing.T) {
			fsys, dir := mk(t)
			if err := fsys.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, "f")
			f, err := fsys.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write([]byte("hello ")); err != nil {
				t.Fatal(err)
			}
			if n, err := vfs.WriteVAt(f, [][]byte{[]byte("big "), nil, []byte("world")}, 6); n != 9 || err != nil {
				t.Fatalf("WriteVAt = %d, %v", n, err)
			}
			if _, err := f.WriteAt([]byte("W"), 10); err != nil {
				t.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			b := make([]byte, 15)
			if n, err := f.ReadAt(b, 0); n != 15 || (err != nil && err != io.EOF) || string(b) != "hello big World" {
				t.Fatalf("ReadAt = %d %q %v", n, b, err)
			}
			if n, err := f.ReadAt(b, 10); n != 5 || err != io.EOF {
				t.Fatalf("ReadAt past the end = %d, %v", n, err)
			}
			if err := f.Truncate(5); err != nil {
				t.Fatal(err)
			}
			if st, err := f.Stat(); err != nil || st.Size() != 5 {
				t.Fatalf("Stat after Truncate: %v %v", st, err)
			}
			// Growing past the end reads zeros, not old bytes.
			if _, err := f.WriteAt([]byte("!"), 9); err != nil {
				t.Fatal(err)
			}
			b = make([]byte, 10)
			f.ReadAt(b, 0)
			if !bytes.Equal(b, []byte("hello\x00\x00\x00\x00!")) {
				t.Fatalf("after a hole: %q", b)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := f.ReadAt(b, 0); err == nil {
				t.Fatal("ReadAt after Close succeeded")
			}
			ro, err := fsys.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ro.Write([]byte("x")); err == nil {
				t.Fatal("Write to a read-only file succeeded")
			}
			ro.Close()
			rw, err := fsys.OpenReadWrite(p)
			if err != nil {
				t.Fatal(err)
			}
			if st, _ := rw.Stat(); st.Size() != 10 {
				t.Fatalf("OpenReadWrite truncated: %d", st.Size())
			}
			rw.Close()
			if err := fsys.Rename(p, filepath.Join(dir, "g")); err != nil {
				t.Fatal(err)
			}
			if err := vfs.SyncDir(fsys, dir); err != nil {
				t.Fatal(err)
			}
			names, err := fsys.List(dir)
			if err != nil || !slices.Equal(names, []string{"g", "sub"}) {
				t.Fatalf("List = %v, %v", names, err)
			}
			if _, err := fsys.Stat(p); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Stat of a renamed file: %v", err)
			}
			if _, err := fsys.Open(p); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Open of a renamed file: %v", err)
			}
			if _, err := fsys.Create(filepath.Join(dir, "nodir", "f")); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Create in a missing directory: %v", err)
			}
			if err := fsys.Remove(filepath.Join(dir, "g")); err != nil {
				t.Fatal(err)
			}
			if err := fsys.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			if _, err := fsys.List(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("List of a removed directory: %v", err)
			}
		})
	}
}

func TestOSFile(t *testing.T) {
	f, err := vfs.Default.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if o, ok := vfs.OSFile(f); !ok || o.Name() != f.Name() {
		t.Fatal("OSFile of a real file")
	}
	m, _ := vfs.NewMem().Create("/f")
	if _, ok := vfs.OSFile(m); ok {
		t.Fatal("OSFile of a memory file")
	}
}

func TestRemovedFileStaysOpen(t *testing.T) {
	for name, fsys := range map[string]vfs.FS{"os": vfs.Default, "mem": vfs.NewMem()} {
		dir := t.TempDir()
		if name == "mem" {
			dir = "/"
		}
		p := filepath.Join(dir, "f")
		f, _ := fsys.Create(p)
		f.Write([]byte("data"))
		if err := fsys.Remove(p); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 4)
		if _, err := f.ReadAt(b, 0); err != nil || string(b) != "data" {
			t.Fatalf("%s: read of a removed, open file: %q %v", name, b, err)
		}
		f.Close()
	}
}

// TestCrashClone: synced bytes and synced directory entries survive every crash;
// unsynced ones survive some.
func TestCrashClone(t *testing.T) {
	keptTail, lostTail, keptEntry, lostEntry := 0, 0, 0, 0
	for seed := uint64(0); seed < 200; seed++ {
		m := vfs.NewMem()
		m.MkdirAll("/d", 0o755)
		synced, _ := m.Create("/d/synced")
		synced.Write(bytes.Repeat([]byte("s"), 3000))
		synced.Sync()
		synced.Write(bytes.Repeat([]byte("u"), 3000)) // not synced
		vfs.SyncDir(m, "/d")
		unlisted, _ := m.Create("/d/unlisted") // synced data, directory not synced
		unlisted.Write([]byte("x"))
		unlisted.Sync()
		// A rename after the directory sync.
		m.Rename("/d/synced", "/d/renamed")

		c := m.CrashClone(rand.New(rand.NewPCG(seed, 1)))
		var f vfs.File
		var err error
		if f, err = c.Open("/d/synced"); err != nil {
			if f, err = c.Open("/d/renamed"); err != nil {
				t.Fatalf("seed %d: the synced file is gone under both names", seed)
			}
		}
		st, _ := f.Stat()
		b := make([]byte, st.Size())
		f.ReadAt(b, 0)
		if len(b) < 3000 || !bytes.Equal(b[:3000], bytes.Repeat([]byte("s"), 3000)) {
			t.Fatalf("seed %d: synced bytes damaged (%d bytes)", seed, len(b))
		}
		if bytes.Contains(b[3000:], []byte("u")) {
			keptTail++
		}
		if !bytes.Equal(b[3000:], bytes.Repeat([]byte("u"), 3000)) {
			lostTail++
		}
		if _, err := c.Stat("/d/unlisted"); err == nil {
			keptEntry++
		} else {
			lostEntry++
		}
		// The clone is a file system of its own; all in it is durable.
		again := c.CrashClone(rand.New(rand.NewPCG(seed, 2)))
		if st2, err := again.Stat(f.Name()); err != nil || st2.Size() != st.Size() {
			t.Fatalf("seed %d: a clone of a clone changed: %v %v", seed, st2, err)
		}
		// The original is unchanged.
		if st, _ := m.Stat("/d/renamed"); st.Size() != 6000 {
			t.Fatalf("CrashClone changed the original")
		}
	}
	if keptTail == 0 || lostTail == 0 || keptEntry == 0 || lostEntry == 0 {
		t.Fatalf("crashes are not random enough: tail kept %d lost %d, entry kept %d lost %d", keptTail, lostTail, keptEntry, lostEntry)
	}
}

func TestFaultFS(t *testing.T) {
	m := vfs.NewMem()
	f := vfs.NewFaultFS(m)
	w, _ := f.Create("/a")
	f.FailAt(2, nil, false)
	if _, err := w.Write([]byte("12345678")); err != nil {
		t.Fatalf("first write: %v", err)
	}
	if n, err := w.Write([]byte("abcd")); !errors.Is(err, vfs.ErrInjected) || n != 2 {
		t.Fatalf("second write = %d, %v; want half written and ErrInjected", n, err)
	}
	if err := w.Sync(); err != nil {
		t.Fatalf("third operation: %v", err)
	}
	f.FailAt(1, syscall.EIO, true)
	for i := 0; i < 3; i++ {
		if err := w.Sync(); !errors.Is(err, syscall.EIO) {
			t.Fatalf("sticky fault: %v", err)
		}
	}
	f.FailAt(0, nil, false)
	f.SetSpace(5)
	if n, err := w.WriteAt([]byte("0123456789"), 0); !errors.Is(err, syscall.ENOSPC) || n != 5 {
		t.Fatalf("write past the space = %d, %v", n, err)
	}
	if _, err := w.WriteAt([]byte("x"), 0); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write on a full disk: %v", err)
	}
	f.SetSpace(-1)
	if _, err := w.WriteAt([]byte("x"), 0); err != nil {
		t.Fatalf("write after space came back: %v", err)
	}
	f.SetMask(vfs.OpSync)
	before := f.Count()
	w.Write([]byte("x"))
	if f.Count() != before {
		t.Fatal("a masked-out operation was counted")
	}
	w.Sync()
	if f.Count() != before+1 {
		t.Fatal("a sync was not counted")
	}
}

// TestReplaceFile fails each operation of a replacement in turn, then crashes: the file
// holds its old or its new contents, never anything else, and the new ones once
// ReplaceFile has returned nil.
func TestReplaceFile(t *testing.T) {
	old, repl := bytes.Repeat([]byte("o"), 3000), bytes.Repeat([]byte("n"), 5000)
	for n := int64(1); ; n++ {
		m := vfs.NewMem()
		if err := m.MkdirAll("/d", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := vfs.ReplaceFile(m, "/d/f", old); err != nil {
			t.Fatal(err)
		}
		f := vfs.NewFaultFS(m)
		f.FailAt(n, nil, false)
		err := vfs.ReplaceFile(f, "/d/f", repl)
		for seed := uint64(0); seed < 20; seed++ {
			c := m.CrashClone(rand.New(rand.NewPCG(seed, uint64(n))))
			r, oerr := c.Open("/d/f")
			if oerr != nil {
				t.Fatalf("fault at %d, seed %d: %v", n, seed, oerr)
			}
			got, _ := io.ReadAll(r)
			r.Close()
			switch {
			case bytes.Equal(got, repl):
			case bytes.Equal(got, old) && err != nil:
			default:
				t.Fatalf("fault at %d (ReplaceFile: %v), seed %d: %d bytes, neither old nor new", n, err, seed, len(got))
			}
		}
		if err == nil {
			if n < 5 {
				t.Fatalf("only %d operations counted", n)
			}
			return
		}
		if !errors.Is(err, vfs.ErrInjected) {
			t.Fatalf("fault at %d: %v", n, err)
		}
	}
}
