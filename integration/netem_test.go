package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/georep/georep/integration/harness"
)

// wanNetem is what TestWANLink puts on each end of its veth pair: 100 ms
// round trip, 1% loss.
const wanNetem = "delay 50ms loss 0.5%"

// wanBound bounds each --oneshot run of TestWANLink.
const wanBound = 6 * time.Minute

// wanSizes returns the tree TestWANLink replicates: $GEOREP_WAN_MIB MiB of
// big files (default 50) and 2,000 small files.
func wanSizes(t *testing.T) (mib, small int) {
	t.Helper()
	mib, small = 50, 2000
	if s := os.Getenv("GEOREP_WAN_MIB"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("GEOREP_WAN_MIB=%q: want a positive number of MiB", s)
		}
		mib = n
	}
	return mib, small
}

// wanTree fills a fresh source from seed (the same seed gives the same tree):
// mib MiB in 5 MiB files and small files below 4 KiB.
func wanTree(t *testing.T, seed uint64, mib, small int) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 11))
	if err := harness.PopulateLoad(src, rng, small, 0, 0); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(src, "big")
	if err := os.Mkdir(big, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := harness.PopulateLoad(big, rng, 0, mib/5, 5<<20); err != nil {
		t.Fatal(err)
	}
	if rest := mib % 5; rest > 0 {
		b := make([]byte, rest<<20)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if err := os.WriteFile(filepath.Join(big, "rest"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

// wanMutate is the mutation round: Mutate's operations and 1 MiB rewritten
// in the middle of each of the first three big files (rsync's delta).
func wanMutate(t *testing.T, src string, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 12))
	if _, err := harness.Mutate(src, rng, 100); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1<<20)
	for i := range 3 {
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		f, err := os.OpenFile(filepath.Join(src, "big", fmt.Sprintf("big%d", i)), os.O_WRONLY, 0)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.WriteAt(b, 2<<20)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// wanResult is what one link measured.
type wanResult struct {
	full, mutate time.Duration
	bytes        int64
	files        int
}

func (r wanResult) String() string {
	return fmt.Sprintf("full sync %s (%.1f MiB/s, %.0f files/s), mutation round %s",
		r.full.Round(time.Millisecond), float64(r.bytes)/(1<<20)/r.full.Seconds(), float64(r.files)/r.full.Seconds(), r.mutate.Round(time.Millisecond))
}

// treeSize counts the regular files and their bytes under root.
func treeSize(t *testing.T, root string) (files int, bytes int64) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		files++
		bytes += fi.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files, bytes
}

// oneshotIn runs a --oneshot master (in pair's master namespace unless
// pair is nil) and
// returns how long it took; it fails the test unless it exits 0.
func oneshotIn(t *testing.T, pair *harness.NetnsPair, args []string) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wanBound+time.Minute)
	defer cancel()
	args = append(args, "--oneshot", "--oneshot-timeout", wanBound.String())
	start := time.Now()
	var code int
	var out string
	if pair == nil {
		code, out = harness.Run(t, ctx, nil, "georep-master", args...)
	} else {
		bin, argv := pair.Cmd(pair.Master, append([]string{harness.Bin(t, "georep-master")}, args...)...)
		code, out = harness.Run(t, ctx, nil, bin, argv...)
	}
	d := time.Since(start)
	if code != 0 {
		t.Fatalf("georep-master --oneshot exited %d after %s:\n%s", code, d.Round(time.Millisecond), lastLines(out, 30))
	}
	return d
}

// TestWANLink replicates the same tree (GEOREP_WAN_MIB MiB in 5 MiB files,
// default 50, and 2,000 small files), then a mutation round, twice in one
// run: over loopback, and between two network namespaces joined by a veth
// pair with netem on both ends (100 ms round trip, 1% loss), the slave in
// one and the master in the other. Both must converge; the figures are
// logged for the notes.
func TestWANLink(t *testing.T) {
	harness.RequireRsync(t)
	harness.RequireNetns(t)
	pair, ok := harness.NewNetnsPair(t, wanNetem)
	if !ok {
		if os.Getenv("GEOREP_NETEM_OPTIONAL") == "" {
			t.Skip("netem is unavailable (kernel module sch_netem): no WAN link to measure (GEOREP_NETEM_OPTIONAL=1 runs the namespaced path without delay or loss)")
		}
		t.Log("netem unavailable: the namespaced link has no delay or loss (GEOREP_NETEM_OPTIONAL)")
	}
	mib, small := wanSizes(t)
	seed := faultSeedOr(4408)

	run := func(t *testing.T, pair *harness.NetnsPair) wanResult {
		t.Helper()
		src := wanTree(t, seed, mib, small)
		var r wanResult
		r.files, r.bytes = treeSize(t, src)
		_, replica, work := roundDirs(t)
		t.Cleanup(func() { harness.KillProcsMentioning(work) })
		var slaveAddr string
		if pair == nil {
			slaveAddr = harness.StartSlave(t, replica).Addr
		} else {
			slaveAddr = pair.SlaveIP + ":7100"
			bin, argv := pair.Cmd(pair.Slave, harness.Bin(t, "georep-slave"), "--listen", slaveAddr, "--root", replica, "--insecure")
			s := harness.StartProc(t, nil, bin, argv...)
			if !s.WaitLog("slave serving", 30*time.Second) {
				t.Fatalf("the slave in namespace %s did not start serving:\n%s", pair.Slave, lastLines(s.Log(), 20))
			}
		}
		args := harness.MasterArgs(slaveAddr, src, work)
		r.full = oneshotIn(t, pair, args)
		mustConverge(t, src, replica, harness.CompareOptions{}, "after the full sync")
		wanMutate(t, src, seed)
		r.mutate = oneshotIn(t, pair, args)
		mustConverge(t, src, replica, harness.CompareOptions{}, "after the mutation round")
		return r
	}
	var loop, wan wanResult
	t.Run("loopback", func(t *testing.T) { loop = run(t, nil) })
	t.Run("netem", func(t *testing.T) { wan = run(t, pair) })
	link := "100 ms RTT, 1% loss (netem " + wanNetem + " on both ends)"
	if !ok {
		link = "veth between namespaces, no netem"
	}
	t.Logf("tree: %d files, %.1f MiB (%d MiB in 5 MiB files, %d small files); mutation round: 100 Mutate operations and 1 MiB rewritten in 3 big files",
		loop.files, float64(loop.bytes)/(1<<20), mib, small)
	t.Logf("loopback: %s", loop)
	t.Logf("%s: %s", link, wan)
	if !strings.Contains(link, "no netem") && loop.full > 0 {
		t.Logf("WAN / loopback: full sync %.1f×, mutation round %.1f×", wan.full.Seconds()/loop.full.Seconds(), wan.mutate.Seconds()/loop.mutate.Seconds())
	}
}
