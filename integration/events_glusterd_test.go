package integration

import (
	"context"
	"encoding/json"
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

// TestGlustereventsd runs GlusterFS's own events daemon and a master with
// gluster-events auto in a network and mount namespace of their own (a
// private /var/lib/glusterd: glusterd.info with a node UUID, a webhooks.json
// naming a receiver): glustereventsd parses what the master sends, as it
// parses gsyncd's events, and posts GEOREP_ACTIVE with the master's fields
// and this node's UUID to its webhook. Everything runs in a PID namespace
// too, so that it all ends with the script.
func TestGlustereventsd(t *testing.T) {
	harness.RequireRoot(t, "network and mount namespaces")
	harness.RequireRsync(t)
	daemon, err := exec.LookPath("glustereventsd")
	if err != nil {
		t.Skip("glustereventsd not installed (Debian's glusterfs-server; make deps)")
	}
	for _, tool := range []string{"unshare", "ip", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	conf, err := os.ReadFile("/etc/glusterfs/eventsconfig.json")
	if err != nil {
		t.Skipf("GlusterFS's events framework is not configured: %v", err)
	}
	var ec struct {
		Port int `json:"port"`
	}
	if err := json.Unmarshal(conf, &ec); err != nil || ec.Port == 0 {
		t.Fatalf("/etc/glusterfs/eventsconfig.json: no port: %v\n%s", err, conf)
	}
	t.Parallel()
	dir := t.TempDir()
	gd, logs, src, replica := filepath.Join(dir, "glusterd"), filepath.Join(dir, "log"), filepath.Join(dir, "src"), filepath.Join(dir, "replica")
	for _, d := range []string{filepath.Join(gd, "events"), logs, src, replica} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const uuid = "5b1e7c7e-0d3a-4c47-9a61-1b2f6f0f4e11"
	os.WriteFile(filepath.Join(gd, "glusterd.info"), []byte("UUID="+uuid+"\noperating-version=100000\n"), 0o644)
	os.WriteFile(filepath.Join(gd, "events", "webhooks.json"), []byte(`{"http://127.0.0.1:18080/georep": ""}`), 0o644)
	os.WriteFile(filepath.Join(src, "f"), []byte("f"), 0o644)
	receiver, err := filepath.Abs("testdata/webhook_receiver.py")
	if err != nil {
		t.Fatal(err)
	}
	got := filepath.Join(dir, "webhook.jsonl")
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
	script := strings.Join([]string{
		"set -e", "ip link set lo up",
		"mount --bind " + q(gd) + " /var/lib/glusterd", "mount --bind " + q(logs) + " /var/log/glusterfs",
		"python3 " + q(receiver) + " " + q(got) + " 18080 > /dev/null 2>&1 &",
		q(daemon) + " -p " + q(filepath.Join(dir, "eventsd.pid")) + " > /dev/null 2>&1 &",
		q(harness.Bin(t, "georep-slave")) + " --root " + q(replica) + " --listen 127.0.0.1:17100 --insecure --state-dir " + q(filepath.Join(dir, "sstate")) +
			" > " + q(filepath.Join(dir, "slave.log")) + " 2>&1 &",
		// Events are datagrams, sent once (as gsyncd's): start the master
		// once glustereventsd has passed a probe on to the webhook.
		fmt.Sprintf("for i in $(seq 1 300); do python3 -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b\"1 93 probe=1\", (\"127.0.0.1\", %d))'; grep -q probe %s 2>/dev/null && break; sleep 0.2; done", ec.Port, q(got)),
		q(harness.Bin(t, "georep-master")) + " --source " + q(src) + " --slave 127.0.0.1:17100 --insecure --work-dir " + q(filepath.Join(dir, "work")) +
			" --gluster-events auto --change-interval 500ms > " + q(filepath.Join(dir, "master.log")) + " 2>&1 &",
		fmt.Sprintf("for i in $(seq 1 200); do grep -q %s %s 2>/dev/null && break; sleep 0.2; done", q(`"brick_path": "`+src+`"`), q(got)),
		"ps axo pid,stat,wchan:30,args | cut -c1-150 # shown when the test fails",
	}, "\n") // the PID namespace's processes end with its first, sh

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--net", "--mount", "--pid", "--fork", "--mount-proc", "sh", "-c", script)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	b, _ := os.ReadFile(got)
	masterLog, _ := os.ReadFile(filepath.Join(dir, "master.log"))
	slaveLog, _ := os.ReadFile(filepath.Join(dir, "slave.log"))
	eventsLog, _ := os.ReadFile(filepath.Join(logs, "events.log"))
	var doc *events.WebhookDocument
	for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		var d events.WebhookDocument
		if json.Unmarshal([]byte(line), &d) == nil && d.Event == string(events.Active) && d.Message["probe"] == "" {
			doc = &d
			break
		}
	}
	if doc == nil {
		t.Fatalf("glustereventsd posted no GEOREP_ACTIVE (%v):\n%s\nwebhook got:\n%s\nevents.log:\n%s\nmaster log:\n%s\nslave log:\n%s", err, out, b, eventsLog,
			lastLines(string(masterLog), 20), lastLines(string(slaveLog), 10))
	}
	if doc.NodeID != uuid || doc.Message["primary_volume"] != src || doc.Message["brick_path"] != src ||
		doc.Message["primary_node_id"] != uuid || doc.Message["secondary_host"] != "127.0.0.1:17100" {
		t.Errorf("GEOREP_ACTIVE through glustereventsd: %+v", doc)
	}
	if !strings.Contains(string(masterLog), `msg="events go to glustereventsd" addr=127.0.0.1:`) {
		t.Errorf("the master does not say where its events go:\n%s", lastLines(string(masterLog), 20))
	}
}
