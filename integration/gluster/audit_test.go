package gluster_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/georep/georep/integration/gluster"
	"github.com/georep/georep/integration/harness"
)

// TestGlusterAudit is the audit on GlusterFS at both ends: a 1-brick master
// volume (its brick worker Active) replicated live to a GlusterFS slave
// volume, which is then damaged through a mount of its own (an mtime, a
// truncated file, a byte flipped with size and mtime kept, a removed xattr,
// an extra file, a missing file). `georepctl audit --wait` repairs all but
// the flipped byte, `audit --content --wait` that one too, and a third
// round finds nothing.
func TestGlusterAudit(t *testing.T) {
	s := newGlusterPair(t, gluster.VolumeOpts{}, gluster.VolumeOpts{})
	if err := harness.PopulateDrift(s.mnt); err != nil {
		t.Skipf("the drift tree on GlusterFS (user xattrs): %v", err)
	}
	populated := time.Now()
	m := s.startDaemon(t, "--sync-xattrs")
	opts := harness.CompareOptions{Xattrs: true}
	if diffs, err := harness.WaitConverged(s.vol.Mount(t), s.view(t), opts, 2*time.Minute); err != nil || len(diffs) > 0 {
		t.Fatalf("first sync: %v %v\nmaster log:\n%s", err, diffs, harness.Tail(m.Log(), 30))
	}
	ctl := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, harness.Bin(t, "georepctl"), append([]string{"--work-dir", s.work}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("georepctl %s: %v\n%s\nmaster log:\n%s", strings.Join(args, " "), err, out, harness.Tail(m.Log(), 40))
		}
		return string(out)
	}
	// The first pass is over (its verify included) once stime is set,
	// and the changelog that recorded the tree's creation (it rolls over
	// after the pass began, 1 s) is applied once stime passes it: damage
	// made before either would be theirs to repair, not the audit's.
	deadline := time.Now().Add(2 * time.Minute)
	for st := ctl("status", "--json"); !harness.AllSyncedSince(st, populated.Add(time.Second)); st = ctl("status", "--json") {
		if time.Now().After(deadline) {
			t.Fatalf("the first pass did not end:\n%s", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	harness.Damage(t, s.view(t))
	out := ctl("audit", "--wait", "--timeout", "2m")
	t.Logf("audit --wait:\n%s", out)
	for _, kind := range []string{"mtime", "size", "xattrs", "extra", "missing"} {
		if !strings.Contains(out, kind+" ") {
			t.Errorf("audit --wait does not report a difference of kind %s:\n%s", kind, out)
		}
	}
	diffs, err := harness.Compare(s.vol.Mount(t), s.view(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) != 1 || !strings.Contains(diffs[0], "d1/flip") {
		t.Fatalf("after the audit, want only d1/flip to differ, got %v\nmaster log:\n%s", diffs, harness.Tail(m.Log(), 40))
	}
	out = ctl("audit", "--content", "--wait", "--timeout", "2m")
	t.Logf("audit --content --wait:\n%s", out)
	if !strings.Contains(out, "content 1") {
		t.Errorf("audit --content did not find the flipped byte:\n%s", out)
	}
	if diffs, err := harness.Compare(s.vol.Mount(t), s.view(t), opts); err != nil || len(diffs) > 0 {
		t.Fatalf("after audit --content: %v %v\nmaster log:\n%s", err, diffs, harness.Tail(m.Log(), 40))
	}
	if out := ctl("audit", "--content", "--wait", "--timeout", "2m"); !strings.Contains(out, " 0 differences") {
		t.Errorf("audit of a repaired replica: want 0 differences:\n%s", out)
	}
}
