package integration

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/georep/georep/integration/harness"
)

var (
	seedFlag = flag.Uint64("seed", 0, "replay one mutation seed (0: the built-in list)")
	rounds   = flag.Int("rounds", 4, "mutation rounds per seed")
)

type site struct {
	src, replica, work string
	slave              *harness.Slave
}

func newSite(t *testing.T) *site {
	t.Helper()
	harness.RequireRsync(t)
	s := &site{}
	s.src, s.replica, s.work = siteDirs(t)
	s.slave = harness.StartSlave(t, s.replica)
	return s
}

func (s *site) args(extra ...string) []string {
	return harness.MasterArgs(s.slave.Addr, s.src, s.work, extra...)
}

func (s *site) sync(t *testing.T, extra ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	harness.MustOneshot(t, ctx, s.args(extra...)...)
}

func (s *site) check(t *testing.T, opts harness.CompareOptions, context ...string) {
	t.Helper()
	diffs, err := harness.Compare(s.src, s.replica, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) > 0 {
		if len(diffs) > 30 {
			diffs = append(diffs[:30], "...")
		}
		t.Fatalf("replica differs from source (%s):\n%s", strings.Join(context, "; "), strings.Join(diffs, "\n"))
	}
}

// TestInitialSyncFidelity replicates a tree holding every file type, odd
// names, hardlinks, special mode bits, owners, times and xattrs.
func TestInitialSyncFidelity(t *testing.T) {
	s := newSite(t)
	if err := harness.Populate(s.src, rand.New(rand.NewPCG(1, 2))); err != nil {
		t.Fatal(err)
	}
	s.sync(t, "--sync-xattrs")
	s.check(t, harness.CompareOptions{Xattrs: true}, "after the initial sync")
	// A second pass with nothing changed converges at once and changes nothing.
	s.sync(t, "--sync-xattrs")
	s.check(t, harness.CompareOptions{Xattrs: true}, "after an idle pass")
}

// TestMutationRounds applies seeded random mutations and checks that every
// pass converges. A failing seed is printed; replay it with -seed.
func TestMutationRounds(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4, 5, 6}
	if *seedFlag != 0 {
		seeds = []uint64{*seedFlag}
	}
	if testing.Short() {
		seeds = seeds[:2]
	}
	for _, seed := range seeds {
		t.Run(fmtSeed(seed), func(t *testing.T) {
			s := newSite(t)
			rng := rand.New(rand.NewPCG(seed, seed*7919))
			if err := harness.Populate(s.src, rng); err != nil {
				t.Fatal(err)
			}
			s.sync(t, "--sync-xattrs")
			s.check(t, harness.CompareOptions{Xattrs: true}, "initial sync", "seed "+fmtSeed(seed))
			for round := range *rounds {
				ops, err := harness.Mutate(s.src, rng, 40)
				if err != nil {
					t.Fatalf("seed %d round %d: %v", seed, round, err)
				}
				s.sync(t, "--sync-xattrs")
				diffs, err := harness.Compare(s.src, s.replica, harness.CompareOptions{Xattrs: true})
				if err != nil {
					t.Fatal(err)
				}
				if len(diffs) > 0 {
					t.Fatalf("seed %d round %d: replica differs (replay with -seed %d):\n%s\nmutations:\n%s",
						seed, round, seed, strings.Join(diffs, "\n"), strings.Join(ops, "\n"))
				}
			}
		})
	}
}

// TestIgnoreDeletes keeps on the slave what the master deleted.
func TestIgnoreDeletes(t *testing.T) {
	s := newSite(t)
	os.WriteFile(filepath.Join(s.src, "keep"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(s.src, "gone"), []byte("y"), 0o644)
	s.sync(t)
	os.Remove(filepath.Join(s.src, "gone"))
	s.sync(t, "--ignore-deletes")
	if _, err := os.Stat(filepath.Join(s.replica, "gone")); err != nil {
		t.Fatalf("with ignore-deletes the slave lost a file the master deleted: %v", err)
	}
}

// TestPurgesSlaveOnlyNames removes names on the slave that the master does
// not have, and repairs a replica damaged behind georep's back.
func TestPurgesSlaveOnlyNames(t *testing.T) {
	s := newSite(t)
	os.MkdirAll(filepath.Join(s.src, "a/b"), 0o755)
	os.WriteFile(filepath.Join(s.src, "a/b/f"), []byte("data"), 0o644)
	s.sync(t)
	os.WriteFile(filepath.Join(s.replica, "a/stray"), []byte("not on master"), 0o644)
	os.RemoveAll(filepath.Join(s.replica, "a/b"))
	s.sync(t)
	s.check(t, harness.CompareOptions{}, "after damaging the replica")

	// A --oneshot pass that changes the slave leaves verify to the pass
	// that confirms it: the damage is found beside that pass's crawl, and
	// repaired all the same.
	os.WriteFile(filepath.Join(s.replica, "a/stray2"), []byte("not on master"), 0o644)
	os.RemoveAll(filepath.Join(s.replica, "a/b"))
	os.WriteFile(filepath.Join(s.src, "new"), []byte("new on the master"), 0o644)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	out := harness.MustOneshot(t, ctx, s.args("--log-level", "debug")...)
	s.check(t, harness.CompareOptions{}, "after damaging the replica while the master changed")
	if !strings.Contains(out, `compared with the catalog while the pass crawled" differences=2`) {
		t.Errorf("verify did not compare beside the confirming pass (want its 2 differences found there):\n%s", harness.Tail(out, 40))
	}
}

func fmtSeed(seed uint64) string { return fmt.Sprintf("seed-%d", seed) }
