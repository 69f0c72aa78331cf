// Package vfs is the file-system seam of the storage engine: segment and log code open,
// write, sync and remove files only through FS, so tests can swap the disk for one that
// crashes or fails on demand.
//
// Three implementations:
//
//   - Default wraps the os package. File.Sync is fdatasync(2); WriteVAt is pwritev(2).
//   - MemFS keeps files in memory and tracks what was synced. CrashClone returns the file
//     system a power failure could leave behind: every synced byte and every synced
//     directory entry, plus a random part of what was not synced (torn, reordered or
//     zeroed 512-byte blocks; unsynced directory changes kept or lost one by one).
//   - FaultFS wraps another FS and fails the Nth operation (or every operation from the
//     Nth on), or refuses writes past a space budget with ENOSPC after writing part of
//     the buffer, like a full disk.
//
// Usage:
//
//	fs := vfs.NewMem()
//	f, _ := fs.Create("/data/x")
//	f.Write(b)
//	f.Sync()
//	d, _ := fs.OpenDir("/data")
//	d.Sync() // the directory entry of x is durable too
//	after := fs.CrashClone(rand.New(rand.NewPCG(1, 2)))
package vfs
