package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"path/filepath"

	"github.com/sluicemq/sluice/segment"
	"github.com/sluicemq/sluice/vfs"
)

// The recovery checkpoint: one small file, replaced atomically (written to a .tmp
// file, synced, renamed, directory synced). Its layout is in docs/format/checkpoint.md.
const (
	checkpointName    = "checkpoint"
	checkpointMagic   = 0x534c434b // "SLCK"
	checkpointVersion = 1
	checkpointSize    = 108

	flagClean = 1 << 0 // written by Close: nothing past the checkpoint to scan
	flagReset = 1 << 1 // a reset to an empty log at SegmentBase is in progress
)

// checkpoint records how far a log is known durable and verified.
//
// Invariant: every segment with a base below SegmentBase, and the bytes of segment
// SegmentBase before Point.Position (with its index files up to Point's lengths), were
// synced before the checkpoint was written. LogStart is the log start offset.
type checkpoint struct {
	Clean       bool
	Reset       bool
	LogStart    Offset
	SegmentBase Offset
	Point       segment.Point
	// MaxTimestamp and MaxTimestampOffset are the log's, valid when Clean.
	MaxTimestamp       int64
	MaxTimestampOffset Offset
}

var errBadCheckpoint = errors.New("log: bad checkpoint")

func (c *checkpoint) encode() []byte {
	b := make([]byte, checkpointSize)
	be := binary.BigEndian
	be.PutUint32(b[0:], checkpointMagic)
	b[4] = checkpointVersion
	var flags byte
	if c.Clean {
		flags |= flagClean
	}
	if c.Reset {
		flags |= flagReset
	}
	b[5] = flags
	for i, v := range []int64{
		int64(c.LogStart), int64(c.SegmentBase), c.Point.Position, int64(c.Point.Next),
		c.Point.IndexBytes, c.Point.TimeIndexBytes, c.Point.MaxTimestamp,
		int64(c.Point.MaxTimestampOffset), c.MaxTimestamp, int64(c.MaxTimestampOffset),
		0, 0,
	} {
		be.PutUint64(b[8+8*i:], uint64(v))
	}
	be.PutUint32(b[checkpointSize-4:], crc32.Checksum(b[:checkpointSize-4], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

func decodeCheckpoint(b []byte) (checkpoint, error) {
	var c checkpoint
	be := binary.BigEndian
	switch {
	case len(b) != checkpointSize:
		return c, fmt.Errorf("%w: %d bytes, want %d", errBadCheckpoint, len(b), checkpointSize)
	case be.Uint32(b) != checkpointMagic:
		return c, fmt.Errorf("%w: bad magic", errBadCheckpoint)
	case b[4] != checkpointVersion:
		return c, fmt.Errorf("%w: version %d", errBadCheckpoint, b[4])
	case be.Uint32(b[checkpointSize-4:]) != crc32.Checksum(b[:checkpointSize-4], crc32.MakeTable(crc32.Castagnoli)):
		return c, fmt.Errorf("%w: bad crc", errBadCheckpoint)
	}
	c.Clean = b[5]&flagClean != 0
	c.Reset = b[5]&flagReset != 0
	v := func(i int) int64 { return int64(be.Uint64(b[8+8*i:])) }
	c.LogStart, c.SegmentBase = Offset(v(0)), Offset(v(1))
	c.Point = segment.Point{Position: v(2), Next: Offset(v(3)), IndexBytes: v(4),
		TimeIndexBytes: v(5), MaxTimestamp: v(6), MaxTimestampOffset: Offset(v(7))}
	c.MaxTimestamp, c.MaxTimestampOffset = v(8), Offset(v(9))
	if c.LogStart < 0 || c.SegmentBase < 0 || c.Point.Position < 0 || c.Point.Next < c.SegmentBase ||
		c.Point.IndexBytes < 0 || c.Point.TimeIndexBytes < 0 {
		return c, fmt.Errorf("%w: fields out of range", errBadCheckpoint)
	}
	return c, nil
}

// readCheckpoint returns the checkpoint in dir; ok is false when there is none.
func readCheckpoint(fsys vfs.FS, dir string) (c checkpoint, ok bool, err error) {
	f, err := fsys.Open(filepath.Join(dir, checkpointName))
	if errors.Is(err, fs.ErrNotExist) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("read checkpoint: %w", err)
	}
	defer f.Close()
	b := make([]byte, checkpointSize+1)
	n, err := f.ReadAt(b, 0)
	if err != nil && err != io.EOF {
		return c, false, fmt.Errorf("read checkpoint: %w", err)
	}
	c, err = decodeCheckpoint(b[:n])
	if err != nil {
		return c, false, err
	}
	return c, true, nil
}

// writeCheckpoint replaces the checkpoint in dir durably.
func writeCheckpoint(fsys vfs.FS, dir string, c checkpoint) error {
	if err := vfs.ReplaceFile(fsys, filepath.Join(dir, checkpointName), c.encode()); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	return nil
}
