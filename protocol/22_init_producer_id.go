package protocol

import (
	"context"
	"math"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
)

// InitProducerId: v0-4.
//   - Idempotent producers only: a transactional ID gets
//     TRANSACTIONAL_ID_AUTHORIZATION_FAILED (transactions are not supported).
//   - v3+: a producer that sends its ID and epoch gets the epoch bumped (a new ID when the
//     epoch would overflow); otherwise a new ID with epoch 0.
//   - IDs come from blocks reserved at the controller, so they are unique across restarts
//     and nodes.
func init() { register(kmsg.InitProducerID, 0, 4, (*Server).initProducerID) }

// producerIDBlockSize is how many producer IDs are reserved at the controller at a time.
const producerIDBlockSize = 1000

// producerIDBlock hands out IDs from the current reserved block.
type producerIDBlock struct {
	mu         sync.Mutex
	next, last int64 // next <= last when IDs remain
}

func (b *producerIDBlock) take(ctx context.Context, s *Server) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.next == 0 || b.next > b.last {
		first, err := s.ctrl.AllocateProducerIDs(ctx, producerIDBlockSize)
		if err != nil {
			return 0, err
		}
		b.next, b.last = first, first+producerIDBlockSize-1
	}
	id := b.next
	b.next++
	return id, nil
}

func (s *Server) initProducerID(r *Request) (kmsg.Response, error) {
	req := r.Body.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil && *req.TransactionalID != "" {
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return resp, nil
	}
	if req.Version >= 3 && req.ProducerID >= 0 && req.ProducerEpoch >= 0 && req.ProducerEpoch < math.MaxInt16 {
		resp.ProducerID, resp.ProducerEpoch = req.ProducerID, req.ProducerEpoch+1
		return resp, nil
	}
	id, err := s.producerIDs.take(r.Ctx, s)
	if err != nil {
		r.Log.Warn("allocating producer ids failed", zap.Error(err))
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp, nil
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp, nil
}
