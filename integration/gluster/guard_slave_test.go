package gluster

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/georep/georep/integration/harness"
)

// TestSlaveGlusterFSNonEmptyVolumeGuard: georep-slave on a GlusterFS
// volume that already holds data refuses the first master (georep-master
// --oneshot exits 4 naming the guard), counting neither the slave's own
// .georep nor GlusterFS's .trashcan (features.trash on), and leaves the
// data alone; with --adopt the pass runs and the volume converges to the
// source. A source name .gfid at the root is refused by the slave (EPERM,
// reserved by the aux-gfid access path): the pass cannot converge, and the
// failure says why.
func TestSlaveGlusterFSNonEmptyVolumeGuard(t *testing.T) {
	harness.RequireRsync(t)
	c := Start(t)
	vol := c.Volume(t, "slaveguard", VolumeOpts{})
	vol.Set(t, "features.trash", "on")
	dir := t.TempDir()
	src, work := filepath.Join(dir, "src"), filepath.Join(dir, "work")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := harness.Populate(src, rand.New(rand.NewPCG(41, 42))); err != nil {
		t.Fatal(err)
	}
	view := vol.Mount(t)
	if _, err := os.Stat(filepath.Join(view, ".trashcan")); err != nil {
		t.Fatalf("features.trash on: no .trashcan in the volume root: %v", err)
	}
	if err := os.WriteFile(filepath.Join(view, "someone-else.txt"), []byte("not georep's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(view, "their-dir"), 0o755); err != nil {
		t.Fatal(err)
	}

	certs := harness.MakeCerts(t, t.TempDir())
	startSlave := func(extra ...string) (*harness.Proc, string) {
		t.Helper()
		addr := harness.FreeAddr(t)
		p := harness.StartProc(t, nil, "georep-slave", append(append([]string{"--listen", addr,
			"--gluster-volume", vol.Name, "--volfile-server", Host, "--state-dir", filepath.Join(t.TempDir(), "state")},
			certs.SlaveArgs()...), extra...)...)
		t.Cleanup(func() { stopSlave(t, p) })
		if !p.WaitLog("slave serving", 90*time.Second) {
			t.Fatalf("georep-slave did not start:\n%s", p.Log())
		}
		return p, addr
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	masterFor := func(addr, timeout string) (int, string) {
		return harness.Oneshot(t, ctx, append([]string{"--slave", addr, "--source", src, "--work-dir", work, "--oneshot-timeout", timeout}, certs.MasterArgs()...)...)
	}
	master := func(addr string) (int, string) { return masterFor(addr, "60s") }

	slave, addr := startSlave()
	code, out := master(addr)
	if code != 4 {
		t.Fatalf("georep-master --oneshot into a non-empty slave volume exited %d, want 4:\n%s\nslave:\n%s", code, out, slave.Log())
	}
	for _, want := range []string{"safety guard replica-not-empty refused", "holds 2 entries", `"someone-else.txt", "their-dir"`, "--adopt"} {
		if !strings.Contains(out, want) {
			t.Errorf("the master's error does not say %q:\n%s", want, out)
		}
	}
	if b, err := os.ReadFile(filepath.Join(view, "someone-else.txt")); err != nil || string(b) != "not georep's\n" {
		t.Errorf("the refused master changed the volume: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(view, ".georep", "master-volume-id")); !os.IsNotExist(err) {
		t.Errorf("the refused master bound the volume: %v", err)
	}
	stopSlave(t, slave)

	_, addr = startSlave("--adopt")
	if code, out := master(addr); code != 0 {
		t.Fatalf("georep-master --oneshot with the slave's --adopt exited %d:\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(view, ".georep", "adopted")); err != nil {
		t.Errorf("adoption not recorded: %v", err)
	}
	checkConverged(t, src, vol.Mount(t))

	// .gfid at the source's root: refused at once, with the reason.
	if err := os.Mkdir(filepath.Join(src, ".gfid"), 0o755); err != nil {
		t.Fatal(err)
	}
	code, out = masterFor(addr, "5s")
	if code == 0 {
		t.Fatalf("a source .gfid at the root converged on a GlusterFS slave:\n%s", out)
	}
	if !strings.Contains(out, "reserved by GlusterFS's aux-gfid access path on the slave") {
		t.Errorf("the master's output does not say why .gfid was refused:\n%s", harness.Tail(out, 30))
	}
	t.Logf("master with a root .gfid exited %d:\n%s", code, harness.Tail(out, 12))
	if err := os.Remove(filepath.Join(src, ".gfid")); err != nil {
		t.Fatal(err)
	}
	if code, out := master(addr); code != 0 {
		t.Fatalf("after removing .gfid from the source, --oneshot exited %d:\n%s", code, harness.Tail(out, 30))
	}
	checkConverged(t, src, vol.Mount(t))
}

func stopSlave(t *testing.T, p *harness.Proc) {
	if p.Exited() {
		return
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM) // it unmounts what it mounted
	if code, ok := p.Wait(60 * time.Second); !ok || code != 0 {
		t.Errorf("georep-slave exit %d (exited %v):\n%s", code, ok, p.Log())
	}
}

// checkConverged compares the source with the slave volume, GlusterFS's
// .trashcan aside.
func checkConverged(t *testing.T, src, view string) {
	t.Helper()
	diffs, err := harness.Compare(src, view, harness.CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var real []string
	for _, d := range diffs {
		if !strings.HasPrefix(d, `".trashcan`) {
			real = append(real, d)
		}
	}
	if len(real) > 0 {
		t.Fatalf("slave volume differs from the source:\n%s", strings.Join(real, "\n"))
	}
}
