package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/georep/georep/integration/harness"
	"github.com/georep/georep/master/events"
)

// The safety guards of the master, end to end: each case is what an
// operator meets on a bad day, and each ends with the slave still holding
// everything it had.

// guardSite is a source, a slave and a work dir, synced once.
type guardSite struct {
	src, replica, work string
	slave              *harness.Slave
}

func newGuardSite(t *testing.T, files int) *guardSite {
	t.Helper()
	harness.RequireRsync(t)
	base := t.TempDir()
	s := &guardSite{src: filepath.Join(base, "src"), replica: filepath.Join(base, "replica"), work: filepath.Join(base, "work")}
	for _, d := range []string{s.src, s.replica} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s.populate(t, files)
	s.slave = harness.StartSlave(t, s.replica)
	return s
}

func (s *guardSite) populate(t *testing.T, files int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(s.src, "dir/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range files {
		p := filepath.Join(s.src, fmt.Sprintf("f%03d", i))
		if i%3 == 0 {
			p = filepath.Join(s.src, "dir", fmt.Sprintf("g%03d", i))
		}
		if err := os.WriteFile(p, []byte(fmt.Sprintf("content %d\n", i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(s.src, "dir/sub/deep"), []byte("deep"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (s *guardSite) args(extra ...string) []string {
	return harness.MasterArgs(s.slave.Addr, s.src, s.work, extra...)
}

func (s *guardSite) oneshot(t *testing.T, extra ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	return harness.Oneshot(t, ctx, s.args(append([]string{"--oneshot-timeout", "2m"}, extra...)...)...)
}

// keep copies the replica (without georep's state) aside; same checks
// later that the slave still holds exactly that.
func (s *guardSite) keep(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "kept")
	if out, err := exec.Command("cp", "-a", s.replica, dst).CombinedOutput(); err != nil {
		t.Fatalf("copy of the replica: %v\n%s", err, out)
	}
	if err := os.RemoveAll(filepath.Join(dst, ".georep")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(s.replica)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(dst, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	return dst
}

func (s *guardSite) same(t *testing.T, kept, when string) {
	t.Helper()
	diffs, err := harness.Compare(kept, s.replica, harness.CompareOptions{Xattrs: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) > 0 {
		t.Fatalf("%s: the slave changed:\n%s", when, strings.Join(diffs, "\n"))
	}
}

func (s *guardSite) converged(t *testing.T, when string) {
	t.Helper()
	diffs, err := harness.Compare(s.src, s.replica, harness.CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) > 0 {
		t.Fatalf("%s: the replica differs from the source:\n%s", when, strings.Join(diffs, "\n"))
	}
}

func wantGuard(t *testing.T, code int, out, guard string, words ...string) {
	t.Helper()
	if code != 4 {
		t.Fatalf("exit %d, want 4 (a safety guard refused):\n%s", code, lastLines(out, 30))
	}
	for _, w := range append([]string{"safety guard " + guard + " refused", "nothing applied", "to proceed"}, words...) {
		if !strings.Contains(out, w) {
			t.Fatalf("the refusal does not say %q:\n%s", w, lastLines(out, 30))
		}
	}
}

// TestGuardUnmountedSource: the source is a filesystem that is not mounted
// any more (an empty directory at the same path, as after a failed mount at
// boot). The master refuses (exit 4) and the slave keeps everything; a new
// filesystem there is refused too, until --accept-new-source; the
// acceptance is recorded and lasts one run.
func TestGuardUnmountedSource(t *testing.T) {
	harness.RequireRoot(t, "mounts a tmpfs as the source")
	base := t.TempDir()
	s := &guardSite{src: filepath.Join(base, "src"), replica: filepath.Join(base, "replica"), work: filepath.Join(base, "work")}
	for _, d := range []string{s.src, s.replica} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mount := func() {
		t.Helper()
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m", "georep-test-src", s.src).CombinedOutput(); err != nil {
			t.Fatalf("mount tmpfs: %v\n%s", err, out)
		}
	}
	umount := func() {
		if out, err := exec.Command("umount", s.src).CombinedOutput(); err != nil {
			t.Fatalf("umount: %v\n%s", err, out)
		}
	}
	mount()
	mounted := true
	t.Cleanup(func() {
		if mounted {
			exec.Command("umount", s.src).Run()
		}
	})
	s.populate(t, 150)
	s.slave = harness.StartSlave(t, s.replica)
	if code, out := s.oneshot(t); code != 0 {
		t.Fatalf("first sync: exit %d\n%s", code, lastLines(out, 30))
	}
	s.converged(t, "first sync")
	kept := s.keep(t)

	umount()
	mounted = false
	code, out := s.oneshot(t)
	wantGuard(t, code, out, "source-identity", "filesystem id", "--accept-new-source")
	s.same(t, kept, "unmounted source")

	// The dry run says the same and changes nothing.
	code, out = s.oneshot(t, "--dry-run")
	if code != 0 || !strings.Contains(out, "WOULD REFUSE: safety guard source-identity") {
		t.Fatalf("dry run of the unmounted source: exit %d, want 0 and the guard named:\n%s", code, lastLines(out, 40))
	}
	s.same(t, kept, "dry run")

	// Another filesystem mounted there, with other content: refused too.
	mount()
	mounted = true
	if err := os.WriteFile(filepath.Join(s.src, "other"), []byte("another tree"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out = s.oneshot(t)
	wantGuard(t, code, out, "source-identity")
	s.same(t, kept, "another filesystem")

	// The operator accepts it: that guard lifts (recorded), and the mass
	// delete that follows (every old entry) is the next guard to refuse.
	code, out = s.oneshot(t, "--accept-new-source")
	wantGuard(t, code, out, "max-delete")
	s.same(t, kept, "accepted source, mass delete refused")
	if b, err := os.ReadFile(filepath.Join(s.work, "guard.log")); err != nil || !strings.Contains(string(b), "accept-new-source") {
		t.Fatalf("guard.log: %q, %v; want the acceptance recorded", b, err)
	}
	if code, out = s.oneshot(t, "--max-delete", "off"); code != 0 {
		t.Fatalf("accepted source with max-delete off: exit %d\n%s", code, lastLines(out, 30))
	}
	s.converged(t, "accepted source")
}

// TestGuardMassDelete: a pass that would delete more than half of the
// replica applies nothing (exit 4); the dry run shows it; a higher limit
// for one run lets it through.
func TestGuardMassDelete(t *testing.T) {
	s := newGuardSite(t, 300)
	if code, out := s.oneshot(t); code != 0 {
		t.Fatalf("first sync: exit %d\n%s", code, lastLines(out, 30))
	}
	kept := s.keep(t)
	if err := os.RemoveAll(filepath.Join(s.src, "dir")); err != nil {
		t.Fatal(err)
	}
	for i := range 150 {
		os.Remove(filepath.Join(s.src, fmt.Sprintf("f%03d", i)))
	}
	code, out := s.oneshot(t)
	wantGuard(t, code, out, "max-delete", "more than max-delete 50%", "--max-delete off")
	s.same(t, kept, "mass delete refused")

	code, out = s.oneshot(t, "--dry-run")
	for _, w := range []string{"WOULD REFUSE: safety guard max-delete", "deletes", "… and"} {
		if code != 0 || !strings.Contains(out, w) {
			t.Fatalf("dry run: exit %d, want 0 and %q:\n%s", code, w, lastLines(out, 40))
		}
	}
	s.same(t, kept, "dry run")

	code, out = s.oneshot(t, "--max-delete", "100")
	wantGuard(t, code, out, "max-delete", "more than max-delete 100")
	if code, out = s.oneshot(t, "--max-delete", "1000"); code != 0 {
		t.Fatalf("max-delete 1000: exit %d\n%s", code, lastLines(out, 30))
	}
	s.converged(t, "deletes let through")
}

// TestGuardDaemonMaxDelete: a running master halts on a mass delete: the
// worker is Faulty with the guard's reason in status and metrics, the slave
// keeps everything, and `georepctl config set max-delete off` lets it go on.
// Each step is announced as an event, to glustereventsd (a UDP socket
// here) and to a webhook: ACTIVE, CHECKPOINT_COMPLETED, the guard's refusal
// and FAULTY with its reason, ACTIVE again.
func TestGuardDaemonMaxDelete(t *testing.T) {
	s := newGuardSite(t, 300)
	ev := newEventSink(t)
	statusAddr, metricsAddr := harness.FreeAddr(t), harness.FreeAddr(t)
	m := harness.StartMasterProc(t, nil, s.args(append([]string{"--change-interval", "500ms", "--status-listen", statusAddr,
		"--metrics-listen", metricsAddr}, ev.args()...)...)...)
	target := []string{"--master", statusAddr}
	waitStatus(t, m, target, "an Active worker that has synced", activeSynced)
	ev.wait(t, 93, "brick_path="+s.src, events.Active, map[string]string{"primary_volume": s.src, "brick_path": s.src})
	if code, out := ctl(t, append(target, "checkpoint", "set", "now")...); code != 0 {
		t.Fatalf("checkpoint set now: exit %d\n%s", code, out)
	}
	ev.wait(t, 92, "checkpoint_completion_time=", events.CheckpointCompleted, map[string]string{"primary_volume": s.src})
	if diffs, err := harness.WaitConverged(s.src, s.replica, harness.CompareOptions{}, convergeTimeout); err != nil || len(diffs) > 0 {
		t.Fatalf("first sync: %v %v", err, diffs)
	}
	kept := s.keep(t)
	if err := os.RemoveAll(filepath.Join(s.src, "dir")); err != nil {
		t.Fatal(err)
	}
	for i := range 150 {
		os.Remove(filepath.Join(s.src, fmt.Sprintf("f%03d", i)))
	}
	waitStatus(t, m, target, "the worker halted by max-delete", func(st statusJSON) bool {
		return len(st.Workers) == 1 && st.Workers[0].State == "Faulty" && strings.Contains(st.Workers[0].Reason, "safety guard max-delete")
	})
	if !strings.Contains(scrape(t, metricsAddr), `georep_master_guard_halted{brick="`+s.src+`",guard="max-delete"} 1`) {
		t.Fatalf("metrics do not show the halt:\n%s", grepLines(scrape(t, metricsAddr), "guard"))
	}
	s.same(t, kept, "daemon halted")
	ev.wait(t, 91, "guard_refused=true", events.GuardRefused, map[string]string{"guard": "max-delete", "proceed": "max-delete off"})
	ev.wait(t, 91, "reason=safety guard max-delete", events.Faulty, map[string]string{"reason": "safety guard max-delete"})
	actives := ev.count(events.Active)

	if code, out := ctl(t, append(target, "config", "set", "max-delete", "off")...); code != 0 {
		t.Fatalf("config set max-delete off: exit %d\n%s", code, out)
	}
	if diffs, err := harness.WaitConverged(s.src, s.replica, harness.CompareOptions{}, convergeTimeout); err != nil || len(diffs) > 0 {
		t.Fatalf("after max-delete off: %v\n%s\nmaster log:\n%s", err, strings.Join(diffs, "\n"), lastLines(m.Log(), 30))
	}
	waitStatus(t, m, target, "the worker Active again", func(st statusJSON) bool {
		return len(st.Workers) == 1 && st.Workers[0].State == "Active"
	})
	for deadline := time.Now().Add(convergeTimeout); ev.count(events.Active) == actives; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no GEOREP_ACTIVE after the worker went on")
		}
	}
	if n := ev.count(events.GuardRefused); n != 1 {
		t.Errorf("the guard's refusal was announced %d times, want once (not at every retry)", n)
	}
	if !strings.Contains(scrape(t, metricsAddr), `georep_master_guard_halted{brick="`+s.src+`",guard="max-delete"} 0`) {
		t.Fatalf("metrics still show the halt:\n%s", grepLines(scrape(t, metricsAddr), "guard"))
	}
}

// TestDryRun: --oneshot --dry-run lists what one pass would do, grouped by
// kind, and changes nothing on either side: not the work dir (catalog,
// stime), not the slave.
func TestDryRun(t *testing.T) {
	s := newGuardSite(t, 30)
	if code, out := s.oneshot(t); code != 0 {
		t.Fatalf("first sync: exit %d\n%s", code, lastLines(out, 30))
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Rename(filepath.Join(s.src, "dir/sub"), filepath.Join(s.src, "moved")))
	must(os.Remove(filepath.Join(s.src, "f001")))
	must(os.WriteFile(filepath.Join(s.src, "new file\nwith newline"), []byte("new"), 0o644))
	must(os.WriteFile(filepath.Join(s.src, "f002"), []byte("rewritten"), 0o644))
	must(os.Chmod(filepath.Join(s.src, "f004"), 0o600))
	must(os.Link(filepath.Join(s.src, "f005"), filepath.Join(s.src, "dir/link")))
	must(os.WriteFile(filepath.Join(s.replica, "stray"), []byte("not georep's"), 0o644))
	keptReplica := s.keep(t)
	keptWork := filepath.Join(t.TempDir(), "work")
	if out, err := exec.Command("cp", "-a", s.work, keptWork).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}

	code, out := s.oneshot(t, "--dry-run")
	if code != 0 {
		t.Fatalf("dry run: exit %d\n%s", code, lastLines(out, 40))
	}
	for _, w := range []string{
		"nothing was changed on either side", "safety guards: none would refuse",
		"creates", `"new file\nwith newline"`, "hardlinks", `"dir/link"`, "renames", `"dir/sub → moved"`,
		"deletes", `"f001"`, "data (files shipped)", `"f002"`, "meta (attributes set)", `"f004"`,
		"not put there by georep", `"stray"`,
	} {
		if !strings.Contains(out, w) {
			t.Errorf("the plan does not show %q", w)
		}
	}
	if t.Failed() {
		t.Fatalf("plan:\n%s", out)
	}
	s.same(t, keptReplica, "dry run")
	diffs, err := harness.Compare(keptWork, s.work, harness.CompareOptions{})
	if err != nil || len(diffs) > 0 {
		t.Fatalf("the dry run changed the work dir: %v\n%s", err, strings.Join(diffs, "\n"))
	}
	if code, out := s.oneshot(t); code != 0 {
		t.Fatalf("the real pass: exit %d\n%s", code, lastLines(out, 30))
	}
	s.converged(t, "after the dry run")
}

// TestDriftDirectorySwappedForSymlink: a directory of the replica replaced
// behind georep's back by a symlink to somewhere outside: the next pass
// (--oneshot, or the daemon's live pass that meets it) removes the symlink
// without following it and restores the directory with everything below
// it; nothing outside the replica is touched.
func TestDriftDirectorySwappedForSymlink(t *testing.T) {
	for _, daemon := range []bool{false, true} {
		t.Run(map[bool]string{false: "oneshot", true: "daemon"}[daemon], func(t *testing.T) {
			s := newGuardSite(t, 30)
			var m *harness.Proc
			if daemon {
				m = harness.StartMasterProc(t, nil, s.args("--change-interval", "500ms")...)
			} else if code, out := s.oneshot(t); code != 0 {
				t.Fatalf("first sync: exit %d\n%s", code, lastLines(out, 30))
			}
			if diffs, err := harness.WaitConverged(s.src, s.replica, harness.CompareOptions{}, convergeTimeout); err != nil || len(diffs) > 0 {
				t.Fatalf("first sync: %v %v", err, diffs)
			}
			outside := t.TempDir()
			if err := os.WriteFile(filepath.Join(outside, "theirs"), []byte("outside the replica"), 0o644); err != nil {
				t.Fatal(err)
			}
			keptOutside := filepath.Join(t.TempDir(), "outside")
			if out, err := exec.Command("cp", "-a", outside, keptOutside).CombinedOutput(); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if err := os.Rename(filepath.Join(s.replica, "dir"), filepath.Join(s.replica, "dir.moved")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, filepath.Join(s.replica, "dir")); err != nil {
				t.Fatal(err)
			}
			// A change below it on the source too: its ops meet the symlink.
			if err := os.WriteFile(filepath.Join(s.src, "dir/sub/newer"), []byte("new"), 0o644); err != nil {
				t.Fatal(err)
			}
			if !daemon {
				if code, out := s.oneshot(t); code != 0 {
					t.Fatalf("pass over the drifted replica: exit %d\n%s", code, lastLines(out, 40))
				}
			}
			if diffs, err := harness.WaitConverged(s.src, s.replica, harness.CompareOptions{}, convergeTimeout); err != nil || len(diffs) > 0 {
				log := ""
				if m != nil {
					log = lastLines(m.Log(), 40)
				}
				t.Fatalf("drift not repaired: %v\n%s\n%s", err, strings.Join(diffs, "\n"), log)
			}
			diffs, err := harness.Compare(keptOutside, outside, harness.CompareOptions{})
			if err != nil || len(diffs) > 0 {
				t.Fatalf("outside the replica changed: %v\n%s", err, strings.Join(diffs, "\n"))
			}
		})
	}
}

func grepLines(s, word string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
