package protocol

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"go.uber.org/zap"

	"github.com/sluicemq/sluice/partition"
	"github.com/sluicemq/sluice/replication"
)

// errorMapping turns the errors other packages return into Kafka error codes; this is the
// only place that happens. Entries are checked in order with errors.Is.
var errorMappings = []struct {
	err  error
	code *kerr.Error
}{
	{partition.ErrCorruptBatch, kerr.CorruptMessage},
	{partition.ErrInvalidRecord, kerr.InvalidRecord},
	{partition.ErrUnsupportedMagic, kerr.UnsupportedForMessageFormat},
	{partition.ErrUnsupportedCompression, kerr.UnsupportedCompressionType},
	{partition.ErrMessageTooLarge, kerr.MessageTooLarge},
	{partition.ErrOutOfOrderSequence, kerr.OutOfOrderSequenceNumber},
	{partition.ErrInvalidProducerEpoch, kerr.InvalidProducerEpoch},
	{partition.ErrClosed, kerr.NotLeaderForPartition},
	{partition.ErrOffsetOutOfRange, kerr.OffsetOutOfRange},
	{partition.ErrStorage, kerr.KafkaStorageError},
	{partition.ErrInvalidConfig, kerr.InvalidConfig},
	{replication.ErrSyncFailed, kerr.KafkaStorageError},
	{replication.ErrStorage, kerr.KafkaStorageError},
	{replication.ErrNotLeader, kerr.NotLeaderForPartition},
	{replication.ErrUnknownKey, kerr.NotLeaderForPartition},
	{replication.ErrOutcomeUnknown, kerr.RequestTimedOut},
	{replication.ErrTopicExists, kerr.TopicAlreadyExists},
	{replication.ErrUnknownTopic, kerr.UnknownTopicOrPartition},
	{replication.ErrNotEnoughNodes, kerr.InvalidReplicationFactor},
	{replication.ErrInvalid, kerr.InvalidRequest},
	{replication.ErrElectionNotNeeded, kerr.ElectionNotNeeded},
	{replication.ErrPreferredLeaderNotAvailable, kerr.PreferredLeaderNotAvailable},
	{context.DeadlineExceeded, kerr.RequestTimedOut},
	{context.Canceled, kerr.RequestTimedOut},
}

// errCode returns the Kafka error code for err (0 for nil). Errors with no mapping are
// logged and reported as UNKNOWN_SERVER_ERROR.
func (s *Server) errCode(err error) int16 {
	if err == nil {
		return 0
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	for _, m := range errorMappings {
		if errors.Is(err, m.err) {
			return m.code.Code
		}
	}
	s.log.Error("unexpected error served as UNKNOWN_SERVER_ERROR", zap.Error(err))
	return kerr.UnknownServerError.Code
}

// errMessage returns err's text for the responses that carry one, or nil.
func errMessage(err error) *string {
	if err == nil {
		return nil
	}
	m := err.Error()
	return &m
}
