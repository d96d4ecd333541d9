package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/georep/georep/integration/harness"
)

// delayOneWay is the one-way delay of the delay line the tests below put
// between master and slave: 100 ms round trip, a WAN's, where the master
// keeps many batches, listings and data calls in flight at once (the
// Apply stream, Walk, WriteFiles beside the entry ops), so that what the
// replica sees depends on the order the slave keeps, not on each call
// waiting for the one before.
const delayOneWay = 50 * time.Millisecond

// TestMutationRoundsDelayed is TestMutationRounds through a delay line
// (three seeds, three rounds each, fewer mutations, entry batches of 16 so
// that a pass takes many: bounded in time): every pass converges, with
// every op pipelined. Seeds 7, 11 and 12 are the ones that once lost the
// content of a hardlinked file written through one name while another of
// its names was replaced (the scoped crawl after a whole walk ignored a
// change of ctime alone); seed 9's tree leaves no source.
func TestMutationRoundsDelayed(t *testing.T) {
	seeds := []uint64{7, 11, 12}
	if *seedFlag != 0 {
		seeds = []uint64{*seedFlag}
	}
	if testing.Short() {
		seeds = seeds[:1]
	}
	for _, seed := range seeds {
		t.Run(fmtSeed(seed), func(t *testing.T) {
			s := newSite(t)
			proxy := harness.StartDelayProxy(t, s.slave.Addr, delayOneWay)
			sync := func() {
				t.Helper()
				ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
				defer cancel()
				harness.MustOneshot(t, ctx, harness.MasterArgs(proxy.Addr, s.src, s.work, "--sync-xattrs", "--entry-batch", "16")...)
			}
			rng := rand.New(rand.NewPCG(seed, seed*7919))
			if err := harness.Populate(s.src, rng); err != nil {
				t.Fatal(err)
			}
			sync()
			s.check(t, harness.CompareOptions{Xattrs: true}, "initial sync through the delay line", "seed "+fmtSeed(seed))
			for round := range 3 {
				ops, err := harness.Mutate(s.src, rng, 30)
				if err != nil {
					t.Fatalf("seed %d round %d: %v", seed, round, err)
				}
				sync()
				diffs, err := harness.Compare(s.src, s.replica, harness.CompareOptions{Xattrs: true})
				if err != nil {
					t.Fatal(err)
				}
				if len(diffs) > 0 {
					t.Fatalf("seed %d round %d through the delay line: replica differs (replay with -seed %d -run %s):\n%s\nmutations:\n%s",
						seed, round, seed, t.Name(), strings.Join(diffs, "\n"), strings.Join(ops, "\n"))
				}
			}
		})
	}
}

// TestKillMasterMidSyncDelayed SIGKILLs a master daemon syncing through a
// delay line, while batches, listings and data calls are in flight, at
// seeded points of its initial sync; a --oneshot run through the same line
// afterwards must converge. Replay with -fault-seed.
func TestKillMasterMidSyncDelayed(t *testing.T) {
	harness.RequireRsync(t)
	seed := faultSeedOr(20261204)
	rng := rand.New(rand.NewPCG(seed, 3))
	src := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := harness.PopulateLoad(src, rand.New(rand.NewPCG(seed, 17)), 2000, 2, 8<<20); err != nil {
		t.Fatal(err)
	}
	const rounds = 3
	for round := range rounds {
		// Spread over the first seconds: the session, the first batches,
		// the data calls and the rsync runs.
		delay := time.Duration(round)*700*time.Millisecond + 300*time.Millisecond + time.Duration(rng.Int64N(int64(700*time.Millisecond)))
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
			proxy := harness.StartDelayProxy(t, slave.Addr, delayOneWay)
			t.Cleanup(func() { harness.KillProcsMentioning(work) })
			m := harness.StartMasterProc(t, nil, harness.MasterArgs(proxy.Addr, src, work, "--change-interval", "200ms", "--entry-batch", "200")...)
			time.Sleep(delay)
			if m.Exited() {
				t.Fatalf("the master daemon exited on its own before the kill point %s:\n%s", delay, lastLines(m.Log(), 20))
			}
			m.Kill()
			if diffs, err := harness.Compare(src, replica, harness.CompareOptions{}); err == nil {
				t.Logf("kill -9 at %s: %d differences pending", delay, len(diffs))
			}
			ctx, cancel := context.WithTimeout(t.Context(), oneshotBound)
			defer cancel()
			out := harness.MustOneshot(t, ctx, harness.MasterArgs(proxy.Addr, src, work, "--oneshot-timeout", "120s")...)
			if left := harness.WaitNoProcsMentioning(work, 60*time.Second); len(left) > 0 {
				t.Errorf("processes of the killed master still running 60s later: %v", left)
			}
			mustConverge(t, src, replica, harness.CompareOptions{}, fmt.Sprintf("after kill -9 at %s through the delay line and a --oneshot run", delay))
			if !strings.Contains(out, "converged") {
				t.Errorf("--oneshot exited 0 without saying it converged:\n%s", out)
			}
		})
	}
}
