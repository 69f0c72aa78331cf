package protocol

import (
	"fmt"
	"io"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/sluicemq/sluice/log"
	"github.com/sluicemq/sluice/vfs"
)

// sendfileMin is the smallest stretch of records sent with sendfile; smaller ones are
// cheaper to copy into the write buffer than to cost a system call of their own.
const sendfileMin = 32 << 10

// records writes the bytes of rr after what is buffered. Stretches from files of the real
// file system go out by sendfile(2) straight from the page cache when the connection is
// TCP and zero copy is on; the rest are read into the buffer.
func (w *frameWriter) records(rr *log.ReadResult) error {
	for _, c := range rr.Chunks() {
		if w.raw != nil && !w.copyRecords && c.Length >= sendfileMin {
			if f, ok := vfs.OSFile(c.File); ok {
				if err := w.flush(); err != nil {
					return err
				}
				if err := w.sendfile(f, c.Position, c.Length); err != nil {
					return err
				}
				continue
			}
		}
		n := len(w.buf)
		w.buf = slices.Grow(w.buf, int(c.Length))[:n+int(c.Length)]
		if _, err := c.File.ReadAt(w.buf[n:], c.Position); err != nil {
			return fmt.Errorf("protocol: read records for fetch: %w", err)
		}
	}
	return nil
}

// sendfile sends n bytes of f from off to the connection, waiting for the socket to drain
// as needed, under the write timeout.
func (w *frameWriter) sendfile(f *os.File, off, n int64) error {
	fc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("protocol: sendfile: %w", err)
	}
	var opErr error
	cerr := fc.Control(func(ffd uintptr) {
		w.nc.SetWriteDeadline(time.Now().Add(w.timeout))
		werr := w.raw.Write(func(cfd uintptr) bool {
			for n > 0 {
				m, err := syscall.Sendfile(int(cfd), int(ffd), &off, int(min(n, 1<<30)))
				if m > 0 {
					n -= int64(m)
				}
				switch {
				case err == syscall.EAGAIN:
					return false // wait until writable
				case err == syscall.EINTR:
					continue
				case err != nil:
					opErr = err
					return true
				case m == 0:
					opErr = io.ErrUnexpectedEOF // the file is shorter than the read said
					return true
				}
			}
			return true
		})
		if opErr == nil {
			opErr = werr
		}
	})
	if cerr != nil {
		return fmt.Errorf("protocol: sendfile: %w", cerr)
	}
	if opErr != nil {
		return fmt.Errorf("protocol: sendfile: %w", opErr)
	}
	return nil
}
