package replication

import (
	"bytes"
	"strings"

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
		Output:      &zapWriter{logger: logger},
		DisableTime: true,
	})
}

// zapWriter turns hclog's text lines ("[WARN]  raft: message: key=value") into zap entries
// at the matching level.
type zapWriter struct{ logger *zap.Logger }

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
		if ce := w.logger.Check(lvl, s); ce != nil {
			ce.Write()
		}
	}
	return len(p), nil
}
