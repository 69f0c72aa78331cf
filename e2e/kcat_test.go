package e2e

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestKcat drives the server with kcat (librdkafka): metadata, produce with keys and
// headers, consume from the beginning, by timestamp, offsets for times, and every codec.
func TestKcat(t *testing.T) {
	kcat := requireKcat(t)
	n := startNode(t)
	createTopic(t, n, "kc", 2)
	k := func(stdin string, args ...string) proc {
		t.Helper()
		p := runProg(t, 60*time.Second, stdin, kcat, append([]string{"-b", n.Addr}, args...)...)
		if p.code != 0 {
			t.Fatalf("kcat %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), p.code, p.stdout, p.stderr)
		}
		return p
	}

	t.Run("metadata", func(t *testing.T) {
		out := k("", "-L").stdout
		for _, re := range []string{
			`(?m)^ 1 brokers:$`,
			`(?m)^  broker \d+ at ` + regexp.QuoteMeta(n.Addr),
			`(?m)^  topic "kc" with 2 partitions:$`,
			`(?m)^    partition 0, leader \d+, replicas: \d+, isrs: \d+$`,
			`(?m)^    partition 1, leader \d+, replicas: \d+, isrs: \d+$`,
		} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Fatalf("kcat -L output does not match %s:\n%s", re, out)
			}
		}
	})

	t.Run("produce and consume", func(t *testing.T) {
		k("k1:v1\nk2:v2\nk3:v3\n", "-P", "-t", "kc", "-p", "0", "-K", ":", "-H", "h=1")
		k("solo\n", "-P", "-t", "kc", "-p", "1")
		out := k("", "-C", "-t", "kc", "-p", "0", "-o", "beginning", "-e", "-q", "-f", `%p %o %k %s %h\n`).stdout
		if want := "0 0 k1 v1 h=1\n0 1 k2 v2 h=1\n0 2 k3 v3 h=1\n"; out != want {
			t.Fatalf("kcat -C partition 0:\n%q\nwant\n%q", out, want)
		}
		// The whole topic: both partitions, each in order.
		out = k("", "-C", "-t", "kc", "-o", "beginning", "-e", "-q", "-f", `%p %o %s\n`).stdout
		lines := strings.Split(strings.TrimSpace(out), "\n")
		var p0 []string
		has1 := false
		for _, l := range lines {
			if strings.HasPrefix(l, "0 ") {
				p0 = append(p0, l)
			}
			has1 = has1 || l == "1 0 solo"
		}
		if len(lines) != 4 || !has1 || strings.Join(p0, ",") != "0 0 v1,0 1 v2,0 2 v3" {
			t.Fatalf("kcat -C of the topic:\n%s", out)
		}
		// franz-go reads what librdkafka wrote.
		log := readAll(t, n, "kc")
		if len(log[0]) != 3 || string(log[0][1].Key) != "k2" || string(log[0][1].Value) != "v2" ||
			len(log[0][1].Headers) != 1 || log[0][1].Headers[0].Key != "h" || string(log[0][1].Headers[0].Value) != "1" {
			t.Fatalf("franz-go read partition 0 as %+v", log[0])
		}
	})

	t.Run("timestamps", func(t *testing.T) {
		createTopic(t, n, "kts", 1)
		base := time.Now().Add(-time.Hour).Truncate(time.Second)
		cl := client(t, n)
		var rs []*kgo.Record
		for i := 0; i < 10; i++ {
			rs = append(rs, &kgo.Record{Topic: "kts", Value: []byte(fmt.Sprintf("t%d", i)), Timestamp: base.Add(time.Duration(i) * time.Second)})
		}
		produceSync(t, cl, rs...)
		ms := func(i float64) int64 { return base.UnixMilli() + int64(i*1000) }

		out := k("", "-C", "-t", "kts", "-o", "s@"+strconv.FormatInt(ms(2.5), 10), "-e", "-q", "-f", `%o %T %s\n`).stdout
		var want strings.Builder
		for i := 3; i < 10; i++ {
			fmt.Fprintf(&want, "%d %d t%d\n", i, ms(float64(i)), i)
		}
		if out != want.String() {
			t.Fatalf("kcat -o s@<base+2.5s>:\n%s\nwant\n%s", out, want.String())
		}
		for _, c := range []struct {
			ts   int64
			want int64
		}{
			{ms(2.5), 3},
			{ms(0), 0},
			{ms(9), 9},
			{ms(3600), -1}, // after every record
			{-1, 10},       // latest
			{-2, 0},        // earliest
		} {
			out := k("", "-Q", "-t", fmt.Sprintf("kts:0:%d", c.ts)).stdout
			if want := fmt.Sprintf("kts [0] offset %d", c.want); !strings.Contains(out, want) {
				t.Fatalf("kcat -Q at %d: %q, want %q", c.ts, out, want)
			}
		}
	})

	t.Run("codecs", func(t *testing.T) {
		createTopic(t, n, "kz", 1)
		codecs := []string{"none", "gzip", "snappy", "lz4", "zstd"}
		for _, z := range codecs {
			var in strings.Builder
			for i := 0; i < 50; i++ {
				fmt.Fprintf(&in, "%s-%02d-%s\n", z, i, strings.Repeat("x", 100))
			}
			k(in.String(), "-P", "-t", "kz", "-z", z)
		}
		out := k("", "-C", "-t", "kz", "-o", "beginning", "-e", "-q", "-f", `%s\n`).stdout
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 50*len(codecs) {
			t.Fatalf("read %d records, want %d", len(lines), 50*len(codecs))
		}
		for i, l := range lines {
			z, n := codecs[i/50], i%50
			if want := fmt.Sprintf("%s-%02d-%s", z, n, strings.Repeat("x", 100)); l != want {
				t.Fatalf("record %d = %q, want %q", i, l, want)
			}
		}
	})
}
