package tail

import (
	"strings"
	"sync"
	"testing"
)

func TestBuffer(t *testing.T) {
	b := &Buffer{Max: 8}
	b.Write([]byte("0123"))
	b.Write([]byte("456789ab"))
	if got := b.String(); got != "456789ab" {
		t.Errorf("%q", got)
	}
	for range 100 {
		b.Write([]byte("xyz"))
	}
	if got := b.String(); got != "zxyzxyzxyz"[2:] {
		t.Errorf("after many writes: %q", got)
	}
	if len(b.buf) > 2*b.Max {
		t.Errorf("kept %d bytes, more than twice Max", len(b.buf))
	}
	// Concurrent writers (stdout and stderr pumps).
	c := &Buffer{Max: 64}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				c.Write([]byte("abcd"))
			}
		})
	}
	wg.Wait()
	if got := c.String(); got != strings.Repeat("abcd", 16) {
		t.Errorf("concurrent: %q", got)
	}
}

func TestLines(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb\nc", 5, "a\nb\nc"},
		{"", 3, ""},
	} {
		if got := Lines(tc.in, tc.n); got != tc.want {
			t.Errorf("Lines(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
