package cli

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"
)

// table writes aligned columns. Cells are sanitized so a value with a tab or newline
// cannot break the layout.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(toAny(header)...)
	}
	return t
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func (t *table) row(cells ...any) {
	parts := make([]string, len(cells))
	for i, c := range cells {
		parts[i] = cell(c)
	}
	fmt.Fprintln(t.tw, strings.Join(parts, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// cell renders one table cell.
func cell(v any) string {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case []int32:
		s = joinInt32s(x)
	case nil:
		s = "-"
	case error:
		s = x.Error()
	case fmt.Stringer:
		s = x.String()
	default:
		s = fmt.Sprint(x)
	}
	s = strings.Map(func(r rune) rune {
		switch r {
		case '\t', '\n', '\r':
			return ' '
		}
		return r
	}, s)
	if s == "" {
		return "-"
	}
	return s
}

func joinInt32s(xs []int32) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.Itoa(int(x))
	}
	return strings.Join(parts, ",")
}

// writeJSON writes v as one line of JSON.
func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

// bytesField is a key, value or header value for JSON output: a string when the bytes are
// UTF-8, otherwise base64 with Base64 set. A nil slice is JSON null.
type bytesField struct {
	b []byte
}

func (f bytesField) MarshalJSON() ([]byte, error) {
	if f.b == nil {
		return []byte("null"), nil
	}
	if utf8.Valid(f.b) {
		return json.Marshal(string(f.b))
	}
	return json.Marshal(map[string]string{"base64": base64.StdEncoding.EncodeToString(f.b)})
}

// text renders bytes for a table: UTF-8 as is, anything else quoted with escapes.
func text(b []byte) string {
	if b == nil {
		return "-"
	}
	if utf8.Valid(b) {
		return string(b)
	}
	return strconv.Quote(string(b))
}

// formatMillis renders a Kafka millisecond timestamp in UTC, RFC 3339 with milliseconds.
func formatMillis(ms int64) string {
	if ms < 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// humanBytes renders a byte count with a binary unit.
func humanBytes(n float64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%.0f B", n)
	}
	units := "KMGTPE"
	i := 0
	for n >= unit*unit && i < len(units)-1 {
		n /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", n/unit, units[i])
}

// plural renders "1 record", "2 records".
func plural(n int64, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// streamTable writes rows in batches under one header. Column widths only grow, so rows
// printed in later batches line up with earlier ones unless a cell is wider than any
// before it.
type streamTable struct {
	w       io.Writer
	header  []string
	widths  []int
	pending [][]string
	started bool
}

func newStreamTable(w io.Writer, header ...string) *streamTable {
	return &streamTable{w: w, header: header, widths: make([]int, len(header))}
}

func (t *streamTable) row(cells ...any) {
	r := make([]string, len(cells))
	for i, c := range cells {
		r[i] = cell(c)
	}
	t.pending = append(t.pending, r)
}

// flush prints the rows added since the last flush (and the header, the first time).
func (t *streamTable) flush() error {
	if len(t.pending) == 0 {
		return nil
	}
	rows := t.pending
	if !t.started {
		rows = append([][]string{t.header}, rows...)
		t.started = true
	}
	for _, r := range rows {
		for i, c := range r {
			t.widths[i] = max(t.widths[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", t.widths[i]-utf8.RuneCountInString(c)+2))
			}
		}
		b.WriteByte('\n')
	}
	t.pending = t.pending[:0]
	_, err := io.WriteString(t.w, b.String())
	return err
}
