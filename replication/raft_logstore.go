package replication

import (
	"path/filepath"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.uber.org/zap"
)

// openEntryLogStore opens a data group's Raft log store.
func openEntryLogStore(dir string, cacheBytes int64, logger *zap.Logger) (raft.LogStore, error) {
	return raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir + ".db")})
}
