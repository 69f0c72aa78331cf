package log

import (
	"io"
	"syscall"

	"github.com/sluicemq/sluice/segment"
	"github.com/sluicemq/sluice/vfs"
)

// writeChunk sends c to w with sendfile(2) at an explicit offset (the file's position
// is untouched) when w is a socket and c's file a real one.
func writeChunk(w io.Writer, s *segment.Segment, c Chunk) (int64, error) {
	sc, ok := w.(syscall.Conn)
	f, isOS := vfs.OSFile(c.File)
	if !ok || !isOS {
		return copyChunk(w, s, c, 0)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return copyChunk(w, s, c, 0)
	}
	src := int(f.Fd())
	var done int64
	var serr error
	unsupported := false
	werr := rc.Write(func(fd uintptr) bool {
		for done < c.Length {
			off := c.Position + done
			n, err := syscall.Sendfile(int(fd), src, &off, int(min(c.Length-done, 1<<30)))
			if n > 0 {
				done += int64(n)
			}
			switch {
			case err == syscall.EAGAIN:
				return false // wait until writable
			case err == syscall.EINTR:
				continue
			case err == syscall.EINVAL || err == syscall.ENOSYS || err == syscall.EOPNOTSUPP:
				unsupported = true
				return true
			case err != nil:
				serr = err
				return true
			case n == 0:
				serr = segment.ErrTruncated
				return true
			}
		}
		return true
	})
	if unsupported {
		n, err := copyChunk(w, s, c, done)
		return done + n, err
	}
	if werr != nil {
		return done, werr
	}
	return done, serr
}
