package replication

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// nullSM is a state machine that only counts: the benchmark measures replication.
type nullSM struct {
	mu sync.Mutex
	n  int64
}

func (s *nullSM) Apply(index, term uint64, entry []byte) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	return s.n
}
func (s *nullSM) Commit(uint64)             {}
func (s *nullSM) Sync() error               { return nil }
func (s *nullSM) Snapshot() ([]byte, error) { return nil, nil }
func (s *nullSM) Restore([]byte) error      { return nil }

// BenchmarkRaftReplicate measures Replicate through a three-node in-process cluster over
// real TCP and real disks: entries of the given size, concurrency callers at once.
func BenchmarkRaftReplicate(b *testing.B) {
	for _, tc := range []struct{ size, conc int }{{1 << 20, 5}, {16 << 10, 64}, {1 << 10, 64}} {
		b.Run(fmt.Sprintf("entry=%d/concurrency=%d", tc.size, tc.conc), func(b *testing.B) {
			c := newTestCluster(b, 3, func(cfg *ClusterConfig) { cfg.GroupsPerNode = 1 })
			ctx := context.Background()
			topic, err := c.any().ctrl.CreateTopic(ctx, TopicSpec{Name: "bench", Partitions: 1, ReplicationFactor: -1})
			if err != nil {
				b.Fatal(err)
			}
			key := partitionKey(topic.ID, 0)
			for _, n := range c.nodes {
				n.mu.Lock()
				n.mu.Unlock()
			}
			leader := c.leaderOf(key, 20*time.Second)
			entry := make([]byte, tc.size)
			b.SetBytes(int64(tc.size))
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N/tc.conc + 1
			start := time.Now()
			for range tc.conc {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range per {
						if _, err := leader.repl.Replicate(ctx, key, entry); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(per*tc.conc)/time.Since(start).Seconds(), "entries/s")
		})
	}
}
