package partition

import (
	"encoding/hex"
	"strconv"
)

// Key names a partition to the Replicator: "<topic ID in hex>/<partition>". Topic IDs, not
// names, so that a topic deleted and created again under the same name is a new key.
func Key(topicID [16]byte, partition int32) string {
	b := make([]byte, 0, 32+1+10)
	b = hex.AppendEncode(b, topicID[:])
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(partition), 10)
	return string(b)
}
