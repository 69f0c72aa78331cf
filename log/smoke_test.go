package log

import (
	"bytes"
	"testing"
)

func TestSmoke(t *testing.T) {
	for _, format := range []Format{FormatKafka, FormatEntries} {
		t.Run(format.String(), func(t *testing.T) {
			cfg, _ := memConfig(format)
			cfg.SegmentBytes = 2000
			l := mustOpen(t, "/d", cfg)
			var want [][]byte
			for i := 0; i < 50; i++ {
				e := batch(1+i%3, int64(1000+i))
				if format == FormatEntries {
					e = bytes.Repeat([]byte{byte(i)}, 10+i)
				}
				want = append(want, e)
				mustAppend(t, l, e)
			}
			mustSync(t, l)
			check := func(l *Log) {
				t.Helper()
				b, _ := readBytes(t, l, 0, 1<<30, l.LogEndOffset())
				var got [][]byte
				var err error
				if format == FormatEntries {
					_, got, err = entriesOf(b)
				} else {
					_, got, err = kafkaEntries(b)
				}
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(want) {
					t.Fatalf("got %d entries, want %d", len(got), len(want))
				}
				for i := range got {
					if format == FormatEntries && !bytes.Equal(got[i], want[i]) || format == FormatKafka && !sameBatch(got[i], want[i]) {
						t.Fatalf("entry %d differs", i)
					}
				}
			}
			check(l)
			t.Logf("segments %d end %d", l.Segments(), l.LogEndOffset())
			end := l.LogEndOffset()
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = mustOpen(t, "/d", cfg)
			if l.LogEndOffset() != end {
				t.Fatalf("end %d after reopen, want %d", l.LogEndOffset(), end)
			}
			check(l)
			l.Close()
		})
	}
}
