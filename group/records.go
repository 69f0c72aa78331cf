package group

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Versions of the __consumer_offsets keys and values this package writes. Key versions 0
// and 1 are offset commits, 2 is group metadata; Kafka's newer consumer-protocol records
// (key versions 3+) are skipped when read.
const (
	offsetKeyVersion   = 1
	offsetValueVersion = 3
	groupKeyVersion    = 2
	groupValueVersion  = 3
)

// ErrCorruptRecord is returned (wrapped) for a __consumer_offsets key or value that does
// not decode.
var ErrCorruptRecord = errors.New("group: corrupt __consumer_offsets record")

// offsetRecord is a decoded offset commit: a nil value is a tombstone.
type offsetRecord struct {
	key   kmsg.OffsetCommitKey
	value *kmsg.OffsetCommitValue
}

// groupRecord is a decoded group metadata record: a nil value is a tombstone.
type groupRecord struct {
	key   kmsg.GroupMetadataKey
	value *kmsg.GroupMetadataValue
}

func offsetCommitRecord(group, topic string, partition int32, o offsetEntry) record {
	k := kmsg.OffsetCommitKey{Version: offsetKeyVersion, Group: group, Topic: topic, Partition: partition}
	v := kmsg.OffsetCommitValue{
		Version:         offsetValueVersion,
		Offset:          o.offset,
		LeaderEpoch:     o.leaderEpoch,
		Metadata:        o.metadata,
		CommitTimestamp: o.commitTimestamp,
	}
	return record{key: k.AppendTo(nil), value: v.AppendTo(nil)}
}

func offsetTombstone(group, topic string, partition int32) record {
	k := kmsg.OffsetCommitKey{Version: offsetKeyVersion, Group: group, Topic: topic, Partition: partition}
	return record{key: k.AppendTo(nil)}
}

func groupMetadataRecord(group string, v *kmsg.GroupMetadataValue) record {
	k := kmsg.GroupMetadataKey{Version: groupKeyVersion, Group: group}
	return record{key: k.AppendTo(nil), value: v.AppendTo(nil)}
}

func groupTombstone(group string) record {
	k := kmsg.GroupMetadataKey{Version: groupKeyVersion, Group: group}
	return record{key: k.AppendTo(nil)}
}

// decodeRecord decodes one __consumer_offsets record into an *offsetRecord or a
// *groupRecord; it returns nil, nil for a key version it does not know.
func decodeOffsetsRecord(r record) (any, error) {
	if len(r.key) < 2 {
		return nil, fmt.Errorf("%w: key of %d bytes", ErrCorruptRecord, len(r.key))
	}
	switch version := int16(binary.BigEndian.Uint16(r.key)); version {
	case 0, 1:
		var or offsetRecord
		if err := or.key.ReadFrom(r.key); err != nil {
			return nil, fmt.Errorf("%w: offset commit key: %v", ErrCorruptRecord, err)
		}
		if r.value == nil {
			return &or, nil
		}
		v := kmsg.NewOffsetCommitValue()
		if err := v.ReadFrom(r.value); err != nil {
			return nil, fmt.Errorf("%w: offset commit value: %v", ErrCorruptRecord, err)
		}
		if v.Version < 3 {
			v.LeaderEpoch = -1
		}
		or.value = &v
		return &or, nil
	case 2:
		var gr groupRecord
		if err := gr.key.ReadFrom(r.key); err != nil {
			return nil, fmt.Errorf("%w: group metadata key: %v", ErrCorruptRecord, err)
		}
		if r.value == nil {
			return &gr, nil
		}
		v := kmsg.NewGroupMetadataValue()
		if err := v.ReadFrom(r.value); err != nil {
			return nil, fmt.Errorf("%w: group metadata value: %v", ErrCorruptRecord, err)
		}
		gr.value = &v
		return &gr, nil
	default:
		if version < 0 {
			return nil, fmt.Errorf("%w: key version %d", ErrCorruptRecord, version)
		}
		return nil, nil
	}
}
