package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseFrom(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		in   string
		want startSpec
		err  bool
	}{
		{"beginning", "beginning", startSpec{kind: startBeginning}, false},
		{"earliest alias", "earliest", startSpec{kind: startBeginning}, false},
		{"end", "end", startSpec{kind: startEnd}, false},
		{"latest alias upper case", "LATEST", startSpec{kind: startEnd}, false},
		{"offset", "42", startSpec{kind: startOffset, offset: 42}, false},
		{"offset zero", "0", startSpec{kind: startOffset}, false},
		{"from end", "-10", startSpec{kind: startFromEnd, offset: 10}, false},
		{"unix ms", "@1700000000000", startSpec{kind: startTime, millis: 1700000000000}, false},
		{"rfc3339", "@2026-11-28T11:00:00Z", startSpec{kind: startTime, millis: now.Add(-time.Hour).UnixMilli()}, false},
		{"rfc3339 with zone", "@2026-11-28T13:00:00+02:00", startSpec{kind: startTime, millis: now.Add(-time.Hour).UnixMilli()}, false},
		{"relative duration", "@-5m", startSpec{kind: startTime, millis: now.Add(-5 * time.Minute).UnixMilli()}, false},
		{"empty", "", startSpec{}, true},
		{"word", "middle", startSpec{}, true},
		{"empty time", "@", startSpec{}, true},
		{"bad time", "@yesterday", startSpec{}, true},
		{"bad duration", "@-5parsecs", startSpec{}, true},
		{"float", "1.5", startSpec{}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseFrom(c.in, now)
			if (err != nil) != c.err {
				t.Fatalf("parseFrom(%q) error = %v, want error %v", c.in, err, c.err)
			}
			if err == nil && got != c.want {
				t.Fatalf("parseFrom(%q) = %+v, want %+v", c.in, got, c.want)
			}
		})
	}
}

func TestParseSeekTo(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		in   string
		want startSpec
		err  bool
	}{
		{"earliest", "earliest", startSpec{kind: startBeginning}, false},
		{"latest", "latest", startSpec{kind: startEnd}, false},
		{"offset", "offset:17", startSpec{kind: startOffset, offset: 17}, false},
		{"timestamp ms", "timestamp:1700000000000", startSpec{kind: startTime, millis: 1700000000000}, false},
		{"timestamp rfc3339", "timestamp:2026-11-28T12:00:00Z", startSpec{kind: startTime, millis: now.UnixMilli()}, false},
		{"timestamp relative", "timestamp:-1h", startSpec{kind: startTime, millis: now.Add(-time.Hour).UnixMilli()}, false},
		{"negative offset", "offset:-1", startSpec{}, true},
		{"offset without value", "offset:", startSpec{}, true},
		{"unknown kind", "middle:3", startSpec{}, true},
		{"bare number", "17", startSpec{}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseSeekTo(c.in, now)
			if (err != nil) != c.err {
				t.Fatalf("parseSeekTo(%q) error = %v, want error %v", c.in, err, c.err)
			}
			if err == nil && got != c.want {
				t.Fatalf("parseSeekTo(%q) = %+v, want %+v", c.in, got, c.want)
			}
		})
	}
}

func TestResolveOne(t *testing.T) {
	b := partitionBounds{start: 10, end: 20}
	cases := []struct {
		name string
		spec startSpec
		want int64
	}{
		{"beginning", startSpec{kind: startBeginning}, 10},
		{"end", startSpec{kind: startEnd}, 20},
		{"offset inside", startSpec{kind: startOffset, offset: 15}, 15},
		{"offset below start clamps", startSpec{kind: startOffset, offset: 3}, 10},
		{"offset past end clamps", startSpec{kind: startOffset, offset: 99}, 20},
		{"from end", startSpec{kind: startFromEnd, offset: 4}, 16},
		{"from end past start clamps", startSpec{kind: startFromEnd, offset: 40}, 10},
		{"time without listed offset is the end", startSpec{kind: startTime, millis: 5}, 20},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := resolveOne(c.spec, b, nil, "t", 0); got != c.want {
				t.Fatalf("resolveOne(%+v) = %d, want %d", c.spec, got, c.want)
			}
		})
	}
}

func TestSplitLine(t *testing.T) {
	cases := []struct {
		name, line, sep string
		key, value      []byte
	}{
		{"no separator flag", "a=b", "", nil, []byte("a=b")},
		{"split at first", "k=v=w", "=", []byte("k"), []byte("v=w")},
		{"missing separator", "plain", "=", nil, []byte("plain")},
		{"empty key", "=v", "=", []byte{}, []byte("v")},
		{"empty value", "k=", "=", []byte("k"), []byte{}},
		{"multi-byte separator", "k::v", "::", []byte("k"), []byte("v")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k, v := splitLine([]byte(c.line), c.sep)
			if (k == nil) != (c.key == nil) || !bytes.Equal(k, c.key) || !bytes.Equal(v, c.value) {
				t.Fatalf("splitLine(%q, %q) = %q, %q; want %q, %q", c.line, c.sep, k, v, c.key, c.value)
			}
		})
	}
}

func TestReadLines(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want []string
	}{
		{"trailing newline", "a\nb\n", []string{"a", "b"}},
		{"no trailing newline", "a\nb", []string{"a", "b"}},
		{"crlf", "a\r\nb\r\n", []string{"a", "b"}},
		{"empty lines kept", "a\n\nb\n", []string{"a", "", "b"}},
		{"empty input", "", nil},
		{"long line", strings.Repeat("x", 200<<10) + "\n", []string{strings.Repeat("x", 200<<10)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			err := readLines(strings.NewReader(c.in), func(l []byte) error {
				got = append(got, string(l))
				return nil
			})
			if err != nil || !slices.Equal(got, c.want) {
				t.Fatalf("readLines = %q, %v; want %q", got, err, c.want)
			}
		})
	}
	stop := errors.New("stop")
	n := 0
	err := readLines(strings.NewReader("a\nb\nc\n"), func([]byte) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("readLines with a failing callback = %v after %d lines, want stop after 1", err, n)
	}
}

func TestParseFlagsValues(t *testing.T) {
	if hs, err := parseHeaders([]string{"a=1", "b=x=y", "c="}); err != nil || len(hs) != 3 ||
		hs[0].Key != "a" || string(hs[0].Value) != "1" || string(hs[1].Value) != "x=y" || string(hs[2].Value) != "" {
		t.Fatalf("parseHeaders = %+v, %v", hs, err)
	}
	for _, bad := range []string{"novalue", "=v"} {
		if _, err := parseHeaders([]string{bad}); err == nil {
			t.Errorf("parseHeaders(%q) succeeded, want an error", bad)
		}
	}
	for in, want := range map[string]acksMode{"all": acksAll, "-1": acksAll, "1": acksLeader, "0": acksNone, "none": acksNone} {
		if got, err := parseAcks(in); err != nil || got != want {
			t.Errorf("parseAcks(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseAcks("2"); err == nil {
		t.Error("parseAcks(2) succeeded")
	}
	for _, c := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		if _, err := parseCompression(c); err != nil {
			t.Errorf("parseCompression(%q): %v", c, err)
		}
	}
	if _, err := parseCompression("brotli"); err == nil {
		t.Error("parseCompression(brotli) succeeded")
	}
	cfg, err := parseConfigs([]string{"retention.ms=1000", "cleanup.policy=compact"})
	if err != nil || *cfg["retention.ms"] != "1000" || *cfg["cleanup.policy"] != "compact" {
		t.Fatalf("parseConfigs = %v, %v", cfg, err)
	}
	if _, err := parseConfigs([]string{"retention.ms"}); err == nil {
		t.Error("parseConfigs without = succeeded")
	}
}

func TestLookup(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		wantPath string // "" for help
		wantRest []string
		err      bool
	}{
		{"no args is help", nil, "", nil, false},
		{"help word", []string{"help"}, "", nil, false},
		{"help flag", []string{"--help"}, "", nil, false},
		{"two words", []string{"topic", "create", "orders", "-p", "3"}, "topic create", []string{"orders", "-p", "3"}, false},
		{"leaf command", []string{"produce", "orders", "-K", "="}, "produce", []string{"orders", "-K", "="}, false},
		{"global flag first", []string{"--brokers", "h:1", "topic", "list"}, "topic list", []string{"--brokers", "h:1"}, false},
		{"global flag with =", []string{"--format=json", "consume", "t"}, "consume", []string{"t", "--format=json"}, false},
		{"unknown command", []string{"frobnicate"}, "", nil, true},
		{"missing subcommand", []string{"topic"}, "", nil, true},
		{"unknown subcommand", []string{"topic", "rename"}, "", nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd, rest, err := lookup(c.args)
			if (err != nil) != c.err {
				t.Fatalf("lookup(%q) error = %v, want error %v", c.args, err, c.err)
			}
			if err != nil {
				if !errors.Is(err, ErrUsage) {
					t.Fatalf("lookup error %v is not ErrUsage", err)
				}
				return
			}
			path := ""
			if cmd != nil {
				path = cmd.path
			}
			if path != c.wantPath || !slices.Equal(rest, c.wantRest) {
				t.Fatalf("lookup(%q) = %q %q, want %q %q", c.args, path, rest, c.wantPath, c.wantRest)
			}
		})
	}
}

func TestCellAndJSONFields(t *testing.T) {
	if got := cell("a\tb\nc"); got != "a b c" {
		t.Errorf("cell kept control characters: %q", got)
	}
	if got := cell(""); got != "-" {
		t.Errorf("empty cell = %q, want -", got)
	}
	if got := cell([]int32{1, 2, 3}); got != "1,2,3" {
		t.Errorf("int32 list cell = %q", got)
	}
	b, _ := json.Marshal(struct {
		A, B, C bytesField
	}{bytesField{[]byte("hi")}, bytesField{[]byte{0xff, 0x00}}, bytesField{nil}})
	if string(b) != `{"A":"hi","B":{"base64":"/wA="},"C":null}` {
		t.Errorf("bytesField JSON = %s", b)
	}
	if got := text([]byte{0xff}); got != `"\xff"` {
		t.Errorf("text of invalid UTF-8 = %q", got)
	}
	if got := formatMillis(0); got != "1970-01-01T00:00:00.000Z" {
		t.Errorf("formatMillis(0) = %q", got)
	}
	if got := humanBytes(1536); got != "1.5 KiB" {
		t.Errorf("humanBytes(1536) = %q", got)
	}
}

func TestHistogramBuckets(t *testing.T) {
	// Every value lies in [low(bucket), low(bucket+1)), and buckets are ordered.
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 100000; i++ {
		v := rng.Uint64() >> rng.IntN(64)
		b := histBucket(v)
		if lo, hi := histLow(b), histLow(b+1); v < lo || (hi > lo && v >= hi) {
			t.Fatalf("value %d in bucket %d = [%d, %d)", v, b, lo, hi)
		}
	}
	for b := 1; b < len(histogram{}.counts); b++ {
		if histLow(b) <= histLow(b-1) {
			t.Fatalf("bucket %d starts at %d, not after bucket %d at %d", b, histLow(b), b-1, histLow(b-1))
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	if h.quantile(0.5) != 0 {
		t.Fatal("empty histogram quantile is not 0")
	}
	// 1..10000 microseconds, each once: p50 ~ 5 ms, p99 ~ 9.9 ms, within 1%.
	for i := 1; i <= 10000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5 * time.Millisecond}, {0.99, 9900 * time.Microsecond}, {0.999, 9990 * time.Microsecond}, {1, 10 * time.Millisecond}} {
		got := h.quantile(c.q)
		if diff := float64(got-c.want) / float64(c.want); diff > 0.01 || diff < -0.01 {
			t.Errorf("quantile(%v) = %v, want %v within 1%%", c.q, got, c.want)
		}
	}
	if h.min != time.Microsecond || h.max != 10*time.Millisecond || h.total != 10000 {
		t.Errorf("min %v max %v total %d", h.min, h.max, h.total)
	}
	var other histogram
	other.record(time.Second)
	h.merge(&other)
	if h.max != time.Second || h.total != 10001 || h.quantile(1) != time.Second {
		t.Errorf("after merge: max %v total %d p100 %v", h.max, h.total, h.quantile(1))
	}
}

func TestStreamTable(t *testing.T) {
	var b bytes.Buffer
	st := newStreamTable(&b, "A", "BB", "C")
	if err := st.flush(); err != nil || b.Len() != 0 {
		t.Fatalf("empty flush wrote %q", b.String())
	}
	st.row(1, "x", "last")
	st.flush()
	st.row(22, "yyyy", "z")
	st.flush()
	want := "A  BB  C\n1  x   last\n22  yyyy  z\n"
	if b.String() != want {
		t.Fatalf("stream table:\n%q\nwant\n%q", b.String(), want)
	}
	b.Reset()
	st = newStreamTable(&b, "A", "B")
	st.row("α", "1")
	st.flush()
	st.row("β", "2")
	st.flush()
	if want := "A  B\nα  1\nβ  2\n"; b.String() != want {
		t.Fatalf("stream table with multi-byte runes:\n%q\nwant\n%q", b.String(), want)
	}
}
