package glusterfs

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestHTIMETail(t *testing.T) {
	brick := fakeBrick(t, map[int64][]rollover{t0: {{t0 + 1, true, false}, {t0 + 2, false, false}}})
	tail := NewHTIMETail(brick)
	got := func() []string {
		t.Helper()
		ents, err := tail.Next()
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, e := range ents {
			s = append(s, fmt.Sprintf("%d/%v", e.Epoch-t0, e.Empty))
		}
		return s
	}
	if s := fmt.Sprint(got()); s != "[1/false 2/true]" {
		t.Fatalf("first read: %s", s)
	}
	if s := got(); len(s) != 0 {
		t.Fatalf("nothing appended, got %v", s)
	}
	idx := filepath.Join(brick, ChangelogDir, "htime", fmt.Sprintf("HTIME.%d", t0))
	f, err := os.OpenFile(idx, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// One whole entry, then half of the next: only the whole one is read.
	next := fmt.Sprintf("/b/%s/2026/11/26/CHANGELOG.%d\x00", ChangelogDir, t0+3)
	half := fmt.Sprintf("/b/%s/2026/11/26/CHANGELOG.%d", ChangelogDir, t0+3)
	f.WriteString(next + half[:10])
	if s := fmt.Sprint(got()); s != "[3/false]" {
		t.Fatalf("after an append: %s", s)
	}
	f.WriteString(half[10:] + "\x00")
	f.Close()
	if s := fmt.Sprint(got()); s != "[3/false]" {
		t.Fatalf("the rest of the half-written entry: %s", s)
	}
	// The changelog turned on again: a new index, read from its start.
	if err := os.WriteFile(filepath.Join(brick, ChangelogDir, "htime", fmt.Sprintf("HTIME.%d", t0+10)),
		[]byte(fmt.Sprintf("/b/%s/2026/11/26/changelog.%d\x00", ChangelogDir, t0+11)), 0o644); err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprint(got()); s != "[11/true]" {
		t.Fatalf("a new index: %s", s)
	}
	if s := got(); len(s) != 0 {
		t.Fatalf("nothing appended to the new index, got %v", s)
	}
}

func TestHTIMETailNoIndex(t *testing.T) {
	ents, err := NewHTIMETail(t.TempDir()).Next()
	if err != nil || len(ents) != 0 {
		t.Fatalf("no index: %v, %v", ents, err)
	}
}
