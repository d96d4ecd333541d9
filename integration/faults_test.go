package integration

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/georep/georep/integration/harness"
)

var faultSeed = flag.Uint64("fault-seed", 0, "seed of the kill points of the kill -9 tests (0: a fixed default)")

// Fault tests' bounds. None is a timing assertion: each only stops a test
// that would otherwise hang.
const (
	convergeTimeout = 90 * time.Second  // polling Compare until a daemon has caught up
	oneshotBound    = 150 * time.Second // a --oneshot run with --oneshot-timeout 120s
)

// loadTree is the tree the kill -9 tests interrupt: 3,000 small files in 30
// directories and 3 × 20 MiB (the initial sync takes a few seconds).
func loadTree(t *testing.T, seed uint64) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := harness.PopulateLoad(src, rand.New(rand.NewPCG(seed, 17)), 3000, 3, 20<<20); err != nil {
		t.Fatal(err)
	}
	return src
}

func faultSeedOr(def uint64) uint64 {
	if *faultSeed != 0 {
		return *faultSeed
	}
	return def
}

// mustConverge fails the test unless src and dst are equal.
func mustConverge(t *testing.T, src, dst string, opts harness.CompareOptions, what string) {
	t.Helper()
	diffs, err := harness.Compare(src, dst, opts)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if len(diffs) > 0 {
		if len(diffs) > 30 {
			diffs = append(diffs[:30], fmt.Sprintf("... (%d differences)", len(diffs)))
		}
		t.Fatalf("%s: replica differs from the source:\n%s", what, strings.Join(diffs, "\n"))
	}
}

// pollConverge polls Compare until the replica matches (a daemon is
// syncing) and fails the test with the last differences otherwise.
func pollConverge(t *testing.T, src, dst string, opts harness.CompareOptions, what string) {
	t.Helper()
	diffs, err := harness.WaitConverged(src, dst, opts, convergeTimeout)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if len(diffs) > 0 {
		if len(diffs) > 30 {
			diffs = append(diffs[:30], fmt.Sprintf("... (%d differences)", len(diffs)))
		}
		t.Fatalf("%s: replica still differs from the source after %s:\n%s", what, convergeTimeout, strings.Join(diffs, "\n"))
	}
}

// TestKillMasterMidSync SIGKILLs a syncing master daemon at seeded random
// points of its initial sync; a --oneshot run afterwards on the same work dir
// must converge. Replay a failing round with -fault-seed.
func TestKillMasterMidSync(t *testing.T) {
	harness.RequireRsync(t)
	seed := faultSeedOr(20240611)
	rng := rand.New(rand.NewPCG(seed, 1))
	src := loadTree(t, seed)
	const rounds = 4
	for round := range rounds {
		// Spread the kill points over the initial sync (a few seconds): round r
		// kills in [r, r+1) × 1.2 s, plus up to 0.4 s.
		delay := time.Duration(round)*1200*time.Millisecond + 100*time.Millisecond + time.Duration(rng.Int64N(int64(1100*time.Millisecond)))
		t.Run(fmt.Sprintf("round-%d", round), func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("kill point %s; replay with -fault-seed %d", delay, seed)
				}
			}()
			dir := t.TempDir()
			replica, work := filepath.Join(dir, "replica"), filepath.Join(dir, "work")
			if err := os.Mkdir(replica, 0o755); err != nil {
				t.Fatal(err)
			}
			slave := harness.StartSlave(t, replica)
			t.Cleanup(func() {
				if n := harness.KillProcsMentioning(work); n > 0 {
					t.Logf("killed %d processes the killed master left behind", n)
				}
			})
			m := harness.StartMasterProc(t, nil, harness.MasterArgs(slave.Addr, src, work, "--change-interval", "200ms")...)
			time.Sleep(delay)
			if m.Exited() {
				t.Fatalf("the master daemon exited on its own before the kill point %s", delay)
			}
			m.Kill()
			if diffs, err := harness.Compare(src, replica, harness.CompareOptions{}); err == nil {
				t.Logf("kill -9 at %s: %d differences pending", delay, len(diffs))
			}
			if left := harness.ProcsMentioning(work); len(left) > 0 {
				t.Logf("kill -9 at %s left %d child processes of the master running (pids %v)", delay, len(left), left)
			}
			ctx, cancel := context.WithTimeout(t.Context(), oneshotBound)
			defer cancel()
			out := harness.MustOneshot(t, ctx, harness.MasterArgs(slave.Addr, src, work, "--oneshot-timeout", "120s")...)
			// A child the killed master left behind may still be writing the
			// same bytes; let it finish before comparing.
			if left := harness.WaitNoProcsMentioning(work, 60*time.Second); len(left) > 0 {
				t.Errorf("processes of the killed master still running 60s later: %v", left)
			}
			mustConverge(t, src, replica, harness.CompareOptions{}, fmt.Sprintf("after kill -9 at %s and a --oneshot run", delay))
			if !strings.Contains(out, "converged") {
				t.Errorf("--oneshot exited 0 without saying it converged:\n%s", out)
			}
		})
	}
}

// TestKillSlaveMidSync SIGKILLs the slave at a seeded random point while a
// --oneshot master syncs, and restarts it on the same address: the master,
// retrying with backoff, must converge and exit 0.
func TestKillSlaveMidSync(t *testing.T) {
	harness.RequireRsync(t)
	seed := faultSeedOr(777)
	rng := rand.New(rand.NewPCG(seed, 2))
	src := loadTree(t, seed)
	const rounds = 3
	for round := range rounds {
		delay := time.Duration(round)*1500*time.Millisecond + 200*time.Millisecond + time.Duration(rng.Int64N(int64(1300*time.Millisecond)))
		down := time.Duration(rng.Int64N(int64(time.Second)))
		t.Run(fmt.Sprintf("round-%d", round), func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("slave killed at %s, down for %s; replay with -fault-seed %d", delay, down, seed)
				}
			}()
			dir := t.TempDir()
			replica, work := filepath.Join(dir, "replica"), filepath.Join(dir, "work")
			if err := os.Mkdir(replica, 0o755); err != nil {
				t.Fatal(err)
			}
			slave := harness.StartSlave(t, replica)
			t.Cleanup(func() { harness.KillProcsMentioning(dir) })
			m := harness.StartMasterProc(t, nil, harness.MasterArgs(slave.Addr, src, work, "--oneshot", "--oneshot-timeout", "120s")...)
			time.Sleep(delay)
			if m.Exited() {
				t.Logf("the master finished before the kill point %s; killing the slave anyway", delay)
			}
			slave.Kill()
			if diffs, err := harness.Compare(src, replica, harness.CompareOptions{}); err == nil {
				t.Logf("slave killed at %s: %d differences pending", delay, len(diffs))
			}
			time.Sleep(down)
			slave.Restart(t)
			code, ok := m.Wait(oneshotBound)
			if !ok {
				t.Fatalf("the --oneshot master did not end within %s after the slave came back", oneshotBound)
			}
			if code != 0 {
				t.Fatalf("the --oneshot master exited %d after the slave was killed at %s and restarted (it should retry until converged):\n%s",
					code, delay, lastLines(m.Log(), 30))
			}
			mustConverge(t, src, replica, harness.CompareOptions{}, fmt.Sprintf("after the slave was killed at %s", delay))
			t.Logf("the master retried %d times", strings.Count(m.Log(), "pass did not converge; retrying"))
			// And the next pass agrees at once.
			ctx, cancel := context.WithTimeout(t.Context(), oneshotBound)
			defer cancel()
			harness.MustOneshot(t, ctx, harness.MasterArgs(slave.Addr, src, work, "--oneshot-timeout", "120s")...)
			mustConverge(t, src, replica, harness.CompareOptions{}, "after a following --oneshot")
		})
	}
}

// TestSlaveUnreachable runs masters against an address where nothing
// listens.
func TestSlaveUnreachable(t *testing.T) {
	harness.RequireRsync(t)
	t.Parallel()
	t.Run("oneshot", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		src := filepath.Join(dir, "src")
		os.Mkdir(src, 0o755)
		addr := harness.FreeAddr(t)
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		code, out := harness.Oneshot(t, ctx, harness.MasterArgs(addr, src, filepath.Join(dir, "work"), "--oneshot-timeout", "3s")...)
		if ctx.Err() != nil {
			t.Fatalf("--oneshot --oneshot-timeout 3s against a dead address still ran after 60s:\n%s", lastLines(out, 20))
		}
		if code != 3 {
			t.Errorf("exit code %d, want 3 (not converged)", code)
		}
		last := lastLines(out, 1)
		for _, want := range []string{"slave " + addr + " unreachable", "connection refused", "oneshot-timeout 3s"} {
			if !strings.Contains(last, want) {
				t.Errorf("the final message does not say %q:\n%s", want, last)
			}
		}
	})
	t.Run("daemon-retries-then-syncs", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		src, replica := filepath.Join(dir, "src"), filepath.Join(dir, "replica")
		os.Mkdir(src, 0o755)
		os.Mkdir(replica, 0o755)
		if err := harness.Populate(src, rand.New(rand.NewPCG(5, 5))); err != nil {
			t.Fatal(err)
		}
		addr := harness.FreeAddr(t)
		m := harness.StartMasterProc(t, nil, harness.MasterArgs(addr, src, filepath.Join(dir, "work"), "--change-interval", "200ms")...)
		// The first pass waits up to 15 s for the slave to be healthy; two
		// failed passes show the backoff growing.
		retry := regexp.MustCompile(`msg="pass failed; retrying" err=.*retry_in=(\S+)`)
		deadline := time.Now().Add(90 * time.Second)
		var matches [][]string
		for time.Now().Before(deadline) && !m.Exited() {
			matches = retry.FindAllStringSubmatch(m.Log(), -1)
			if len(matches) >= 2 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if len(matches) < 2 {
			t.Fatalf("the daemon did not log two %q lines (exited: %v):\n%s", "pass failed; retrying", m.Exited(), lastLines(m.Log(), 20))
		}
		if !strings.Contains(matches[0][0], addr) || !strings.Contains(matches[0][0], "connection refused") {
			t.Errorf("the retry line does not name the slave %s and why it failed:\n%s", addr, matches[0][0])
		}
		if a, b := parseDur(t, matches[0][1]), parseDur(t, matches[1][1]); b <= a {
			t.Errorf("no backoff: retry_in %s then %s", a, b)
		}
		harness.StartSlaveAt(t, replica, addr)
		pollConverge(t, src, replica, harness.CompareOptions{}, "once the slave is started on "+addr)
		if m.Exited() {
			t.Fatalf("the daemon exited:\n%s", lastLines(m.Log(), 20))
		}
	})
}

func parseDur(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(strings.Trim(s, `"`))
	if err != nil {
		t.Fatalf("retry_in=%s: %v", s, err)
	}
	return d
}

// TestSecondMasterRefused: a slave serves one master volume.
func TestSecondMasterRefused(t *testing.T) {
	harness.RequireRsync(t)
	t.Parallel()
	type setup struct {
		dir, srcA, srcB, replica, workA, workB string
		slave                                  *harness.Slave
		a                                      *harness.Proc
		volA                                   string
	}
	// start brings up a slave and master A as a daemon, synced.
	start := func(t *testing.T, slaveArgs ...string) *setup {
		dir := t.TempDir()
		s := &setup{dir: dir, srcA: filepath.Join(dir, "srcA"), srcB: filepath.Join(dir, "srcB"),
			replica: filepath.Join(dir, "replica"), workA: filepath.Join(dir, "workA"), workB: filepath.Join(dir, "workB")}
		for _, d := range []string{s.srcA, s.srcB, s.replica} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		os.WriteFile(filepath.Join(s.srcA, "from-A"), []byte("A"), 0o644)
		os.WriteFile(filepath.Join(s.srcB, "from-B"), []byte("B"), 0o644)
		s.slave = harness.StartSlave(t, s.replica, append([]string{"--lease", "2s"}, slaveArgs...)...)
		s.a = harness.StartMasterProc(t, nil, harness.MasterArgs(s.slave.Addr, s.srcA, s.workA, "--change-interval", "200ms")...)
		pollConverge(t, s.srcA, s.replica, harness.CompareOptions{}, "master A's initial sync")
		b, err := os.ReadFile(filepath.Join(s.workA, "volume-id"))
		if err != nil {
			t.Fatal(err)
		}
		s.volA = strings.TrimSpace(string(b))
		return s
	}
	runB := func(t *testing.T, s *setup) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		return harness.Oneshot(t, ctx, harness.MasterArgs(s.slave.Addr, s.srcB, s.workB, "--oneshot-timeout", "3s")...)
	}

	t.Run("while-A-holds-and-after", func(t *testing.T) {
		t.Parallel()
		s := start(t)
		code, out := runB(t, s)
		last := lastLines(out, 1)
		if code == 0 {
			t.Fatalf("master B was accepted while master A holds the replica:\n%s", out)
		}
		if !strings.Contains(last, s.volA) {
			t.Errorf("B's error does not name master A's volume %s:\n%s", s.volA, last)
		}
		// A holds the session (its lease is being renewed): that is what B
		// should be told.
		if !strings.Contains(last, "held by master volume "+s.volA) {
			t.Errorf("while master A holds the session, B's error does not say the replica is held by master volume %s:\n%s", s.volA, last)
		}
		mustConverge(t, s.srcA, s.replica, harness.CompareOptions{}, "after B was refused")

		// Once A's lease (2 s here) has run out, the binding is what refuses B.
		s.a.Kill()
		for range 10 {
			code, out = runB(t, s)
			last = lastLines(out, 1)
			if code == 0 {
				t.Fatalf("master B was accepted after master A stopped, though the replica belongs to A's volume:\n%s", out)
			}
			if !strings.Contains(last, "held by") {
				break
			}
		}
		for _, want := range []string{s.volA, "--accept-new-master"} {
			if !strings.Contains(last, want) {
				t.Errorf("after A stopped, B's error does not mention %q:\n%s", want, last)
			}
		}
		mustConverge(t, s.srcA, s.replica, harness.CompareOptions{}, "after B was refused again")
	})

	// With --accept-new-master a different volume may take over, but not
	// while A holds the session; and that refusal must not hand the replica
	// to B.
	t.Run("accept-new-master-refused-does-not-rebind", func(t *testing.T) {
		t.Parallel()
		s := start(t, "--accept-new-master")
		code, out := runB(t, s)
		last := lastLines(out, 1)
		if code == 0 {
			t.Fatalf("master B was accepted while master A holds the session:\n%s", out)
		}
		if !strings.Contains(last, "held by master volume "+s.volA) {
			t.Errorf("B's error does not say the replica is held by master volume %s:\n%s", s.volA, last)
		}
		b, err := os.ReadFile(filepath.Join(s.replica, ".georep", "master-volume-id"))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(b)); got != s.volA {
			t.Errorf("the refused master B rebound the replica: .georep/master-volume-id is %s, want A's %s", got, s.volA)
		}
		// The consequence: A stops, the slave restarts without
		// --accept-new-master, and A, the master actually synced from, is refused.
		s.a.Kill()
		s.slave.Stop()
		harness.StartSlaveAt(t, s.replica, s.slave.Addr)
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		code, out = harness.Oneshot(t, ctx, harness.MasterArgs(s.slave.Addr, s.srcA, s.workA, "--oneshot-timeout", "5s")...)
		if code != 0 {
			t.Errorf("master A, whose volume the replica was synced from, is refused after a refused master B tried:\n%s", lastLines(out, 1))
		}
	})
}

// TestDaemonKeepsSyncing mutates the source under a running daemon in
// rounds; each round must reach the replica. Replay with -seed.
func TestDaemonKeepsSyncing(t *testing.T) {
	seed := uint64(42)
	if *seedFlag != 0 {
		seed = *seedFlag
	}
	s := newSite(t)
	t.Parallel()
	rng := rand.New(rand.NewPCG(seed, seed*31))
	if err := harness.Populate(s.src, rng); err != nil {
		t.Fatal(err)
	}
	harness.StartMasterProc(t, nil, s.args("--change-interval", "200ms", "--sync-xattrs")...)
	opts := harness.CompareOptions{Xattrs: true}
	pollConverge(t, s.src, s.replica, opts, fmt.Sprintf("initial sync (seed %d)", seed))
	for round := range 3 {
		ops, err := harness.Mutate(s.src, rng, 40)
		if err != nil {
			t.Fatalf("seed %d round %d: %v", seed, round, err)
		}
		diffs, err := harness.WaitConverged(s.src, s.replica, opts, convergeTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if len(diffs) > 0 {
			t.Fatalf("seed %d round %d: the daemon did not bring the replica in line within %s (replay with -seed %d):\n%s\nmutations:\n%s",
				seed, round, convergeTimeout, seed, strings.Join(diffs, "\n"), strings.Join(ops, "\n"))
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
