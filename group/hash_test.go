package group

import "testing"

func TestPartitionMatchesKafka(t *testing.T) {
	tests := []struct {
		name  string
		group string
		hash  int32
		n     int32
		want  int32
	}{
		{"empty", "", 0, 50, 0},
		{"ascii", "hello", 99162322, 50, 99162322 % 50},
		{"collision Aa", "Aa", 2112, 50, 2112 % 50},
		{"collision BB", "BB", 2112, 50, 2112 % 50},
		{"negative hash", "my-group", -1906497762, 50, 12},
		{"positive hash", "console-consumer-12345", 158455506, 50, 6},
		// Java's "polygenelubricants".hashCode() is Integer.MIN_VALUE; Utils.abs maps it to 0.
		{"min int", "polygenelubricants", -1 << 31, 50, 0},
		// U+1F600 is the surrogate pair D83D DE00 in UTF-16.
		{"surrogate pair", "\U0001F600", 0xD83D*31 + 0xDE00, 50, (0xD83D*31 + 0xDE00) % 50},
		{"one partition", "anything", javaHashCode("anything"), 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := javaHashCode(tt.group); got != tt.hash {
				t.Fatalf("javaHashCode(%q) = %d, want %d", tt.group, got, tt.hash)
			}
			if got := Partition(tt.group, tt.n); got != tt.want {
				t.Fatalf("Partition(%q, %d) = %d, want %d", tt.group, tt.n, got, tt.want)
			}
		})
	}
}
