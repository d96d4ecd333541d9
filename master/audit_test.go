package master

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/georep/georep/rpc/gfid"
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
