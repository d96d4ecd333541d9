package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	masterv1 "github.com/georep/georep/gen/georep/master/v1"
)

func TestMain(m *testing.M) {
	time.Local = time.UTC // formatTime prints local time: make the golden files hold everywhere
	waitPoll = 20 * time.Millisecond
	os.Exit(m.Run())
}

// ctl runs georepctl in-process and returns its exit code, stdout and stderr.
func ctl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// contains fails the test unless s holds every one of wants.
func contains(t *testing.T, what, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("%s: no %q in\n%s", what, w, s)
		}
	}
}

func TestClusterStatus(t *testing.T) {
	a, b := newFakeMaster("n1", "/b1", "/b2"), newFakeMaster("n2", "/b3")
	b.workers[0].State = masterv1.WorkerState_WORKER_STATE_PASSIVE
	aa, ba, dead := a.serve(t, "127.0.0.1:0"), b.serve(t, "127.0.0.1:0"), deadAddr(t)

	tests := []struct {
		name     string
		masters  string
		code     int
		wantRows []string // the NODE and BRICK of each table row, in order
		wantOut  []string
	}{
		{name: "all answer", masters: aa + "," + ba, code: exitOK,
			wantRows: []string{aa + " n1 /b1", aa + " n1 /b2", ba + " n2 /b3"},
			wantOut:  []string{"2 of 2 nodes answered; 3 workers: 2 Active, 1 Passive"}},
		{name: "order as given", masters: ba + "," + aa, code: exitOK,
			wantRows: []string{ba + " n2 /b3", aa + " n1 /b1", aa + " n1 /b2"}},
		{name: "one unreachable", masters: aa + "," + dead + "," + ba, code: exitPartial,
			wantRows: []string{aa + " n1 /b1", aa + " n1 /b2", dead + " N/A N/A", ba + " n2 /b3"},
			wantOut:  []string{"Unreachable", dead + ": unreachable: ", "2 of 3 nodes answered"}},
		{name: "none answers", masters: dead + "," + deadAddr(t), code: exitError,
			wantOut: []string{"0 of 2 nodes answered; 0 workers"}},
		{name: "a repeated address is asked once", masters: aa + "," + aa + ",", code: exitOK,
			wantRows: []string{aa + " n1 /b1", aa + " n1 /b2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := ctl(t, "--master", tc.masters, "--node-timeout", "2s", "status")
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s%s", code, tc.code, out, errs)
			}
			lines := strings.Split(out, "\n")
			if !strings.HasPrefix(lines[0], "NODE ") {
				t.Fatalf("no NODE column: %q", lines[0])
			}
			var rows []string
			for _, l := range lines[1:] {
				if l == "" {
					break
				}
				f := strings.Fields(l)
				rows = append(rows, strings.Join(f[:3], " "))
			}
			if tc.wantRows != nil && strings.Join(rows, "|") != strings.Join(tc.wantRows, "|") {
				t.Errorf("rows %q, want %q", rows, tc.wantRows)
			}
			contains(t, "status", out, tc.wantOut...)
		})
	}
}

func TestClusterStatusJSON(t *testing.T) {
	a, b := newFakeMaster("n1", "/b1"), newFakeMaster("n2", "/b2")
	aa, ba, dead := a.serve(t, "127.0.0.1:0"), b.serve(t, "127.0.0.1:0"), deadAddr(t)
	code, out, errs := ctl(t, "--master", aa+","+dead+","+ba, "status", "--json")
	if code != exitPartial {
		t.Errorf("exit %d, want %d\n%s", code, exitPartial, errs)
	}
	var doc struct {
		Nodes []struct {
			Node      string `json:"node"`
			Reachable bool   `json:"reachable"`
			Error     string `json:"error"`
			Workers   int    `json:"workers"`
		} `json:"nodes"`
		Workers []struct {
			Node       string `json:"node"`
			Brick      string `json:"brick"`
			MasterNode string `json:"master_node"`
			State      string `json:"state"`
		} `json:"workers"`
		MasterVolume string `json:"master_volume"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(doc.Nodes) != 3 || !doc.Nodes[0].Reachable || doc.Nodes[1].Reachable || doc.Nodes[1].Error == "" || !doc.Nodes[2].Reachable {
		t.Errorf("nodes %+v", doc.Nodes)
	}
	if len(doc.Workers) != 2 || doc.Workers[0].Node != aa || doc.Workers[0].Brick != "/b1" || doc.Workers[1].Node != ba ||
		doc.Workers[1].MasterNode != "n2" || doc.Workers[1].State != "Active" {
		t.Errorf("workers %+v", doc.Workers)
	}
	if doc.MasterVolume != "mvol" {
		t.Errorf("master_volume %q", doc.MasterVolume)
	}
}

// TestNodeTimeout: a node slower than --node-timeout is reported as not
// answering; the others print.
func TestNodeTimeout(t *testing.T) {
	a, slow := newFakeMaster("n1", "/b1"), newFakeMaster("n2", "/b2")
	slow.delay = 5 * time.Second
	aa, sa := a.serve(t, "127.0.0.1:0"), slow.serve(t, "127.0.0.1:0")
	start := time.Now()
	code, out, _ := ctl(t, "--master", aa+","+sa, "--node-timeout", "300ms", "status")
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("took %s with --node-timeout 300ms", el)
	}
	if code != exitPartial {
		t.Errorf("exit %d, want %d", code, exitPartial)
	}
	contains(t, "status", out, aa+"  n1", sa+": unreachable: no answer within 300ms")
}

func TestClusterCheckpointSet(t *testing.T) {
	a, b := newFakeMaster("n1", "/b1"), newFakeMaster("n2", "/b2")
	aa, ba, dead := a.serve(t, "127.0.0.1:0"), b.serve(t, "127.0.0.1:0"), deadAddr(t)

	t.Run("now is one time", func(t *testing.T) {
		before := time.Now()
		code, out, errs := ctl(t, "--master", aa+","+ba, "checkpoint", "set", "now")
		if code != exitOK {
			t.Fatalf("exit %d\n%s%s", code, out, errs)
		}
		ta, tb := a.checkpointTimes(), b.checkpointTimes()
		if len(ta) != 1 || len(tb) != 1 || !ta[0].Equal(tb[0]) || ta[0].Before(before.Add(-time.Second)) {
			t.Errorf("times set: %v and %v", ta, tb)
		}
		contains(t, "checkpoint set", out, aa+": checkpoint set: ", ba+": checkpoint set: ")
	})
	t.Run("a time", func(t *testing.T) {
		code, out, errs := ctl(t, "--master", aa+","+ba, "checkpoint", "set", "2026-12-01T10:00:00Z")
		want := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
		if ta, tb := a.checkpointTimes(), b.checkpointTimes(); code != exitOK || !ta[len(ta)-1].Equal(want) || !tb[len(tb)-1].Equal(want) {
			t.Errorf("exit %d, times %v %v\n%s%s", code, ta, tb, out, errs)
		}
	})
	t.Run("one node fails", func(t *testing.T) {
		code, out, errs := ctl(t, "--master", aa+","+dead+","+ba, "checkpoint", "set", "now")
		if code != exitPartial {
			t.Errorf("exit %d, want %d", code, exitPartial)
		}
		contains(t, "stdout", out, dead+": failed: unreachable")
		contains(t, "stderr", errs, "set on "+aa+", "+ba+"; not on "+dead,
			"to set the same checkpoint on them: georepctl --master "+dead+" checkpoint set 20")
	})
	t.Run("bad time", func(t *testing.T) {
		code, _, errs := ctl(t, "--master", aa+","+ba, "checkpoint", "set", "tomorrow")
		if code != exitError || !strings.Contains(errs, `checkpoint time "tomorrow"`) {
			t.Errorf("exit %d\n%s", code, errs)
		}
	})
}

func TestClusterCheckpointWait(t *testing.T) {
	tests := []struct {
		name          string
		afterA        int // GetStatus calls until a's checkpoint completes (0: never)
		afterB        int
		dead          bool
		noCheckpointB bool
		timeout       string
		code          int
		wantOut       []string
		wantErr       []string
	}{
		{name: "both complete", afterA: 2, afterB: 5, timeout: "10s", code: exitOK,
			wantOut: []string{"completed on every node (2)"}, wantErr: []string{"0 of 1 workers reached it"}},
		{name: "one never", afterA: 1, timeout: "300ms", code: exitTimeout,
			wantErr: []string{"timed out after 300ms: the checkpoint is not complete on B 0 of 1 workers reached it"}},
		{name: "one unreachable", afterA: 1, afterB: 1, dead: true, timeout: "300ms", code: exitTimeout,
			wantErr: []string{"not complete on DEAD unreachable"}},
		{name: "no checkpoint on one", afterA: 1, noCheckpointB: true, timeout: "10s", code: exitError,
			wantErr: []string{"no checkpoint is set on B"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newFakeMaster("n1", "/b1"), newFakeMaster("n2", "/b2")
			a.completeAfter, b.completeAfter = tc.afterA, tc.afterB
			aa, ba := a.serve(t, "127.0.0.1:0"), b.serve(t, "127.0.0.1:0")
			masters := aa + "," + ba
			dead := deadAddr(t)
			if tc.dead {
				masters += "," + dead
			}
			set := aa + "," + ba
			if tc.noCheckpointB {
				set = aa + "," // a list of one: the same code path
			}
			if code, out, errs := ctl(t, "--master", set, "checkpoint", "set", "now"); code != exitOK {
				t.Fatalf("checkpoint set: exit %d\n%s%s", code, out, errs)
			}
			code, out, errs := ctl(t, "--master", masters, "--node-timeout", "1s", "checkpoint", "wait", "--timeout", tc.timeout)
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s%s", code, tc.code, out, errs)
			}
			r := strings.NewReplacer("B", ba, "DEAD", dead)
			for _, w := range tc.wantOut {
				contains(t, "stdout", out, r.Replace(w))
			}
			for _, w := range tc.wantErr {
				contains(t, "stderr", errs, r.Replace(w))
			}
		})
	}
}

func TestClusterPauseResume(t *testing.T) {
	a, b := newFakeMaster("n1", "/b1"), newFakeMaster("n2", "/b2")
	aa, ba := a.serve(t, "127.0.0.1:0"), b.serve(t, "127.0.0.1:0")
	if code, out, errs := ctl(t, "--master", aa+","+ba, "pause"); code != exitOK || !a.isPaused() || !b.isPaused() {
		t.Fatalf("pause: exit %d, paused %v %v\n%s%s", code, a.isPaused(), b.isPaused(), out, errs)
	}
	code, out, _ := ctl(t, "--master", aa+","+ba, "status")
	contains(t, "status when paused", out, "the session is paused on every node that answered")
	if code != exitOK {
		t.Errorf("status: exit %d", code)
	}
	dead := deadAddr(t)
	code, out, errs := ctl(t, "--master", aa+","+dead+","+ba, "resume")
	if code != exitPartial || a.isPaused() || b.isPaused() {
		t.Errorf("resume: exit %d, paused %v %v", code, a.isPaused(), b.isPaused())
	}
	contains(t, "resume", out, aa+": resumed", ba+": resumed", dead+": failed: unreachable")
	contains(t, "resume", errs, "resumed on "+aa+", "+ba+"; not on "+dead)
}

func TestClusterConfig(t *testing.T) {
	a, b := newFakeMaster("n1", "/b1"), newFakeMaster("n2", "/b2")
	aa, ba := a.serve(t, "127.0.0.1:0"), b.serve(t, "127.0.0.1:0")
	m := aa + "," + ba
	steps := []struct {
		args    []string
		code    int
		wantOut string // the whole of stdout when it starts with "=", else a part
	}{
		{args: []string{"config", "get", "log-level"}, code: exitOK, wantOut: "=info\n"},
		{args: []string{"config", "set", "log-level", "debug"}, code: exitOK, wantOut: "=" + aa + ": log-level = debug\n" + ba + ": log-level = debug\n"},
		{args: []string{"config", "get", "log-level"}, code: exitOK, wantOut: "=debug\n"},
		{args: []string{"config", "set", "sync-jobs", "3"}, code: exitError, wantOut: aa + ": failed: sync-jobs cannot be changed while the master runs"},
		{args: []string{"config", "reset", "log-level"}, code: exitOK, wantOut: "=" + aa + ": log-level = info (reset: default)\n" + ba + ": log-level = info (reset: default)\n"},
		{args: []string{"config", "get", "log-level"}, code: exitOK, wantOut: "=info\n"},
		{args: []string{"config", "set", "log-level", "warn"}, code: exitOK, wantOut: aa + ": log-level = warn\n"},
		{args: []string{"config", "!log-level"}, code: exitOK, wantOut: ba + ": log-level = info (reset: default)\n"}, // gluster's spelling
		// gluster's config KEY VALUE and config KEY
		{args: []string{"config", "log-level", "error"}, code: exitOK, wantOut: "=" + aa + ": log-level = error\n" + ba + ": log-level = error\n"},
		{args: []string{"config", "log-level"}, code: exitOK, wantOut: "=error\n"},
		{args: []string{"config"}, code: exitOK, wantOut: "change-interval"},
		{args: []string{"config", "log-level", "info", "extra"}, code: exitUsage, wantOut: "="},
		{args: []string{"config", "reset", "log-level"}, code: exitOK, wantOut: "=" + aa + ": log-level = info (reset: default)\n" + ba + ": log-level = info (reset: default)\n"},
		{args: []string{"config", "set", "checkpoint", "1780000000"}, code: exitOK,
			wantOut: "=" + aa + ": checkpoint = 2026-05-28T20:26:40Z\n" + ba + ": checkpoint = 2026-05-28T20:26:40Z\n"},
		{args: []string{"config", "set", "checkpoint", "soon"}, code: exitError, wantOut: "=" /* refused before any master is asked */},
	}
	for _, s := range steps {
		code, out, errs := ctl(t, append([]string{"--master", m}, s.args...)...)
		if code != s.code {
			t.Errorf("%v: exit %d, want %d\n%s%s", s.args, code, s.code, out, errs)
		}
		if want, whole := strings.CutPrefix(s.wantOut, "="); whole && out != want {
			t.Errorf("%v: stdout %q, want %q", s.args, out, want)
		} else if !whole {
			contains(t, strings.Join(s.args, " "), out, s.wantOut)
		}
	}

	// config set checkpoint now: one time, georepctl's, for every master.
	if code, out, errs := ctl(t, "--master", m, "config", "set", "checkpoint", "now"); code != exitOK {
		t.Fatalf("config set checkpoint now: exit %d\n%s%s", code, out, errs)
	}
	if a.config["checkpoint"] == "" || a.config["checkpoint"] != b.config["checkpoint"] {
		t.Errorf("config set checkpoint now set %q and %q", a.config["checkpoint"], b.config["checkpoint"])
	}
	cp := a.config["checkpoint"]
	b.config["change-interval"] = "1s"
	code, out, _ := ctl(t, "--master", m, "config", "get")
	if code != exitOK {
		t.Errorf("config get: exit %d", code)
	}
	diff := "DIFFERS: " + aa + "=5s " + ba + "=1s"
	want := fmt.Sprintf("%-16s %-*s  SOURCE   LIVE\n", "KEY", len(diff), "VALUE") +
		fmt.Sprintf("%-16s %s  default  yes\n", "change-interval", diff) +
		fmt.Sprintf("%-16s %-*s  live     yes\n", "checkpoint", len(diff), cp) +
		fmt.Sprintf("%-16s %-*s  default  yes\n", "log-level", len(diff), "info") +
		"\n1 of 3 keys differ between the nodes: change-interval\n"
	if out != want {
		t.Errorf("config get:\n%s\nwant:\n%s", out, want)
	}
	code, out, _ = ctl(t, "--master", m, "config", "get", "change-interval", "--json")
	var doc clusterConfigJSON
	if err := json.Unmarshal([]byte(out), &doc); err != nil || code != exitOK || len(doc.Differs) != 1 || doc.Differs[0] != "change-interval" || len(doc.Nodes) != 2 {
		t.Errorf("config get --json: exit %d, %v: %+v\n%s", code, err, doc, out)
	}
}

func TestClusterFailures(t *testing.T) {
	a, b := newFakeMaster("n1", "/b1"), newFakeMaster("n2", "/b2")
	const g = "b1fe9ad2-e49a-4195-9894-387c7019c226"
	b.failures = []*masterv1.Failure{{Brick: "/b2", Gfid: g, Path: "bad", Reason: "EINVAL", Attempts: 2,
		Class: masterv1.FailureClass_FAILURE_CLASS_PERMANENT}}
	aa, ba := a.serve(t, "127.0.0.1:0"), b.serve(t, "127.0.0.1:0")
	m := aa + "," + ba

	code, out, _ := ctl(t, "--master", m, "failures")
	if code != exitOK || !strings.HasPrefix(out, "NODE ") {
		t.Errorf("failures: exit %d\n%s", code, out)
	}
	contains(t, "failures", out, ba+"  /b2    "+g+"  bad")

	if code, _, errs := ctl(t, "--master", m, "failures", "skip", g); code != exitUsage || !strings.Contains(errs, "--reason") {
		t.Errorf("skip without a reason: exit %d\n%s", code, errs)
	}
	// Only b holds it: a's NOT_FOUND is no failure.
	code, out, errs := ctl(t, "--master", m, "failures", "skip", g, "--reason", "test")
	if code != exitOK {
		t.Errorf("skip: exit %d\n%s%s", code, out, errs)
	}
	contains(t, "skip", out, ba+": skipped "+g+" (bad) on /b2: permanent failure")
	code, _, errs = ctl(t, "--master", m, "failures", "skip", g, "--reason", "again")
	if code != exitError || !strings.Contains(errs, "in the failure queue of no node (2 asked)") {
		t.Errorf("skip of a gfid no node holds: exit %d\n%s", code, errs)
	}
	code, out, _ = ctl(t, "--master", m, "failures", "--json")
	var doc struct {
		Failures []json.RawMessage `json:"failures"`
		Skipped  []struct {
			Node string `json:"node"`
		} `json:"skipped"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || code != exitOK || len(doc.Failures) != 0 || len(doc.Skipped) != 1 || doc.Skipped[0].Node != ba {
		t.Errorf("failures --json: exit %d, %v: %+v\n%s", code, err, doc, out)
	}
}

func TestClusterUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"volume and master", []string{"--gluster-volume", "v", "--master", "a:1", "status"}, exitUsage, "only one"},
		{"several masters and work dir", []string{"--master", "a:1,b:1", "--work-dir", "/w", "status"}, exitUsage, "not both"},
		{"no command", []string{"--master", "a:1,b:1"}, exitUsage, "usage:"},
		{"unknown command", []string{"--master", "127.0.0.1:1,127.0.0.2:1", "frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{"plaintext to remote masters", []string{"--master", "a:1,b:1", "status"}, exitUsage, "a:1 is not a loopback address"},
		{"remote masters with --insecure", []string{"--master", "a:1,b:1", "--insecure", "frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{"TLS and --insecure", []string{"--master", "a:1", "--insecure", "--tls-cert", "c", "--tls-key", "k", "--tls-ca", "ca", "status"},
			exitUsage, "not both"},
		{"bad node timeout", []string{"--master", "a:1,b:1", "--node-timeout", "0s", "status"}, exitUsage, "--node-timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := ctl(t, tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.want) {
				t.Errorf("exit %d, want %d with %q:\n%s", code, tc.code, tc.want, errs)
			}
		})
	}
}

// TestClusterNoGoroutineLeak: a session-wide command, a master not
// answering included, leaves no goroutine behind once it returns.
func TestClusterNoGoroutineLeak(t *testing.T) {
	a := newFakeMaster("n1", "/b1")
	slow := newFakeMaster("n2", "/b2")
	slow.delay = time.Second
	aa, sa := a.serve(t, "127.0.0.1:0"), slow.serve(t, "127.0.0.1:0")
	ctl(t, "--master", aa+","+sa, "status") // the signal package's goroutine starts once and stays
	time.Sleep(100 * time.Millisecond)
	before := runtime.NumGoroutine()
	for _, args := range [][]string{{"status"}, {"checkpoint", "set", "now"}, {"checkpoint", "wait", "--timeout", "200ms"}, {"pause"}} {
		ctl(t, append([]string{"--master", aa + "," + sa + "," + deadAddr(t), "--node-timeout", "100ms"}, args...)...)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The session's checkpoint is complete when every replica set's Active
// worker passed it, on whichever node: a node whose workers are all
// Passive has nothing to pass, and a set with no Active worker that passed
// it (between two holders) is not complete.
func TestWaitStateReplicaSets(t *testing.T) {
	cp := &masterv1.Checkpoint{Time: timestamppb.Now()}
	w := func(set string, st masterv1.WorkerState, done bool) *masterv1.WorkerStatus {
		return &masterv1.WorkerStatus{Brick: "b" + set, ReplicaSet: set, State: st, CheckpointCompleted: done}
	}
	const (
		active  = masterv1.WorkerState_WORKER_STATE_ACTIVE
		passive = masterv1.WorkerState_WORKER_STATE_PASSIVE
	)
	node := func(name string, ws ...*masterv1.WorkerStatus) answer[*masterv1.GetStatusResponse] {
		return answer[*masterv1.GetStatusResponse]{Node: name, Resp: &masterv1.GetStatusResponse{Checkpoint: cp, Workers: ws}}
	}
	tests := []struct {
		name string
		as   []answer[*masterv1.GetStatusResponse]
		want bool
	}{
		{"both sets passed, a node all Passive", []answer[*masterv1.GetStatusResponse]{
			node("m1", w("0", active, true), w("1", passive, false)),
			node("m2", w("0", passive, false), w("1", active, true)),
			node("m3", w("0", passive, false), w("1", passive, false))}, true},
		{"set 1 not passed", []answer[*masterv1.GetStatusResponse]{
			node("m1", w("0", active, true), w("1", passive, false)),
			node("m2", w("0", passive, false), w("1", active, false))}, false},
		{"set 1 between holders", []answer[*masterv1.GetStatusResponse]{
			node("m1", w("0", active, true), w("1", passive, false)),
			node("m2", w("0", passive, false), w("1", passive, false))}, false},
	}
	for _, tc := range tests {
		if got := waitState(tc.as).complete(); got != tc.want {
			t.Errorf("%s: complete %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestGlusterConfigArgs(t *testing.T) {
	for _, tt := range []struct{ in, want []string }{
		{[]string{"config"}, []string{"config", "get"}},
		{[]string{"config", "log-level"}, []string{"config", "get", "log-level"}},
		{[]string{"config", "log-level", "debug"}, []string{"config", "set", "log-level", "debug"}},
		{[]string{"config", "get", "log-level"}, []string{"config", "get", "log-level"}},
		{[]string{"config", "set", "log-level", "debug"}, []string{"config", "set", "log-level", "debug"}},
		{[]string{"config", "reset", "log-level"}, []string{"config", "reset", "log-level"}},
		{[]string{"config", "!log-level"}, []string{"config", "!log-level"}},
		{[]string{"config", "a", "b", "c"}, []string{"config", "a", "b", "c"}},
		{[]string{"status"}, []string{"status"}},
	} {
		if got := glusterConfigArgs(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("glusterConfigArgs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
