package group

import (
	"context"
	"errors"
)

// Topic is the internal topic that holds committed offsets and group metadata.
const Topic = "__consumer_offsets"

// ErrNotLeader is returned (wrapped) by a Log when this node does not lead the partition;
// the coordinator then answers NOT_COORDINATOR.
var ErrNotLeader = errors.New("group: not the leader of the __consumer_offsets partition")

// ErrClosed is returned by Coordinator methods after Close.
var ErrClosed = errors.New("group: coordinator closed")

// Log is the coordinator's view of the partitions of __consumer_offsets. The server
// implements it on partition.Partition; tests use an in-memory one. Methods are called from
// several goroutines, at most one Append at a time per partition.
type Log interface {
	// Append appends batch, one RecordBatch v2 with its base offset unset, to partition p
	// and returns its base offset once it is durable (replicated and synced as any
	// acknowledged produce). It returns an error wrapping ErrNotLeader when this node does
	// not lead p in leader epoch epoch, before the append or once it is done (the batch may
	// then be stored, but not by the leadership the caller loaded the partition under).
	Append(ctx context.Context, p, epoch int32, batch []byte) (int64, error)
	// Bounds returns p's log start offset and high watermark.
	Bounds(ctx context.Context, p int32) (start, highWatermark int64, err error)
	// Read returns whole batches of p starting with the one that holds offset from, none at
	// or past the high watermark, about maxBytes in all but at least one batch. It returns
	// no bytes and no error when from is the high watermark.
	Read(ctx context.Context, p int32, from int64, maxBytes int) ([]byte, error)
	// Leader returns what this node knows of p's leader.
	Leader(p int32) Leadership
}

// Leadership is what a node knows of the leader of a __consumer_offsets partition.
type Leadership struct {
	// Node leads the partition; -1 when unknown.
	Node int32
	// Epoch is the partition's leader epoch as this node knows it (the Raft term): each
	// new leadership has a higher one, so a partition led in the same epoch before and
	// after an operation was led by the same node throughout.
	Epoch int32
	// Local is true when this node leads the partition in Epoch and has everything
	// committed before (it may read and write the partition).
	Local bool
}
