package replication

import (
	"bytes"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// hclogFor returns an hclog.Logger for hashicorp/raft that writes through logger. Raft's
// own debug chatter is dropped unless logger is at debug level.
func hclogFor(logger *zap.Logger, name string) hclog.Logger {
	level := hclog.Info
	if logger.Core().Enabled(zapcore.DebugLevel) {
		level = hclog.Debug
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:        name,
		Level:       level,
		Output:      &zapWriter{logger: logger, seen: map[string]*lineCount{}},
		DisableTime: true,
	})
}

// zapWriter turns hclog's text lines ("[WARN]  raft: message: key=value") into zap entries
// at the matching level. Warnings and errors that repeat (a peer that is down makes raft
// log every failed heartbeat) are logged once per repeatEvery, with a count of the
// suppressed ones.
type zapWriter struct {
	logger *zap.Logger
	mu     sync.Mutex
	seen   map[string]*lineCount
}

type lineCount struct {
	last       time.Time
	suppressed int
}

const repeatEvery = 10 * time.Second

// allow says whether a line with this key may be logged now, and how many were held back.
func (w *zapWriter) allow(key string, now time.Time) (bool, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	c, ok := w.seen[key]
	if !ok {
		if len(w.seen) > 1000 {
			clear(w.seen)
		}
		w.seen[key] = &lineCount{last: now}
		return true, 0
	}
	if now.Sub(c.last) < repeatEvery {
		c.suppressed++
		return false, 0
	}
	n := c.suppressed
	c.last, c.suppressed = now, 0
	return true, n
}

func (w *zapWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		s := strings.TrimSpace(string(line))
		if s == "" {
			continue
		}
		lvl := zapcore.InfoLevel
		for prefix, l := range map[string]zapcore.Level{
			"[TRACE]": zapcore.DebugLevel, "[DEBUG]": zapcore.DebugLevel, "[INFO]": zapcore.InfoLevel,
			"[WARN]": zapcore.WarnLevel, "[ERROR]": zapcore.ErrorLevel,
		} {
			if strings.HasPrefix(s, prefix) {
				lvl = l
				s = strings.TrimSpace(s[len(prefix):])
				break
			}
		}
		ce := w.logger.Check(lvl, s)
		if ce == nil {
			continue
		}
		if lvl >= zapcore.WarnLevel {
			key := s
			if i := strings.Index(s, ": "); i >= 0 {
				if j := strings.Index(s[i+2:], ": "); j >= 0 {
					key = s[:i+2+j]
				}
			}
			ok, n := w.allow(key, time.Now())
			if !ok {
				continue
			}
			if n > 0 {
				ce.Write(zap.Int("similar_suppressed", n))
				continue
			}
		}
		ce.Write()
	}
	return len(p), nil
}
