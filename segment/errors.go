package segment

import (
	"errors"
	"fmt"
)

// Offset is a position in a log's sequence of offsets. In FormatKafka a record batch of
// N records takes N offsets; in FormatEntries an entry takes one.
type Offset int64

// Format says what a segment's entries are.
type Format uint8

const (
	// FormatKafka stores Kafka RecordBatch v2 bytes as received.
	FormatKafka Format = iota
	// FormatEntries stores opaque entries, each framed with its offset, length and
	// CRC-32C, one offset each.
	FormatEntries
)

func (f Format) String() string {
	switch f {
	case FormatKafka:
		return "kafka"
	case FormatEntries:
		return "entries"
	}
	return fmt.Sprintf("format(%d)", uint8(f))
}

var (
	// ErrCorrupt marks bytes that failed a length, offset or checksum check. Errors that
	// match it with errors.Is are usually a *CorruptionError that says where.
	ErrCorrupt = errors.New("segment: corrupt")
	// ErrInvalidEntry is returned by Append and the header decoders for bytes that are
	// not a well-formed entry (a RecordBatch v2 header in FormatKafka).
	ErrInvalidEntry = errors.New("segment: invalid entry")
	// ErrFull is returned by Append when the entry does not fit the segment's position
	// or relative-offset space (4 GiB, 2^32 offsets); the caller rolls a new segment.
	ErrFull = errors.New("segment: full")
	// ErrOutOfRange is returned for an offset below Base or at or past Next.
	ErrOutOfRange = errors.New("segment: offset out of range")
	// ErrTruncated is returned when bytes a reader was promised were cut off by a
	// truncation while it held them.
	ErrTruncated = errors.New("segment: bytes truncated under the reader")
)

// CorruptionError is the first unreadable byte of a segment file; recovery truncates the
// log there.
type CorruptionError struct {
	Path   string
	Offset int64 // byte position in the file
	Err    error
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("segment: %s: corrupt at byte %d: %v", e.Path, e.Offset, e.Err)
}

func (e *CorruptionError) Unwrap() error { return e.Err }

// Is makes every CorruptionError match ErrCorrupt.
func (e *CorruptionError) Is(target error) bool { return target == ErrCorrupt }
