package master

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pkg/xattr"

	"github.com/georep/georep/master/glusterfs"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// TestAuditDue checks the audit's schedule: a round every audit-interval,
// one with contents every audit-content-interval, none when both are 0,
// and the operator's request at once.
func TestAuditDue(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	tests := []struct {
		name                      string
		interval, contentInterval time.Duration
		lastPlain, lastContent    time.Time
		want                      *bool
		now                       time.Time
		start, content            bool
		next                      time.Time
	}{
		{name: "off", now: t0.Add(100 * day), lastPlain: t0, lastContent: t0},
		{name: "not yet", interval: day, lastPlain: t0, now: t0.Add(time.Hour), next: t0.Add(day)},
		{name: "due", interval: day, lastPlain: t0, now: t0.Add(day), start: true},
		{name: "content first due from the first start", interval: day, contentInterval: 7 * day, lastPlain: t0.Add(6 * day), lastContent: t0, now: t0.Add(7 * day), start: true, content: true},
		{name: "content due", interval: day, contentInterval: 7 * day, lastPlain: t0.Add(8 * day), lastContent: t0.Add(day), now: t0.Add(8*day + time.Hour), start: true, content: true},
		{name: "content next before plain", interval: 2 * day, contentInterval: 3 * day, lastPlain: t0.Add(day), lastContent: t0, now: t0.Add(day), next: t0.Add(3 * day)},
		{name: "plain rounds do not put contents off", interval: day, contentInterval: 7 * day, lastPlain: t0.Add(6 * day), lastContent: t0, now: t0.Add(6*day + time.Hour), next: t0.Add(7 * day)},
		{name: "asked, with contents", lastPlain: t0, want: ptr(true), now: t0, start: true, content: true},
		{name: "asked, plain", interval: day, lastPlain: t0, want: ptr(false), now: t0, start: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &auditor{interval: tt.interval, contentInterval: tt.contentInterval, lastPlain: tt.lastPlain, lastContent: tt.lastContent, want: tt.want}
			start, content, next := a.due(tt.now)
			if start != tt.start || content != tt.content || !next.Equal(tt.next) {
				t.Errorf("due = %v, %v, %v; want %v, %v, %v", start, content, next, tt.start, tt.content, tt.next)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestAuditResumes checks that the round in progress, its place and its
// counts survive a restart (the state file), and that a new state file
// schedules the first round one interval ahead.
func TestAuditResumes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.json")
	cfg := Config{AuditInterval: time.Hour}
	a, err := newAuditor(cfg, path)
	if err != nil {
		t.Fatal(err)
	}
	if start, _, next := a.due(time.Now()); start || next.Before(time.Now().Add(59*time.Minute)) {
		t.Errorf("a new master: due %v next %v, want the first round an interval ahead", start, next)
	}
	d := gfid.New()
	a.round = &auditRound{Content: true, Started: time.Unix(1_800_000_000, 0)}
	a.stack = []auditDirRef{{G: gfid.Root}, {G: d, P: "x/y"}}
	a.cont = &auditCont{ref: auditDirRef{G: gfid.New(), P: "big"}}
	a.status = auditStatus{Started: a.round.Started, Running: true, Entries: 42, ByKind: map[string]int64{"mtime": 2}}
	if err := a.save(); err != nil {
		t.Fatal(err)
	}
	b, err := newAuditor(cfg, path)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case b.round == nil || !b.round.Content || !b.round.Started.Equal(a.round.Started):
		t.Errorf("round after restart = %+v, want %+v", b.round, a.round)
	case len(b.stack) != 3 || b.stack[1] != a.stack[1] || b.stack[2] != a.cont.ref:
		t.Errorf("place after restart = %v, want %v and the directory cut short again", b.stack, a.stack)
	case !b.status.Running || b.status.Entries != 42 || b.status.ByKind["mtime"] != 2 || b.inos == nil:
		t.Errorf("status after restart = %+v", b.status)
	}
}

// TestAuditCatalogBehindBrick: on a brick, a name where the slave holds
// what the brick holds but the catalog says otherwise (the replica set's
// other worker synced it while this one was Passive) is not a difference
// and is not purged; where the brick disagrees with the slave, it is.
func TestAuditCatalogBehindBrick(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a brick's gfids are trusted.* xattrs")
	}
	tw := newTestWorker(t)
	tw.noVerify = true
	for _, name := range []string{"renamed", "gone", "kept"} {
		tw.write(t, name, name)
	}
	tw.crawlAndProcess(t)
	setGFID := func(name string, g gfid.GFID) {
		t.Helper()
		if err := xattr.LSet(filepath.Join(tw.src, name), glusterfs.GFIDXattr, g[:]); err != nil {
			t.Fatal(err)
		}
	}
	// What the other worker synced: "renamed" now holds another inode,
	// "new" was created and "gone" removed, on the brick and the slave.
	other, created, stray := gfid.New(), gfid.New(), gfid.New()
	setGFID("renamed", other)
	tw.write(t, "new", "new")
	setGFID("new", created)
	if err := os.Remove(filepath.Join(tw.src, "gone")); err != nil {
		t.Fatal(err)
	}
	// And what is wrong on the slave all the same: "stray", an extra name
	// the brick does not have, and "kept", missing though the brick has it.
	tw.brick = &brickState{path: tw.src}
	a, err := newAuditor(Config{}, filepath.Join(t.TempDir(), "audit.json"))
	if err != nil {
		t.Fatal(err)
	}
	tw.audit = a
	j := &auditJudge{w: tw.worker}
	ents := []ops.AuditEntry{{Name: "renamed", GFID: other}, {Name: "new", GFID: created}, {Name: "stray", GFID: stray}}
	if err := j.dir(auditDirRef{G: gfid.Root}, ents, nil); err != nil {
		t.Fatal(err)
	}
	if j.behind != 3 {
		t.Errorf("%d names where the catalog is behind, want 3 (renamed, new, gone)", j.behind)
	}
	if j.found != 2 || j.kinds["extra"] != 1 || j.kinds["missing"] != 1 {
		t.Errorf("differences %d %v, want extra 1 (stray) and missing 1 (kept)", j.found, j.kinds)
	}
	if len(j.purges) != 1 || j.purges[0].name != "stray" {
		t.Errorf("purges %+v, want only stray", j.purges)
	}
}
