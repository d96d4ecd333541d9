package integration

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/georep/georep/integration/harness"
)

// TestLiveRandom's bounds. None is a timing assertion: liveRandomConverge
// only stops a seed whose replica would never converge.
const (
	liveRandomSeeds    = 24  // seeds run by default (GEOREP_LIVE_SEEDS overrides)
	liveRandomBursts   = 4   // bursts per seed
	liveRandomOps      = 150 // changes per burst
	liveRandomGap      = 300 * time.Millisecond
	liveRandomConverge = 30 * time.Second
)

// liveRandomSeedList returns the seeds to run: GEOREP_LIVE_SEED=<n> replays
// one, GEOREP_LIVE_SEEDS=<count> runs seeds 1..count.
func liveRandomSeedList(t *testing.T) []uint64 {
	if s := os.Getenv("GEOREP_LIVE_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("GEOREP_LIVE_SEED=%q: %v", s, err)
		}
		return []uint64{n}
	}
	count := liveRandomSeeds
	if s := os.Getenv("GEOREP_LIVE_SEEDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("GEOREP_LIVE_SEEDS=%q: want a count of at least 1", s)
		}
		count = n
	}
	seeds := make([]uint64, count)
	for i := range seeds {
		seeds[i] = uint64(i + 1)
	}
	return seeds
}

var quotedPath = regexp.MustCompile(`^"((?:[^"\\]|\\.)*)"`)

// TestLiveRandom runs the daemon with its default change detector (the
// fanotify journal) while bursts of random changes hit the source
// (harness.Burst: renames of files and directories, swaps, renames over
// existing names, hardlinks across directories, chmod, chown, utime, user
// xattrs, truncates, appends, same-size same-mtime rewrites, type changes,
// deletes of subtrees), several bursts a short gap apart, and checks after
// each seed that the replica converges to the source: names, types,
// contents, modes, owners, mtimes, xattrs and hardlink groups. Each seed
// works in a directory of its own under one daemon. The changes of a seed
// are reproducible, their interleaving with the daemon is not: a failing
// seed is printed with how to replay it (GEOREP_LIVE_SEED=<n>);
// GEOREP_LIVE_SEEDS=<count> runs more seeds.
func TestLiveRandom(t *testing.T) {
	harness.RequireRoot(t, "the change journal (fanotify)")
	seeds := liveRandomSeedList(t)
	s := newSite(t)
	m := harness.StartMasterProc(t, nil, s.args("--change-interval", "1s", "--sync-xattrs", "--log-level", "debug", "--max-delete", "off")...)
	opts := harness.CompareOptions{Xattrs: true}
	if diffs, err := harness.WaitConverged(s.src, s.replica, opts, liveRandomConverge); err != nil || len(diffs) > 0 {
		t.Fatalf("the initial sync did not converge: %v %q", err, diffs)
	}
	failed := 0
	for _, seed := range seeds {
		ok := t.Run(fmt.Sprintf("seed-%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0x6e0e9))
			name := fmt.Sprintf("seed-%d", seed)
			src, dst := filepath.Join(s.src, name), filepath.Join(s.replica, name)
			if err := harness.PopulateSmall(src, rng); err != nil {
				t.Fatal(err)
			}
			if diffs, err := harness.WaitConverged(src, dst, opts, liveRandomConverge); err != nil || len(diffs) > 0 {
				t.Fatalf("the seed's starting tree did not converge: %v %q", err, diffs)
			}
			var ops []string
			for b := range liveRandomBursts {
				if b > 0 {
					time.Sleep(liveRandomGap)
				}
				log, err := harness.Burst(src, rng, liveRandomOps)
				for _, op := range log {
					ops = append(ops, fmt.Sprintf("burst %d: %s", b, op))
				}
				if err != nil {
					t.Fatalf("burst %d: %v", b, err)
				}
			}
			diffs, err := harness.WaitConverged(src, dst, opts, liveRandomConverge)
			if err == nil && len(diffs) == 0 {
				return
			}
			if m.Exited() {
				t.Errorf("the master daemon exited")
			}
			// The changes that named a path that differs.
			var related []string
			for _, d := range diffs {
				if mm := quotedPath.FindStringSubmatch(d); mm != nil {
					if p, err := strconv.Unquote(`"` + mm[1] + `"`); err == nil {
						name := regexp.MustCompile(`(^|[ /])` + regexp.QuoteMeta(filepath.Base(p)) + `($|[ /])`)
						for _, op := range ops {
							if name.MatchString(op) {
								related = append(related, op)
							}
						}
					}
				}
			}
			if len(diffs) > 30 {
				diffs = append(diffs[:30], fmt.Sprintf("... (%d differences)", len(diffs)))
			}
			logFile := filepath.Join(os.TempDir(), fmt.Sprintf("georep-live-random-seed-%d.log", seed))
			opsFile := filepath.Join(os.TempDir(), fmt.Sprintf("georep-live-random-seed-%d.ops", seed))
			os.WriteFile(logFile, []byte(m.Log()), 0o644)
			os.WriteFile(opsFile, []byte(strings.Join(ops, "\n")+"\n"), 0o644)
			t.Errorf("seed %d: the replica still differs from the source %s after the last burst (compare error: %v):\n%s\n"+
				"changes naming those paths:\n%s\nall changes in %s, the master's log in %s\n"+
				"replay with: GEOREP_LIVE_SEED=%d GEOREP_BIN=<dir> go test -count=1 -run TestLiveRandom ./integration/",
				seed, liveRandomConverge, err, strings.Join(diffs, "\n"), strings.Join(related, "\n"), opsFile, logFile, seed)
		})
		if !ok {
			failed++
		}
	}
	if failed > 0 {
		t.Logf("%d of %d seeds did not converge", failed, len(seeds))
	}
}
