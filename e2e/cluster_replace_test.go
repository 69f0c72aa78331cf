package e2e

import (
	"os"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/testnode"
)

// A node whose disk is lost is replaced by starting the same node ID with an empty data
// directory: it gets the controller's metadata and each group's snapshot, copies the
// partitions' data from the leader, and then holds everything: with the leader killed and
// the other follower restarted behind it, it leads, and the whole history reads back.
func TestClusterNodeReplacedEmpty(t *testing.T) {
	followerReturns(t, "replaced", func(_ *clusterHarness, f *testnode.Node, _ *checker, _ time.Time) {
		if err := os.RemoveAll(f.DataDir); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s's data directory removed", f.Name)
	})
}
