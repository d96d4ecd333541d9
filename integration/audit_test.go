package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/georep/georep/integration/harness"
)

// auditJSON is the part of `georepctl status --json` the audit test reads.
type auditJSON struct {
	Workers []struct {
		Audit *struct {
			Finished       string           `json:"finished"`
			Content        bool             `json:"content"`
			EntriesChecked int64            `json:"entries_checked"`
			FilesHashed    int64            `json:"files_hashed"`
			Differences    int64            `json:"differences"`
			Repaired       int64            `json:"repaired"`
			ByKind         map[string]int64 `json:"by_kind"`
			Running        bool             `json:"running"`
			Error          string           `json:"error"`
		} `json:"audit"`
	} `json:"workers"`
}

// TestAuditRepairsDrift damages a replica behind a running daemon's back
// and checks that `georepctl audit --wait` finds each difference, names it,
// repairs it, and that only `audit --content` finds a byte flipped with size
// and mtime kept; status and metrics report the rounds.
func TestAuditRepairsDrift(t *testing.T) {
	for _, detector := range []string{"changelog", "xsync"} {
		t.Run(detector, func(t *testing.T) { auditRepairsDrift(t, detector) })
	}
}

// auditRepairsDrift is TestAuditRepairsDrift with a change detector: the
// fanotify journal (changelog) or a hybrid crawl every change-interval
// (xsync), between which the audit takes its steps.
func auditRepairsDrift(t *testing.T, detector string) {
	harness.RequireRsync(t)
	base := t.TempDir()
	src, replica, work := filepath.Join(base, "src"), filepath.Join(base, "replica"), filepath.Join(base, "work")
	for _, d := range []string{src, replica} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := harness.PopulateDrift(src); err != nil {
		t.Skipf("the drift tree (user xattrs): %v", err)
	}
	slave := harness.StartSlave(t, replica, "--insecure")
	metrics := harness.FreeAddr(t)
	m := harness.StartMasterProc(t, nil, harness.MasterArgs(slave.Addr, src, work, "--change-interval", "500ms",
		"--sync-xattrs", "--metrics-listen", metrics, "--change-detector", detector)...)
	opts := harness.CompareOptions{Xattrs: true}
	if diffs, err := harness.WaitConverged(src, replica, opts, convergeTimeout); err != nil || len(diffs) > 0 {
		t.Fatalf("first sync: %v %v\nmaster log:\n%s", err, diffs, lastLines(m.Log(), 30))
	}
	target := []string{"--work-dir", work}
	// The first pass is over (its verify included) once stime is set:
	// damage made before would be verify's to find.
	waitStatus(t, m, target, "an Active worker that has synced", activeSynced)

	harness.Damage(t, replica)
	code, out := ctl(t, append(target, "audit", "--wait", "--timeout", "2m")...)
	if code != 0 {
		t.Fatalf("audit --wait: exit %d\n%s\nmaster log:\n%s", code, out, lastLines(m.Log(), 40))
	}
	t.Logf("audit --wait:\n%s", out)
	for _, kind := range []string{"mtime", "size", "xattrs", "extra", "missing"} {
		if !strings.Contains(out, kind+" ") {
			t.Errorf("audit --wait does not report a difference of kind %s:\n%s", kind, out)
		}
	}
	if strings.Contains(out, "content") || strings.Contains(out, "unsynced") || !strings.Contains(out, " 5 differences") {
		t.Errorf("an audit without --content: want the 5 differences made, no content, nothing unsynced:\n%s", out)
	}
	for _, want := range []string{"path=/d1/mtime", "path=/d1/trunc", "path=/d1/xattr", "path=/d2/extra", "path=/d2/missing"} {
		if !strings.Contains(m.Log(), want) {
			t.Errorf("the master's log names no difference at %s", want)
		}
	}
	diffs, err := harness.Compare(src, replica, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) != 1 || !strings.Contains(diffs[0], "d1/flip") {
		t.Fatalf("after the audit, want only d1/flip to differ (a change no attribute shows), got %v\nmaster log:\n%s", diffs, lastLines(m.Log(), 40))
	}

	code, out = ctl(t, append(target, "audit", "--content", "--wait", "--timeout", "2m")...)
	if code != 0 {
		t.Fatalf("audit --content --wait: exit %d\n%s\nmaster log:\n%s", code, out, lastLines(m.Log(), 40))
	}
	t.Logf("audit --content --wait:\n%s", out)
	if !strings.Contains(out, "content 1") || !strings.Contains(out, "1 differences") {
		t.Errorf("audit --content: want exactly the flipped byte found, got:\n%s", out)
	}
	if diffs, err := harness.Compare(src, replica, opts); err != nil || len(diffs) > 0 {
		t.Fatalf("after audit --content: %v %v\nmaster log:\n%s", err, diffs, lastLines(m.Log(), 40))
	}

	// A third round finds the replica equal.
	code, out = ctl(t, append(target, "audit", "--content", "--wait", "--timeout", "2m")...)
	if code != 0 || !strings.Contains(out, " 0 differences") {
		t.Errorf("audit of a repaired replica: want 0 differences, got exit %d\n%s", code, out)
	}
	code, out = ctl(t, append(target, "status", "--json")...)
	var st auditJSON
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st.Workers) != 1 || st.Workers[0].Audit == nil {
		t.Fatalf("status --json: exit %d\n%s", code, out)
	}
	a := st.Workers[0].Audit
	if a.Finished == "" || a.Running || !a.Content || a.FilesHashed == 0 || a.EntriesChecked == 0 || a.Error != "" {
		t.Errorf("status --json: the last audit is not shown whole: %+v\n%s", a, out)
	}
	text := scrape(t, metrics)
	for _, want := range []string{`georep_master_audit_differences_total{brick="` + src + `",kind="content"} 1`,
		`georep_master_audit_differences_total{brick="` + src + `",kind="extra"} 1`,
		`georep_master_audit_last_finished_timestamp_seconds{brick="` + src + `"}`, `georep_master_audit_last_duration_seconds{brick="` + src + `"}`} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestAuditResumesAfterKill kills the master with -9 in the middle of a
// slow audit round (audit-rate 1MiB/s over 300 directories) and checks that
// the restarted master goes on with the same round, not a new one, and
// ends it, finding the difference made in a directory it had not reached
// (a mode: the verify of the new session does not look at modes).
func TestAuditResumesAfterKill(t *testing.T) {
	harness.RequireRsync(t)
	base := t.TempDir()
	src, replica, work := filepath.Join(base, "src"), filepath.Join(base, "replica"), filepath.Join(base, "work")
	for _, d := range []string{src, replica} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 300 {
		d := filepath.Join(src, fmt.Sprintf("d%03d", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for j := range 10 {
			if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%d", j)), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	slave := harness.StartSlave(t, replica, "--insecure")
	args := harness.MasterArgs(slave.Addr, src, work, "--change-interval", "500ms", "--audit-rate", "1MiB/s")
	m := harness.StartMasterProc(t, nil, args...)
	if diffs, err := harness.WaitConverged(src, replica, harness.CompareOptions{}, convergeTimeout); err != nil || len(diffs) > 0 {
		t.Fatalf("first sync: %v %v\nmaster log:\n%s", err, diffs, lastLines(m.Log(), 30))
	}
	target := []string{"--work-dir", work}
	waitStatus(t, m, target, "an Active worker that has synced", activeSynced)
	// Damage the last directory the depth-first round reaches.
	if err := os.Chmod(filepath.Join(replica, "d299", "f5"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := ctl(t, append(target, "audit")...); code != 0 {
		t.Fatalf("audit: exit %d\n%s", code, out)
	}
	// Wait until its place was saved past the first directories.
	var started string
	deadline := time.Now().Add(convergeTimeout)
	for {
		b, _ := os.ReadFile(filepath.Join(work, "audit.json"))
		var s struct {
			Last struct {
				Started string `json:"Started"`
				Entries int64  `json:"entries"`
			} `json:"last"`
			Round *struct{} `json:"round"`
		}
		if json.Unmarshal(b, &s) == nil && s.Round != nil && s.Last.Entries >= 300 {
			started = s.Last.Started
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the audit's place was never saved past the root's 300 entries: %s\nmaster log:\n%s", b, lastLines(m.Log(), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
	m.Kill()
	m = harness.StartMasterProc(t, nil, args...)
	waitStatus(t, m, target, "the resumed audit ended", func(s statusJSON) bool { return true })
	var st auditJSON
	deadline = time.Now().Add(convergeTimeout)
	for {
		code, out := ctl(t, append(target, "status", "--json")...)
		st = auditJSON{}
		err := json.Unmarshal([]byte(out), &st)
		if code == 0 && err == nil && len(st.Workers) == 1 && st.Workers[0].Audit != nil &&
			!st.Workers[0].Audit.Running && st.Workers[0].Audit.Finished != "" {
			break
		}
		if err != nil && code == 0 {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the resumed audit never ended: %s\nmaster log:\n%s", out, lastLines(m.Log(), 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
	a := st.Workers[0].Audit
	if !strings.Contains(m.Log(), "path=/d299/f5") || a.ByKind["mode"] != 1 || a.Repaired != 1 || a.Error != "" {
		t.Errorf("the resumed round did not find the mode of /d299/f5: %+v\nmaster log:\n%s", a, lastLines(m.Log(), 30))
	}
	if strings.Contains(m.Log(), "audit started") {
		t.Errorf("the restarted master started a new round instead of going on with the one in progress (started %s)", started)
	}
	if diffs, err := harness.Compare(src, replica, harness.CompareOptions{}); err != nil || len(diffs) > 0 {
		t.Errorf("after the resumed audit: %v %v", err, diffs)
	}
}
