package integration

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/georep/georep/cmd/georepctl/schema"
	"github.com/georep/georep/integration/harness"
)

// statusJSON is the part of `georepctl status --json` (and of grpcurl's
// GetStatus output) the tests read.
type statusJSON struct {
	Workers []struct {
		Brick               string `json:"brick"`
		State               string `json:"state"`
		CrawlStatus         string `json:"crawl_status"`
		LastSynced          string `json:"last_synced"`
		Failures            int64  `json:"failures"`
		FilesSynced         int64  `json:"files_synced"`
		Reason              string `json:"reason"`
		CheckpointCompleted bool   `json:"checkpoint_completed"`
	} `json:"workers"`
	Checkpoint *struct {
		Completed bool `json:"completed"`
	} `json:"checkpoint"`
	Paused bool `json:"paused"`
}

// ctl runs georepctl with args and returns its exit code and output.
func ctl(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	return harness.Run(t, ctx, nil, "georepctl", args...)
}

// waitStatus polls `georepctl status --json` until ok accepts it.
func waitStatus(t *testing.T, m *harness.Proc, target []string, what string, ok func(statusJSON) bool) statusJSON {
	t.Helper()
	deadline := time.Now().Add(convergeTimeout)
	var last string
	for time.Now().Before(deadline) {
		code, out := ctl(t, append(target, "status", "--json")...)
		if code == 0 {
			var s statusJSON
			if err := json.Unmarshal([]byte(out), &s); err != nil {
				t.Fatalf("georepctl status --json: %v\n%s", err, out)
			}
			if err := schema.Validate(schema.Status, []byte(out)); err != nil {
				t.Fatalf("georepctl status --json does not match its schema: %v\n%s", err, out)
			}
			if ok(s) {
				return s
			}
		}
		last = out
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: not seen in georepctl status; last:\n%s\nmaster log:\n%s", what, last, lastLines(m.Log(), 30))
	return statusJSON{}
}

func activeSynced(s statusJSON) bool {
	return len(s.Workers) == 1 && s.Workers[0].State == "Active" && s.Workers[0].LastSynced != ""
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s %v", addr, resp.Status, err)
	}
	return string(b)
}

// TestStatusGrpcurl starts both daemons with their metrics, then asks them
// what an operator would: grpcurl list and describe on both, GetStatus
// through grpcurl, /metrics on both.
func TestStatusGrpcurl(t *testing.T) {
	harness.RequireRsync(t)
	grpcurl := harness.Grpcurl()
	if grpcurl == "" {
		t.Skip("grpcurl not installed: run make tools")
	}
	base := t.TempDir()
	src, replica, work := filepath.Join(base, "src"), filepath.Join(base, "replica"), filepath.Join(base, "work")
	for _, d := range []string{src, replica} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"a", "b", "c"} {
		if err := os.WriteFile(filepath.Join(src, name), []byte("content of "+name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	slaveMetrics := harness.FreeAddr(t)
	slave := harness.StartSlave(t, replica, "--insecure", "--metrics-listen", slaveMetrics)
	statusAddr, masterMetrics := harness.FreeAddr(t), harness.FreeAddr(t)
	m := harness.StartMasterProc(t, nil, harness.MasterArgs(slave.Addr, src, work, "--change-interval", "500ms",
		"--status-listen", statusAddr, "--metrics-listen", masterMetrics)...)
	target := []string{"--master", statusAddr}
	waitStatus(t, m, target, "an Active worker that has synced", activeSynced)

	run := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(t.Context(), grpcurl, append([]string{"-plaintext"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("grpcurl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	for _, c := range []struct {
		addr, service, method string
	}{
		{statusAddr, "georep.master.v1.MasterService", "GetStatus"},
		{slave.Addr, "georep.slave.v1.SlaveService", "EntryOps"},
	} {
		list := run(c.addr, "list")
		for _, want := range []string{c.service, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
			if !strings.Contains(list, want) {
				t.Errorf("grpcurl list %s does not show %s:\n%s", c.addr, want, list)
			}
		}
		if d := run(c.addr, "describe", c.service); !strings.Contains(d, "rpc "+c.method+" (") {
			t.Errorf("grpcurl describe %s does not show rpc %s:\n%s", c.service, c.method, d)
		}
	}
	out := run("-d", "{}", statusAddr, "georep.master.v1.MasterService/GetStatus")
	var st struct {
		Workers []struct {
			Brick       string `json:"brick"`
			Slave       string `json:"slave"`
			State       string `json:"state"`
			FilesSynced string `json:"filesSynced"`
			LastSynced  string `json:"lastSynced"`
		} `json:"workers"`
		Build struct {
			Version string `json:"version"`
			Commit  string `json:"commit"`
		} `json:"build"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("GetStatus through grpcurl is not JSON: %v\n%s", err, out)
	}
	if len(st.Workers) != 1 {
		t.Fatalf("GetStatus: want 1 worker, got:\n%s", out)
	}
	w := st.Workers[0]
	if w.Brick != src || w.Slave != slave.Addr || w.State != "WORKER_STATE_ACTIVE" || w.FilesSynced != "3" || w.LastSynced == "" {
		t.Errorf("GetStatus: want brick %s, slave %s, Active, 3 files synced, last synced set; got:\n%s", src, slave.Addr, out)
	}
	if wantVer := versionLine(t, "georep-master"); st.Build.Version == "" ||
		!strings.HasPrefix(wantVer, "georep-master "+st.Build.Version+" (commit "+st.Build.Commit+",") {
		t.Errorf("GetStatus build %+v does not match georep-master --version %q", st.Build, wantVer)
	}
	if h := run(statusAddr, "grpc.health.v1.Health/Check"); !strings.Contains(h, "SERVING") {
		t.Errorf("health of the status service: %s", h)
	}

	mm := scrape(t, masterMetrics)
	for _, want := range []string{
		`georep_master_synced_files_total{brick="` + src + `"} 3`,
		`georep_master_last_synced_timestamp_seconds{brick="` + src + `"}`,
		`georep_master_failures{brick="` + src + `"} 0`,
		`georep_master_worker_state{brick="` + src + `",state="Active"} 1`,
		`georep_master_worker_state{brick="` + src + `",state="Faulty"} 0`,
		`georep_master_entry_ops_total{op="create"}`,
		`georep_master_pending{brick="` + src + `",kind="entry"} 0`,
		`georep_build_info{goversion="`,
	} {
		if !strings.Contains(mm, want) {
			t.Errorf("master /metrics lacks %s", want)
		}
	}
	sm := scrape(t, slaveMetrics)
	if !strings.Contains(sm, `program="georep-slave"`) {
		t.Errorf("slave /metrics lacks georep_build_info")
	}
	if !strings.Contains(sm, `grpc_server_handling_seconds_count{grpc_method="Handshake",grpc_service="georep.slave.v1.SlaveService",grpc_type="unary"}`) {
		t.Errorf("slave /metrics lacks the Handshake's handling time")
	}
	// Entry ops go through the Apply stream (EntryOps where the slave has
	// no Apply).
	if !strings.Contains(sm, `grpc_server_handled_total{grpc_code="OK",grpc_method="Apply",grpc_service="georep.slave.v1.SlaveService",grpc_type="bidi_stream"}`) &&
		!strings.Contains(sm, `grpc_server_handled_total{grpc_code="OK",grpc_method="EntryOps",grpc_service="georep.slave.v1.SlaveService",grpc_type="unary"}`) {
		t.Errorf("slave /metrics lacks the entry ops' calls (Apply or EntryOps)")
	}
}

// versionLine runs a georep binary with --version and returns what it
// printed, checked: exit 0, one line naming the program, and, when the
// tests run from a git checkout, the checkout's commit.
func versionLine(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), harness.Bin(t, name), "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v\n%s", name, err, out)
	}
	line := strings.TrimSpace(string(out))
	if strings.Count(line, "\n") != 0 || !strings.HasPrefix(line, name+" ") {
		t.Fatalf("%s --version printed %q, want one line starting with %q", name, out, name+" ")
	}
	if head, err := exec.CommandContext(t.Context(), "git", "rev-parse", "HEAD").Output(); err == nil &&
		!strings.Contains(line, "commit "+strings.TrimSpace(string(head))) {
		t.Errorf("%s --version %q does not name the checkout's commit %s", name, line, head)
	}
	return line
}

// TestVersion: all three binaries answer --version, without any other
// flag or configuration.
func TestVersion(t *testing.T) {
	for _, name := range []string{"georep-master", "georep-slave", "georepctl"} {
		t.Log(versionLine(t, name))
	}
}

// TestStatusCheckpointPause covers what georepctl steers, through the work
// dir's UNIX socket: a checkpoint set now completes on an idle daemon; a
// paused daemon replicates nothing, shows Paused, and a checkpoint wait
// times out (exit 3) until it is resumed; config set changes live keys
// only.
func TestStatusCheckpointPause(t *testing.T) {
	harness.RequireRsync(t)
	base := t.TempDir()
	src, replica, work := filepath.Join(base, "src"), filepath.Join(base, "replica"), filepath.Join(base, "work")
	for _, d := range []string{src, replica} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "first"), []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	slave := harness.StartSlave(t, replica, "--insecure")
	m := harness.StartMasterProc(t, nil, harness.MasterArgs(slave.Addr, src, work, "--change-interval", "500ms")...)
	target := []string{"--work-dir", work}
	waitStatus(t, m, target, "an Active worker that has synced", activeSynced)

	if code, out := ctl(t, append(target, "checkpoint", "set", "now")...); code != 0 {
		t.Fatalf("checkpoint set now: exit %d\n%s", code, out)
	}
	if code, out := ctl(t, append(target, "checkpoint", "wait", "--timeout", "60s")...); code != 0 || !strings.Contains(out, "completed at") {
		t.Fatalf("checkpoint wait on an idle daemon: exit %d\n%s\nmaster log:\n%s", code, out, lastLines(m.Log(), 20))
	}
	waitStatus(t, m, target, "the checkpoint completed", func(s statusJSON) bool {
		return s.Checkpoint != nil && s.Checkpoint.Completed && len(s.Workers) == 1 && s.Workers[0].CheckpointCompleted
	})

	// Paused: nothing moves, the checkpoint cannot complete.
	if code, out := ctl(t, append(target, "pause")...); code != 0 {
		t.Fatalf("pause: exit %d\n%s", code, out)
	}
	if err := os.WriteFile(filepath.Join(src, "while-paused"), []byte("2"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, m, target, "a Paused worker", func(s statusJSON) bool {
		return s.Paused && len(s.Workers) == 1 && s.Workers[0].State == "Paused"
	})
	if code, out := ctl(t, append(target, "checkpoint", "set", "now")...); code != 0 {
		t.Fatalf("checkpoint set now: exit %d\n%s", code, out)
	}
	code, out := ctl(t, append(target, "checkpoint", "wait", "--timeout", "2s")...)
	if code != 3 || !strings.Contains(out, "timed out after 2s") || !strings.Contains(out, "not complete") {
		t.Errorf("checkpoint wait while paused: want exit 3 saying it timed out, got exit %d\n%s", code, out)
	}
	if _, err := os.Lstat(filepath.Join(replica, "while-paused")); err == nil {
		t.Errorf("a paused master replicated while-paused")
	}

	// Live configuration.
	if code, out := ctl(t, append(target, "config", "set", "change-interval", "1s")...); code != 0 || !strings.Contains(out, "change-interval = 1s") {
		t.Errorf("config set change-interval 1s: exit %d\n%s", code, out)
	}
	if code, out := ctl(t, append(target, "config", "get", "change-interval")...); code != 0 || strings.TrimSpace(out) != "1s" {
		t.Errorf("config get change-interval: exit %d\n%s", code, out)
	}
	if code, out := ctl(t, append(target, "config", "set", "sync-jobs", "5")...); code == 0 || !strings.Contains(out, "sync-jobs cannot be changed while the master runs") {
		t.Errorf("config set sync-jobs: want a refusal naming the key, got exit %d\n%s", code, out)
	}
	if code, out := ctl(t, append(target, "config", "set", "change-interval", "soon")...); code == 0 || !strings.Contains(out, `change-interval: "soon"`) {
		t.Errorf("config set change-interval soon: want a refusal naming key and value, got exit %d\n%s", code, out)
	}

	// Resumed: the change arrives and the checkpoint completes.
	if code, out := ctl(t, append(target, "resume")...); code != 0 {
		t.Fatalf("resume: exit %d\n%s", code, out)
	}
	if code, out := ctl(t, append(target, "checkpoint", "wait", "--timeout", "60s")...); code != 0 {
		t.Fatalf("checkpoint wait after resume: exit %d\n%s\nmaster log:\n%s", code, out, lastLines(m.Log(), 20))
	}
	if b, err := os.ReadFile(filepath.Join(replica, "while-paused")); err != nil || string(b) != "2" {
		t.Errorf("while-paused not replicated once resumed and the checkpoint complete: %q %v", b, err)
	}
}

// TestStatusFailures runs the master unprivileged over a file it cannot
// read: georepctl failures lists it with its reason, a checkpoint cannot
// complete while it fails, and once it is readable failures retry
// requeues it at once (change-interval is an hour).
func TestStatusFailures(t *testing.T) {
	harness.RequireRsync(t)
	setpriv, src, replica, work := unprivilegedSite(t)
	if err := os.WriteFile(filepath.Join(src, "open"), []byte("open"), 0o644); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(src, "secret")
	if err := os.WriteFile(secret, []byte("secret"), 0); err != nil {
		t.Fatal(err)
	}
	slave := harness.StartSlave(t, replica, "--insecure")
	t.Cleanup(func() { harness.KillProcsMentioning(work) })
	args := append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", harness.Bin(t, "georep-master")},
		harness.MasterArgs(slave.Addr, src, work, "--change-interval", "1h")...)
	m := harness.StartProc(t, nil, setpriv, args...)
	target := []string{"--work-dir", work}

	var out string
	deadline := time.Now().Add(convergeTimeout)
	for {
		var code int
		code, out = ctl(t, append(target, "failures")...)
		if code == 0 && strings.Contains(out, "secret") && strings.Contains(strings.ToLower(out), "permission denied") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("georepctl failures does not list secret with its reason:\n%s\nmaster log:\n%s", out, lastLines(m.Log(), 20))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("georepctl failures:\n%s", out)
	if !strings.Contains(out, "GFID") || !strings.Contains(out, "ATTEMPTS") {
		t.Errorf("georepctl failures: no header:\n%s", out)
	}
	waitStatus(t, m, target, "the failure in the status", func(s statusJSON) bool {
		return len(s.Workers) == 1 && s.Workers[0].Failures == 1 && strings.Contains(s.Workers[0].Reason, "permission denied")
	})
	if code, out := ctl(t, append(target, "checkpoint", "set", "now")...); code != 0 {
		t.Fatalf("checkpoint set: exit %d\n%s", code, out)
	}
	if code, out := ctl(t, append(target, "checkpoint", "wait", "--timeout", "3s")...); code != 3 {
		t.Errorf("checkpoint wait with a failure queued: want exit 3, got %d\n%s", code, out)
	}

	if err := os.Chmod(secret, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := ctl(t, append(target, "failures", "retry")...); code != 0 || !strings.Contains(out, "retrying 1 failures") {
		t.Fatalf("failures retry: exit %d\n%s", code, out)
	}
	if code, out := ctl(t, append(target, "checkpoint", "wait", "--timeout", "60s")...); code != 0 {
		t.Fatalf("checkpoint wait after the retry: exit %d\n%s\nmaster log:\n%s", code, out, lastLines(m.Log(), 20))
	}
	if code, out := ctl(t, append(target, "failures")...); code != 0 || !strings.Contains(out, "no failures") {
		t.Errorf("failures after the retry: exit %d\n%s", code, out)
	}
	if b, err := os.ReadFile(filepath.Join(replica, "secret")); err != nil || string(b) != "secret" {
		t.Errorf("secret not replicated after the retry: %q %v", b, err)
	}
}
