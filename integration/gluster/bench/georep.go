package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/georep/georep/integration/gluster"
	"github.com/georep/georep/integration/harness"
)

// georepMode is how the georep daemons reach the volumes.
type georepMode struct {
	gluster bool   // --gluster-volume on both daemons
	label   string // for the tables
}

// probeGeorep picks the mode from what the binaries' --help offers.
func probeGeorep(tb testing.TB) georepMode {
	tb.Helper()
	has := func(bin string) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, _ := exec.CommandContext(ctx, harness.Bin(tb, bin), "--help").CombinedOutput()
		return strings.Contains(string(out), "--gluster-volume")
	}
	if has("georep-master") && has("georep-slave") {
		return georepMode{gluster: true, label: "georep (--gluster-volume)"}
	}
	return georepMode{label: "georep (fallback: FUSE mounts)"}
}

var slaveAddrRE = regexp.MustCompile(`msg="slave serving" addr=(\S+)`)

// georepRun is a georep slave and master daemon replicating a volume pair.
type georepRun struct {
	slave, master *harness.Proc
	addr          string
}

// startGeorepSlave starts georep-slave for the slave volume and waits until
// it serves: in the fallback mode on root, a FUSE mount of the volume.
func startGeorepSlave(tb testing.TB, mode georepMode, slave *gluster.Volume, root string) *georepRun {
	tb.Helper()
	args := []string{"--listen", "127.0.0.1:0", "--insecure"}
	if mode.gluster {
		args = append(args, "--gluster-volume", slave.Name, "--volfile-server", gluster.Host)
	} else {
		args = append(args, "--root", root)
	}
	r := &georepRun{slave: startStoppable(tb, "georep-slave", args)}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if m := slaveAddrRE.FindStringSubmatch(r.slave.Log()); m != nil {
			r.addr = m[1]
			return r
		}
		if r.slave.Exited() || time.Now().After(deadline) {
			tb.Fatalf("georep-slave %s does not serve (exited: %v):\n%s", strings.Join(args, " "), r.slave.Exited(), tail(r.slave.Log(), 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startMaster starts the georep-master daemon: in the fallback mode on
// source, the FUSE mount of the master volume the workloads write through.
func (r *georepRun) startMaster(tb testing.TB, mode georepMode, k knobs, master *gluster.Volume, source, workDir string) {
	tb.Helper()
	args := []string{"--slave", r.addr, "--work-dir", workDir, "--insecure"}
	if mode.gluster {
		args = append(args, "--gluster-volume", master.Name, "--volfile-server", gluster.Host)
	} else {
		args = append(args, "--source", source)
	}
	args = append(args, k.georepArgs...)
	r.master = startStoppable(tb, "georep-master", args)
}

func (r *georepRun) diag() string {
	s := "georep-master log:\n" + tail(r.master.Log(), 20)
	return s + "\ngeorep-slave log:\n" + tail(r.slave.Log(), 10)
}

// startStoppable starts a georep daemon that is stopped with SIGTERM (then
// SIGKILL) when the benchmark ends, with the processes it started (rsync,
// FUSE clients) if they outlive it.
func startStoppable(tb testing.TB, bin string, args []string) *harness.Proc {
	tb.Helper()
	p := harness.StartProc(tb, nil, bin, args...) // its cleanup SIGKILLs it; this one runs first
	tb.Cleanup(func() {
		kids := harness.Descendants(p.Cmd.Process.Pid)
		if !p.Exited() {
			p.Cmd.Process.Signal(syscall.SIGTERM)
			if _, ok := p.Wait(30 * time.Second); !ok {
				tb.Logf("%s ignored SIGTERM for 30s: killed", bin)
				p.Kill()
			}
		}
		// Leftovers get SIGTERM first: a glusterfs client unmounts on it.
		for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
			deadline := time.Now().Add(10 * time.Second)
			for _, k := range kids {
				for harness.Alive(k) && time.Now().Before(deadline) {
					time.Sleep(50 * time.Millisecond)
				}
				if harness.Alive(k) {
					tb.Logf("%s left process %d running: %v", bin, k, sig)
					syscall.Kill(k, sig)
				}
			}
		}
		keepLog(tb, bin, p.Log())
	})
	return p
}

// keepLog writes a daemon's log to GEOREP_BENCH_LOGS/<test>.<bin>.log when
// that directory is set (for reading where the time went).
func keepLog(tb testing.TB, bin, log string) {
	dir := os.Getenv("GEOREP_BENCH_LOGS")
	if dir == "" {
		return
	}
	name := strings.NewReplacer("/", "_", " ", "_").Replace(tb.Name()) + "." + bin + ".log"
	if err := os.WriteFile(filepath.Join(dir, name), []byte(log), 0o644); err != nil {
		tb.Logf("GEOREP_BENCH_LOGS: %v", err)
	}
}
