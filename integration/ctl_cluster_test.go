package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/georep/georep/cmd/georepctl/schema"
	"github.com/georep/georep/integration/harness"
)

// clusterStatusJSON is the part of `georepctl --master a,b status --json`
// the test reads.
type clusterStatusJSON struct {
	Nodes []struct {
		Node      string `json:"node"`
		Reachable bool   `json:"reachable"`
		Error     string `json:"error"`
		Paused    bool   `json:"paused"`
	} `json:"nodes"`
	Workers []struct {
		Node       string `json:"node"`
		Brick      string `json:"brick"`
		State      string `json:"state"`
		LastSynced string `json:"last_synced"`
	} `json:"workers"`
}

// TestCtlCluster runs two real masters, each with its own source, work
// dir, status service on loopback and slave (a replica serves one master
// volume), and drives both with one georepctl --master a,b: status shows
// both, checkpoint set now sets one time on both, checkpoint wait ends once
// both have synced, pause and resume reach both, and with one master killed
// status prints the other, a row for the dead one and exits 4.
func TestCtlCluster(t *testing.T) {
	harness.RequireRsync(t)
	base := t.TempDir()
	type master struct {
		src, replica, addr string
		proc               *harness.Proc
	}
	ms := make([]*master, 2)
	for i := range ms {
		m := &master{src: filepath.Join(base, "src"+string(rune('a'+i))), replica: filepath.Join(base, "replica"+string(rune('a'+i)))}
		for _, d := range []string{m.src, m.replica} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(m.src, "first"), []byte("1"), 0o644); err != nil {
			t.Fatal(err)
		}
		slave := harness.StartSlave(t, m.replica, "--insecure")
		m.addr = harness.FreeAddr(t)
		m.proc = harness.StartMasterProc(t, nil, harness.MasterArgs(slave.Addr, m.src, filepath.Join(base, "work"+string(rune('a'+i))),
			"--change-interval", "500ms", "--status-listen", m.addr)...)
		ms[i] = m
	}
	for _, m := range ms {
		waitStatus(t, m.proc, []string{"--master", m.addr}, "an Active worker that has synced on "+m.addr, activeSynced)
	}
	both := ms[0].addr + "," + ms[1].addr

	// status: one table, one JSON document, both masters.
	code, out := ctl(t, "--master", both, "status")
	if code != 0 {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	for _, m := range ms {
		if !strings.Contains(out, m.addr+"  ") || !strings.Contains(out, m.src) {
			t.Errorf("status: no row of %s (%s):\n%s", m.addr, m.src, out)
		}
	}
	t.Logf("georepctl --master %s status:\n%s", both, out)
	if !strings.Contains(out, "2 of 2 nodes answered; 2 workers: 2 Active") {
		t.Errorf("status: no summary of 2 Active workers:\n%s", out)
	}
	code, out = ctl(t, "--master", both, "status", "--json")
	var doc clusterStatusJSON
	if err := json.Unmarshal([]byte(out), &doc); err != nil || code != 0 {
		t.Fatalf("status --json: exit %d, %v\n%s", code, err, out)
	}
	if len(doc.Nodes) != 2 || !doc.Nodes[0].Reachable || !doc.Nodes[1].Reachable || len(doc.Workers) != 2 ||
		doc.Workers[0].Node != ms[0].addr || doc.Workers[0].Brick != ms[0].src ||
		doc.Workers[1].Node != ms[1].addr || doc.Workers[1].Brick != ms[1].src {
		t.Errorf("status --json: %+v", doc)
	}

	// checkpoint set now: one time, on both.
	if code, out := ctl(t, "--master", both, "checkpoint", "set", "now"); code != 0 {
		t.Fatalf("checkpoint set now: exit %d\n%s", code, out)
	}
	var times []string
	for _, m := range ms {
		code, out := ctl(t, "--master", m.addr, "checkpoint", "--json")
		var doc struct {
			Checkpoint struct {
				Time string `json:"time"`
			} `json:"checkpoint"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil || code != 0 || doc.Checkpoint.Time == "" {
			t.Fatalf("checkpoint --json on %s: exit %d, %v\n%s", m.addr, code, err, out)
		}
		if err := schema.Validate(schema.Checkpoint, []byte(out)); err != nil {
			t.Errorf("checkpoint --json does not match its schema: %v\n%s", err, out)
		}
		times = append(times, doc.Checkpoint.Time)
	}
	if times[0] != times[1] {
		t.Errorf("checkpoint set now on both: %s has %s, %s has %s", ms[0].addr, times[0], ms[1].addr, times[1])
	}
	if err := os.WriteFile(filepath.Join(ms[1].src, "second"), []byte("2"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out = ctl(t, "--master", both, "checkpoint", "wait", "--timeout", "60s")
	if code != 0 || !strings.Contains(out, "completed on every node (2)") {
		t.Fatalf("checkpoint wait: exit %d\n%s\nmaster logs:\n%s\n%s", code, out, lastLines(ms[0].proc.Log(), 20), lastLines(ms[1].proc.Log(), 20))
	}
	if b, err := os.ReadFile(filepath.Join(ms[1].replica, "second")); err != nil || string(b) != "2" {
		t.Errorf("second not on %s's slave once the checkpoint is complete: %q %v", ms[1].addr, b, err)
	}
	if code, out := ctl(t, "--master", both, "checkpoint"); code != 0 || !strings.Contains(out, "complete on every node") {
		t.Errorf("checkpoint: exit %d\n%s", code, out)
	}

	// pause and resume reach both.
	if code, out := ctl(t, "--master", both, "pause"); code != 0 {
		t.Fatalf("pause: exit %d\n%s", code, out)
	}
	for _, m := range ms {
		waitStatus(t, m.proc, []string{"--master", m.addr}, m.addr+" paused", func(s statusJSON) bool { return s.Paused })
	}
	if code, out := ctl(t, "--master", both, "resume"); code != 0 {
		t.Fatalf("resume: exit %d\n%s", code, out)
	}
	for _, m := range ms {
		waitStatus(t, m.proc, []string{"--master", m.addr}, m.addr+" resumed", func(s statusJSON) bool { return !s.Paused })
	}

	// One master gone: the other still prints, the dead one has a row, exit 4.
	ms[1].proc.Kill()
	start := time.Now()
	code, out = ctl(t, "--master", both, "--node-timeout", "5s", "status")
	if code != 4 {
		t.Errorf("status with %s killed: exit %d, want 4\n%s", ms[1].addr, code, out)
	}
	if !strings.Contains(out, ms[0].src) || !strings.Contains(out, ms[1].addr+"  N/A") || !strings.Contains(out, "Unreachable") ||
		!strings.Contains(out, "1 of 2 nodes answered") {
		t.Errorf("status with %s killed: want %s's row and an Unreachable row:\n%s", ms[1].addr, ms[0].addr, out)
	}
	t.Logf("georepctl --master %s status with the second killed:\n%s", both, out)
	if el := time.Since(start); el > 20*time.Second {
		t.Errorf("status with a dead master took %s", el)
	}
}
