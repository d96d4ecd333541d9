package gluster_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/integration/gluster"
	"github.com/georep/georep/integration/harness"
	"github.com/georep/georep/master/glusterfs"
)

// masterSite is a GlusterFS master volume (changelog on, 1 s rollover)
// mounted for the test to write to, and a plain-directory slave.
type masterSite struct {
	vol       *gluster.Volume
	mnt       string // FUSE mount of the master volume: the tree as users see it
	replica   string // a plain-directory slave's replica
	slaveVol  *gluster.Volume
	work      string
	slaveAddr string
	certs     harness.Certs // mutual TLS between the two daemons
}

func newMasterSite(t *testing.T, opts gluster.VolumeOpts) *masterSite {
	t.Helper()
	s := newMaster(t, opts)
	s.replica = filepath.Join(t.TempDir(), "replica")
	if err := os.Mkdir(s.replica, 0o755); err != nil {
		t.Fatal(err)
	}
	s.slaveAddr = harness.StartSlaveTLS(t, s.replica, s.certs).Addr
	return s
}

func newMaster(t *testing.T, opts gluster.VolumeOpts) *masterSite {
	t.Helper()
	harness.RequireRsync(t)
	c := gluster.Start(t)
	opts.Changelog, opts.RolloverTime = true, time.Second
	s := &masterSite{vol: c.Volume(t, "gmaster", opts), work: filepath.Join(t.TempDir(), "work"),
		certs: harness.MakeCerts(t, t.TempDir())}
	s.mnt = s.vol.Mount(t)
	return s
}

// newGlusterPair is a GlusterFS master volume replicated to a GlusterFS
// slave volume, which georep-slave mounts itself.
func newGlusterPair(t *testing.T, opts, slaveOpts gluster.VolumeOpts) *masterSite {
	t.Helper()
	s := newMaster(t, opts)
	s.slaveVol = gluster.Start(t).Volume(t, "gslave", slaveOpts)
	s.slaveAddr = harness.FreeAddr(t)
	slave := harness.StartProc(t, nil, "georep-slave", append([]string{"--listen", s.slaveAddr,
		"--gluster-volume", s.slaveVol.Name, "--volfile-server", gluster.Host, "--state-dir", filepath.Join(t.TempDir(), "state")},
		s.certs.SlaveArgs()...)...)
	t.Cleanup(func() {
		slave.Cmd.Process.Signal(syscall.SIGTERM) // it unmounts what it mounted
		slave.Wait(60 * time.Second)
	})
	if !slave.WaitLog("slave serving", 90*time.Second) {
		t.Fatalf("georep-slave did not start:\n%s", slave.Log())
	}
	return s
}

// view returns the replica as a reader sees it: the plain directory, or a
// fresh mount of the slave volume.
func (s *masterSite) view(t *testing.T) string {
	t.Helper()
	if s.slaveVol != nil {
		return s.slaveVol.Mount(t)
	}
	return s.replica
}

func (s *masterSite) args(extra ...string) []string {
	args := append([]string{"--gluster-volume", s.vol.Name, "--volfile-server", gluster.Host,
		"--slave", s.slaveAddr, "--work-dir", s.work}, s.certs.MasterArgs()...)
	return append(args, extra...)
}

func (s *masterSite) oneshot(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	return harness.MustOneshot(t, ctx, s.args()...)
}

// check compares the replica with the master volume, as seen through a
// fresh mount: a directory's mtime merges those of its copy on every brick,
// and a client that wrote recently may still show a cached one.
func (s *masterSite) check(t *testing.T, what string) {
	t.Helper()
	diffs, err := harness.Compare(s.vol.Mount(t), s.view(t), harness.CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) > 0 {
		t.Fatalf("%s: replica differs from the master volume:\n%s", what, strings.Join(head(diffs, 30), "\n"))
	}
}

// checkGFIDs checks that every replica inode carries the gfid GlusterFS
// gave the master's inode (read from the brick that holds it).
func (s *masterSite) checkGFIDs(t *testing.T, bricks ...gluster.Brick) {
	t.Helper()
	if len(bricks) == 0 {
		bricks = s.vol.Bricks
	}
	n := 0
	view := s.view(t)
	err := filepath.WalkDir(view, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(view, p)
		if rel == ".georep" {
			return filepath.SkipDir
		}
		if rel == ".georep.lock" {
			return nil // the slave's directory lock
		}
		if rel == "." {
			return nil
		}
		want := ""
		for _, b := range bricks {
			var st unix.Stat_t
			if unix.Lstat(filepath.Join(b.Path, rel), &st) != nil || (st.Mode&unix.S_IFMT == unix.S_IFREG && st.Mode&0o7777 == unix.S_ISVTX && st.Size == 0) {
				continue // not on this brick, or a DHT link file
			}
			if g, err := b.GFID(rel); err == nil {
				want = g
				break
			}
		}
		got := ""
		if s.slaveVol != nil {
			for _, b := range s.slaveVol.Bricks {
				var st unix.Stat_t
				if unix.Lstat(filepath.Join(b.Path, rel), &st) != nil || (st.Mode&unix.S_IFMT == unix.S_IFREG && st.Mode&0o7777 == unix.S_ISVTX && st.Size == 0) {
					continue
				}
				if g, err := b.GFID(rel); err == nil {
					got = g
					break
				}
			}
		} else {
			buf := make([]byte, 16)
			m, err := unix.Lgetxattr(p, "trusted.georep.gfid", buf)
			if err != nil || m != 16 {
				return fmt.Errorf("%s: replica gfid: %v", rel, err)
			}
			got = fmt.Sprintf("%x-%x-%x-%x-%x", buf[0:4], buf[4:6], buf[6:8], buf[8:10], buf[10:16])
		}
		if got != want {
			return fmt.Errorf("%s: gfid %s on the replica, %s on the master volume", rel, got, want)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no replica inode checked")
	}
}

// startDaemon starts georep-master without --oneshot; it is stopped with
// SIGTERM (it unmounts its aux-gfid mount) when the test ends.
func (s *masterSite) startDaemon(t *testing.T, extra ...string) *harness.Proc {
	t.Helper()
	m := harness.StartMasterProc(t, nil, s.args(append([]string{"--change-interval", "500ms"}, extra...)...)...)
	t.Cleanup(func() {
		m.Cmd.Process.Signal(syscall.SIGTERM)
		if _, ok := m.Wait(60 * time.Second); !ok {
			t.Errorf("georep-master ignored SIGTERM for 60 s")
		}
	})
	return m
}

func head(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("... and %d more", len(s)-n))
	}
	return s
}

// TestGlusterMasterToPlainDir replicates a 2-brick distribute volume (one
// worker per brick) to a plain directory.
func TestGlusterMasterToPlainDir(t *testing.T) {
	newMasterSite(t, gluster.VolumeOpts{Bricks: 2}).initialThenLive(t)
}

// TestGlusterMasterToGlusterSlave replicates a 2-brick distribute volume to
// a GlusterFS volume: same rounds, and the slave volume's inodes carry the
// master volume's gfids (trusted.gfid on the bricks of both).
func TestGlusterMasterToGlusterSlave(t *testing.T) {
	newGlusterPair(t, gluster.VolumeOpts{Bricks: 2}, gluster.VolumeOpts{}).initialThenLive(t)
}

// initialThenLive is the scenario both slave kinds go through: an initial
// sync of every file type, two mutation rounds synced with --oneshot (hybrid
// crawls of the bricks), then the daemon replicating two rounds of
// mutations live from the bricks' changelogs.
//
// GEOREP_E2E_SEED=N seeds the tree and the mutations with N instead of 7
// (the seed is logged, to replay a failure).
func (s *masterSite) initialThenLive(t *testing.T) {
	seed := uint64(7)
	if v := os.Getenv("GEOREP_E2E_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("GEOREP_E2E_SEED=%q: not a number", v)
		}
		seed = n
	}
	t.Logf("seed %d (GEOREP_E2E_SEED)", seed)
	s.keepTrees(t)
	rng := rand.New(rand.NewPCG(seed, 11))
	if err := harness.Populate(s.mnt, rng); err != nil {
		t.Fatal(err)
	}
	out := s.oneshot(t)
	if !strings.Contains(out, `bricks=2`) {
		t.Errorf("expected one worker per brick:\n%s", out)
	}
	s.check(t, "initial sync")
	s.checkGFIDs(t)
	for round := range 2 {
		ops, err := harness.Mutate(s.mnt, rng, 30)
		if err != nil {
			t.Fatal(err)
		}
		s.oneshot(t)
		diffs, err := harness.Compare(s.vol.Mount(t), s.view(t), harness.CompareOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(diffs) > 0 {
			t.Fatalf("round %d: replica differs:\n%s\nmutations:\n%s", round, strings.Join(head(diffs, 30), "\n"), strings.Join(ops, "\n"))
		}
	}
	s.checkGFIDs(t)

	// Live: the daemon picks changes up from the bricks' changelogs.
	s.startDaemon(t)
	for round := range 2 {
		ops, err := harness.Mutate(s.mnt, rng, 30)
		if err != nil {
			t.Fatal(err)
		}
		diffs, err := harness.WaitConverged(s.vol.Mount(t), s.view(t), harness.CompareOptions{}, 90*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(diffs) > 0 {
			t.Fatalf("live round %d: replica did not converge:\n%s\nmutations:\n%s", round, strings.Join(head(diffs, 30), "\n"), strings.Join(ops, "\n"))
		}
	}
	s.checkGFIDs(t)

	// On the idle volume a checkpoint completes: stime follows the
	// bricks' (empty) rollovers.
	ctl := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(t.Context(), harness.Bin(t, "georepctl"), append([]string{"--work-dir", s.work}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("georepctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	ctl("checkpoint", "set", "now")
	ctl("checkpoint", "wait", "--timeout", "60s")
	if st := ctl("status"); !strings.Contains(st, "Changelog") || !strings.Contains(st, "Active") {
		t.Errorf("status after the checkpoint:\n%s", st)
	}
}

// TestGlusterReplicaTakeover replicates a replica-2 volume: one worker per
// brick, one Active, one Passive. The Active brick's process is killed
// mid-replication: its worker steps down, the other takes over, and
// changes made meanwhile reach the slave.
func TestGlusterReplicaTakeover(t *testing.T) {
	s := newMasterSite(t, gluster.VolumeOpts{Replica: 2})
	s.vol.Set(t, "cluster.quorum-type", "none") // writes go on with one brick of two
	rng := rand.New(rand.NewPCG(3, 5))
	if err := harness.Populate(s.mnt, rng); err != nil {
		t.Fatal(err)
	}
	m := s.startDaemon(t)
	if diffs, err := harness.WaitConverged(s.vol.Mount(t), s.replica, harness.CompareOptions{}, 2*time.Minute); err != nil || len(diffs) > 0 {
		t.Fatalf("initial sync did not converge (%v):\n%s", err, strings.Join(head(diffs, 30), "\n"))
	}
	active := activeBrick(t, m, "")
	passive := s.vol.Bricks[0]
	if passive.Host+":"+passive.Path == active {
		passive = s.vol.Bricks[1]
	}
	if !strings.Contains(m.Log(), "Passive") {
		t.Fatalf("no worker Passive:\n%s", m.Log())
	}

	// Kill the Active brick's process.
	st, err := glusterfs.GetVolumeStatus(t.Context(), "", "", s.vol.Name)
	if err != nil {
		t.Fatal(err)
	}
	pid := st[active].Pid
	if pid <= 0 {
		t.Fatalf("no pid for brick %s in %+v", active, st)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed brick %s (pid %d)", active, pid)
	ops, err := harness.Mutate(s.mnt, rng, 30)
	if err != nil {
		t.Fatal(err)
	}
	if got := activeBrick(t, m, active); got != passive.Host+":"+passive.Path {
		t.Fatalf("Active after the kill: %s, want %s", got, passive.Host+":"+passive.Path)
	}
	diffs, err := harness.WaitConverged(s.vol.Mount(t), s.replica, harness.CompareOptions{}, 2*time.Minute)
	if err != nil || len(diffs) > 0 {
		t.Fatalf("after the takeover the replica did not converge (%v):\n%s\nmutations:\n%s", err, strings.Join(head(diffs, 30), "\n"), strings.Join(ops, "\n"))
	}
	s.checkGFIDs(t, passive) // the killed brick holds the tree as it was
}

// activeBrick waits until the master's log names an Active brick other
// than not, and returns it (host:path).
func activeBrick(t *testing.T, m *harness.Proc, not string) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		lines := strings.Split(m.Log(), "\n")
		for i := len(lines) - 1; i >= 0; i-- {
			if !strings.Contains(lines[i], `msg="worker Active"`) {
				continue
			}
			_, b, _ := strings.Cut(lines[i], "brick=")
			b, _, _ = strings.Cut(b, " ")
			if b != not {
				return b
			}
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no worker became Active (other than %q):\n%s", not, m.Log())
	return ""
}
