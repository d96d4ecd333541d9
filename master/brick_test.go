package master

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/georep/georep/master/glusterfs"
)

// htimeBrick is a brick directory with an HTIME index started at start;
// roll appends one rollover to it, as GlusterFS records it: CHANGELOG.<e>
// when it had records, changelog.<e> when not.
type htimeBrick struct {
	t     *testing.T
	path  string
	index string
}

func newHTIMEBrick(t *testing.T, start int64) *htimeBrick {
	b := &htimeBrick{t: t, path: t.TempDir()}
	dir := filepath.Join(b.path, glusterfs.ChangelogDir, "htime")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b.index = filepath.Join(dir, fmt.Sprintf("HTIME.%d", start))
	if err := os.WriteFile(b.index, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *htimeBrick) roll(epoch int64, records bool) {
	name := "changelog"
	if records {
		name = "CHANGELOG"
	}
	f, err := os.OpenFile(b.index, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		b.t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "%s/%s/2026/11/26/%s.%d\x00", b.path, glusterfs.ChangelogDir, name, epoch)
}

// TestReplacedChangelog: two rollovers with records in one second (the
// second changelog renamed onto the first's name) are reported once, as
// soon as the index lists the second; empty rollovers of one second, a
// changelog with records and an empty one of one second, and what rolled
// over before the worker took over are not.
func TestReplacedChangelog(t *testing.T) {
	const t0 = 1795678238
	hb := newHTIMEBrick(t, t0)
	b := &brickState{path: hb.path}
	check := func(wantEpoch int64, want bool) {
		t.Helper()
		ep, ok, err := b.replacedChangelog()
		if err != nil {
			t.Fatal(err)
		}
		if ok != want || (ok && ep != wantEpoch) {
			t.Fatalf("replacedChangelog = %d, %v; want %d, %v", ep, ok, wantEpoch, want)
		}
	}
	// Before the worker's start: not its concern.
	hb.roll(t0+1, true)
	hb.roll(t0+1, true)
	b.startAt(time.Unix(t0+2, 500))
	check(0, false)

	hb.roll(t0+2, false)
	hb.roll(t0+2, false) // empty rollovers leave no file: nothing replaced
	hb.roll(t0+2, true)
	check(0, false)
	hb.roll(t0+3, true)
	check(0, false)
	hb.roll(t0+3, true) // CHANGELOG.<t0+3> replaced
	check(t0+3, true)
	check(0, false) // reported once
	hb.roll(t0+4, true)
	hb.roll(t0+4, false)
	hb.roll(t0+5, true)
	check(0, false)

	// The same, the two rollovers read in two calls, the first before
	// the worker applied anything after them.
	hb.roll(t0+6, true)
	check(0, false)
	b.lastEpoch = time.Unix(t0+6, 0)
	hb.roll(t0+6, true)
	hb.roll(t0+7, true)
	check(t0+6, true)

	// After a crawl that started later, a rollover of an earlier second
	// is the crawl's: the changelogs before it are not needed.
	b.startAt(time.Unix(t0+9, 0))
	hb.roll(t0+8, true)
	hb.roll(t0+8, true)
	check(0, false)
}
