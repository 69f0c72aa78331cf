package protocol

import (
	"path/filepath"

	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sys/unix"
)

// DescribeLogDirs: v0-4.
//   - One log directory, the data directory that holds this node's partitions (in a
//     cluster, its replicas: leaders and followers alike), with each partition's size on
//     disk. Topics null asks for every partition here; a partition asked for that has no
//     replica here is left out, as Kafka does.
//   - OffsetLag is 0: a partition holds committed entries only. IsFuture is false (no
//     replica moves between directories).
//   - v4: the file system's total and usable bytes (-1 when it cannot be read).
func init() { register(kmsg.DescribeLogDirs, 0, 4, (*Server).describeLogDirs) }

func (s *Server) describeLogDirs(r *Request) (kmsg.Response, error) {
	req := r.Body.(*kmsg.DescribeLogDirsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeLogDirsResponse)
	var want map[string]map[int32]bool // nil: every partition
	if req.Topics != nil {
		want = map[string]map[int32]bool{}
		for _, t := range req.Topics {
			if want[t.Topic] == nil {
				want[t.Topic] = map[int32]bool{}
			}
			for _, p := range t.Partitions {
				want[t.Topic][p] = true
			}
		}
	}
	dir := kmsg.NewDescribeLogDirsResponseDir()
	dir.Dir = s.parts.DataDir()
	if abs, err := filepath.Abs(dir.Dir); err == nil {
		dir.Dir = abs
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir.Dir, &st); err == nil {
		dir.TotalBytes = int64(st.Blocks) * int64(st.Bsize)
		dir.UsableBytes = int64(st.Bavail) * int64(st.Bsize)
	}
	var topic *kmsg.DescribeLogDirsResponseDirTopic
	for _, p := range s.parts.Partitions() { // sorted by topic, then partition
		if want != nil && !want[p.Topic()][p.Index()] {
			continue
		}
		if topic == nil || topic.Topic != p.Topic() {
			dir.Topics = append(dir.Topics, kmsg.NewDescribeLogDirsResponseDirTopic())
			topic = &dir.Topics[len(dir.Topics)-1]
			topic.Topic = p.Topic()
		}
		dp := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
		dp.Partition = p.Index()
		dp.Size = p.Size()
		topic.Partitions = append(topic.Partitions, dp)
	}
	resp.Dirs = append(resp.Dirs, dir)
	return resp, nil
}
