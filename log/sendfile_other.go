//go:build !linux

package log

import (
	"io"

	"github.com/sluicemq/sluice/segment"
)

func writeChunk(w io.Writer, s *segment.Segment, c Chunk) (int64, error) {
	return copyChunk(w, s, c, 0)
}
