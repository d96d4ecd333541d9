package master

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/georep/georep/master/glusterfs"
	"github.com/georep/georep/rpc/gfid"
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

// TestIdleStimeWaitsForFailures: an idle brick worker follows the empty
// rollovers with stime only while nothing it took is owed to the slave;
// with a failure queued, stime stays where the last pass left it.
func TestIdleStimeWaitsForFailures(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the brick's stime is a trusted.* xattr")
	}
	const t0 = 1795678238
	hb := newHTIMEBrick(t, t0)
	tw := newTestWorker(t)
	q, err := loadFailures(tw.wd.path("failures"))
	if err != nil {
		t.Fatal(err)
	}
	tw.failures = q
	tw.client = &slaveClient{slaveVol: "955866e3-bc16-4ad8-a238-843ed00ef97d"}
	tw.brick = &brickState{path: hb.path, volumeID: "828b277d-217b-499d-b78f-eb56f774df18"}
	idle := func(roll int64) {
		t.Helper()
		s := &brickSource{w: tw.worker, b: tw.brick, idleTo: time.Unix(roll, 0)}
		ctx, cancel := context.WithCancel(t.Context())
		cancel() // wait's wait for a change returns at once
		s.wait(ctx, nil)
	}
	stimeIs := func(want time.Time) {
		t.Helper()
		st, err := tw.wd.loadStime()
		if err != nil {
			t.Fatal(err)
		}
		bt, _, err := glusterfs.Stime(hb.path, tw.brick.volumeID, tw.client.slaveVolume())
		if err != nil {
			t.Fatal(err)
		}
		if !st.Data.Equal(want) || !bt.Equal(want) {
			t.Fatalf("stime: work dir %v, brick %v; want %v", st.Data, bt, want)
		}
	}

	q.update([]*failure{{GFID: gfid.New(), Name: "f", Reason: "EIO on the slave"}}, false, time.Now())
	idle(t0 + 15)
	stimeIs(time.Time{})
	tw.staleData = map[gfid.GFID]bool{gfid.New(): true}
	q.update(nil, true, time.Now()) // the retry went through
	idle(t0 + 30)
	stimeIs(time.Time{})
	tw.staleData = nil
	idle(t0 + 45)
	stimeIs(time.Unix(t0+44, 0))
}
