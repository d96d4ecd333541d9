package integration

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/cmd/georepctl/schema"
	"github.com/georep/georep/integration/harness"
)

// failuresJSON is the part of `georepctl failures --json` the tests read.
type failuresJSON struct {
	Failures []failureJSON `json:"failures"`
	Skipped  []struct {
		Failure failureJSON `json:"failure"`
		By      string      `json:"by"`
		Reason  string      `json:"reason"`
	} `json:"skipped"`
}

type failureJSON struct {
	Gfid   string `json:"gfid"`
	Path   string `json:"path"`
	Reason string `json:"reason"`
	Class  string `json:"class"`
	Errno  string `json:"errno"`
}

// TestPermanentFailure replicates a file carrying the xattr user.georep.mark
// (with sync-xattrs) to a slave running unprivileged, whose replica keeps
// its own gfids in user.georep.* and so refuses that name for good (EPERM):
// a failure that retrying cannot fix. --oneshot exits 3 at once (its
// timeout is an hour) listing it as permanent; the daemon lists it as
// permanent, `failures skip` lifts it, stime advances, the skip log has
// the line, and when the file fails again it is not queued again.
func TestPermanentFailure(t *testing.T) {
	harness.RequireRsync(t)
	harness.RequireRoot(t, "runs the slave as the unprivileged user 65534")
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not found: cannot run the slave unprivileged")
	}
	base := t.TempDir()
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src, replica, work := filepath.Join(base, "src"), filepath.Join(base, "replica"), filepath.Join(base, "work")
	for _, d := range []string{src, replica, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "ok"), []byte("ok"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(src, "bad")
	if err := os.WriteFile(bad, []byte("bad"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(bad, "user.georep.mark", []byte("1"), 0); err != nil {
		t.Skipf("user xattrs on %s: %v", base, err)
	}
	// Everything owned by the slave's user, so that it may set the owners.
	for _, p := range []string{src, filepath.Join(src, "ok"), bad, replica} {
		if err := os.Lchown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	addr := harness.FreeAddr(t)
	slave := harness.StartProc(t, nil, setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
		harness.Bin(t, "georep-slave"), "--listen", addr, "--root", replica, "--insecure")
	if !slave.WaitLog("slave serving", 30*time.Second) {
		t.Fatalf("the unprivileged slave does not serve:\n%s", slave.Log())
	}
	if !strings.Contains(slave.Log(), "xattr_namespace=user") {
		t.Fatalf("the unprivileged slave does not keep its gfids in user.*:\n%s", slave.Log())
	}
	t.Cleanup(func() { harness.KillProcsMentioning(work) })
	args := harness.MasterArgs(addr, src, work, "--sync-xattrs")

	// --oneshot: exit 3 at once, the failure listed as permanent.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	code, out := harness.Oneshot(t, ctx, append(args, "--oneshot-timeout", "1h")...)
	if ctx.Err() != nil {
		t.Fatalf("--oneshot still running after 5 minutes:\n%s", lastLines(out, 20))
	}
	last := lastLines(out, 1)
	if code != 3 || !strings.Contains(last, "retrying cannot fix") || !strings.Contains(last, `"bad"`) ||
		!strings.Contains(last, "user.georep.mark") || !strings.Contains(last, "(permanent)") {
		t.Fatalf("--oneshot: exit %d, want 3 listing bad as permanent:\n%s", code, lastLines(out, 20))
	}
	if strings.Contains(last, `"ok"`) {
		t.Errorf("--oneshot lists ok as failing:\n%s", last)
	}
	if b, err := os.ReadFile(filepath.Join(replica, "ok")); err != nil || string(b) != "ok" {
		t.Errorf("ok not replicated: %q %v", b, err)
	}

	// The daemon: the failure is listed as permanent; stime does not move.
	m := harness.StartMasterProc(t, nil, append(args, "--change-interval", "1h")...)
	target := []string{"--work-dir", work}
	var f failureJSON
	deadline := time.Now().Add(convergeTimeout)
	for {
		var fs failuresJSON
		if code, out := ctl(t, append(target, "failures", "--json")...); code == 0 {
			if err := json.Unmarshal([]byte(out), &fs); err != nil {
				t.Fatalf("georepctl failures --json: %v\n%s", err, out)
			}
		}
		if len(fs.Failures) == 1 && fs.Failures[0].Path == "bad" {
			f = fs.Failures[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("georepctl failures does not list bad: %+v\nmaster log:\n%s", fs, lastLines(m.Log(), 20))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if f.Class != "permanent" || f.Errno != "EPERM" || !strings.Contains(f.Reason, "reserved") {
		t.Errorf("failure of bad: %+v, want permanent, EPERM, reserved", f)
	}
	if code, out := ctl(t, append(target, "failures")...); code != 0 || !strings.Contains(out, "CLASS") ||
		!strings.Contains(out, "permanent") || !strings.Contains(out, f.Gfid) {
		t.Errorf("georepctl failures: exit %d, want bad listed with its class:\n%s", code, out)
	}
	s := waitStatus(t, m, target, "the failure in the status", func(s statusJSON) bool {
		return len(s.Workers) == 1 && s.Workers[0].Failures == 1
	})
	if s.Workers[0].LastSynced != "" {
		t.Errorf("stime advanced past a failure: last synced %s", s.Workers[0].LastSynced)
	}

	// skip: a reason is required, the gfid must be queued.
	if code, out := ctl(t, append(target, "failures", "skip", f.Gfid)...); code != 2 || !strings.Contains(out, "--reason") {
		t.Errorf("failures skip without --reason: exit %d, want 2\n%s", code, out)
	}
	if code, out := ctl(t, append(target, "failures", "skip", "6b1d2a4e-0c2f-4d3e-9f00-000000000001", "--reason", "x")...); code != 1 ||
		!strings.Contains(out, "not in the failure queue") {
		t.Errorf("failures skip of an unknown gfid: exit %d, want 1\n%s", code, out)
	}
	const why = "the slave keeps its gfids in user.georep.*; mark dropped on the source next week"
	if code, out := ctl(t, append(target, "failures", "skip", f.Gfid, "--reason", why)...); code != 0 || !strings.Contains(out, "skipped "+f.Gfid) {
		t.Fatalf("failures skip: exit %d\n%s", code, out)
	}
	s = waitStatus(t, m, target, "stime advancing after the skip", func(s statusJSON) bool {
		return len(s.Workers) == 1 && s.Workers[0].Failures == 0 && s.Workers[0].LastSynced != ""
	})
	fs := failures(t, target)
	if len(fs.Failures) != 0 || len(fs.Skipped) != 1 || fs.Skipped[0].Failure.Gfid != f.Gfid || fs.Skipped[0].Reason != why {
		t.Errorf("failures after the skip: %+v", fs)
	}

	// The skip log.
	b, err := os.ReadFile(filepath.Join(work, "skipped.log"))
	if err != nil {
		t.Fatal(err)
	}
	var line struct {
		Time time.Time `json:"time"`
		By   struct {
			Transport string `json:"transport"`
			UID       *int   `json:"uid"`
			PID       *int   `json:"pid"`
		} `json:"by"`
		GFID    string `json:"gfid"`
		Path    string `json:"path"`
		Failure string `json:"failure_reason"`
		Class   string `json:"class"`
		Reason  string `json:"reason"`
	}
	if lines := strings.Split(strings.TrimSpace(string(b)), "\n"); len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &line) != nil {
		t.Fatalf("skip log: want one JSON line:\n%s", b)
	}
	if line.GFID != f.Gfid || line.Path != "bad" || line.Class != "permanent" || line.Reason != why || !strings.Contains(line.Failure, "reserved") ||
		line.By.Transport != "unix" || line.By.UID == nil || *line.By.UID != os.Getuid() || line.By.PID == nil || line.Time.IsZero() {
		t.Errorf("skip log line: %s", b)
	}
	if !strings.Contains(m.Log(), "failure skipped by the operator") {
		t.Errorf("the skip is not logged:\n%s", lastLines(m.Log(), 20))
	}

	// bad changes and fails again: not queued, stime moves on.
	if err := os.WriteFile(bad, []byte("bad, again"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := s.Workers[0].LastSynced
	waitStatus(t, m, target, "stime moving on past the skipped gfid", func(s statusJSON) bool {
		return len(s.Workers) == 1 && s.Workers[0].Failures == 0 && s.Workers[0].LastSynced != before
	})
	if !m.WaitLog("sync failure not queued: skipped by the operator", 10*time.Second) || len(failures(t, target).Failures) != 0 {
		t.Errorf("bad queued again after the skip:\n%s", lastLines(m.Log(), 20))
	}

	// --oneshot on the same work dir converges: all that is left is what
	// the operator skipped.
	m.Kill()
	if left := harness.WaitNoProcsMentioning(work, 30*time.Second); len(left) > 0 {
		t.Fatalf("children of the killed master still running: %v", left)
	}
	code, out = harness.Oneshot(t, ctx, append(args, "--oneshot-timeout", "1h")...)
	if code != 0 || !strings.Contains(out, "skipped_by_the_operator=1") {
		t.Errorf("--oneshot with only a skipped gfid failing: exit %d, want 0 saying it skipped one:\n%s", code, lastLines(out, 20))
	}
}

func failures(t *testing.T, target []string) failuresJSON {
	t.Helper()
	code, out := ctl(t, append(target, "failures", "--json")...)
	if code != 0 {
		t.Fatalf("georepctl failures --json: exit %d\n%s", code, out)
	}
	var fs failuresJSON
	if err := json.Unmarshal([]byte(out), &fs); err != nil {
		t.Fatalf("georepctl failures --json: %v\n%s", err, out)
	}
	if err := schema.Validate(schema.Failures, []byte(out)); err != nil {
		t.Fatalf("georepctl failures --json does not match its schema: %v\n%s", err, out)
	}
	return fs
}
