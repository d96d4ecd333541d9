package integration

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/georep/georep/integration/harness"
)

// wanNetem is what TestWANLink puts on each end of its veth pair: 100 ms
// round trip, 1% loss.
const wanNetem = "delay 50ms loss 0.5%"

// wanDelay is the one-way delay of the delay proxy that stands in for netem
// where the kernel has none: 100 ms round trip, no loss.
const wanDelay = 50 * time.Millisecond

// wanProxyMiB is the default size of the big files of the delay-proxy
// variant of TestWANLink (GEOREP_WAN_MIB overrides it).
const wanProxyMiB = 50

// wanBound bounds each --oneshot run of TestWANLink.
const wanBound = 6 * time.Minute

// wanSizes returns the tree TestWANLink replicates: $GEOREP_WAN_MIB MiB of
// big files (default def) and 2,000 small files.
func wanSizes(t *testing.T, def int) (mib, small int) {
	t.Helper()
	mib, small = def, 2000
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

func (r wanResult) mibps() float64   { return float64(r.bytes) / (1 << 20) / r.full.Seconds() }
func (r wanResult) filesps() float64 { return float64(r.files) / r.full.Seconds() }

func (r wanResult) String() string {
	return fmt.Sprintf("full sync %s (%.1f MiB/s, %.0f files/s), mutation round %s",
		r.full.Round(time.Millisecond), r.mibps(), r.filesps(), r.mutate.Round(time.Millisecond))
}

// row is r as a line of the table wanReport logs.
func (r wanResult) row(link string) string {
	return fmt.Sprintf("| %-50s | %9.1f s | %7.1f | %7.0f | %8.2f s |", link, r.full.Seconds(), r.mibps(), r.filesps(), r.mutate.Seconds())
}

// wanReport logs what one run measured, as a table to copy into notes.
func wanReport(t *testing.T, mib, small int, loop, wan wanResult, link string) {
	t.Helper()
	t.Logf(`WAN figures (%s, %d CPUs, plaintext gRPC, default master settings):
tree: %d files, %.1f MiB (%d MiB in 5 MiB files, %d small files); mutation round: 100 Mutate operations and 1 MiB rewritten in 3 big files
| link                                               | full sync   |   MiB/s | files/s | mutation   |
|----------------------------------------------------|-------------|---------|---------|------------|
%s
%s
WAN / loopback: full sync %.1f×, mutation round %.1f×`,
		time.Now().Format(time.DateOnly), runtime.NumCPU(),
		loop.files, float64(loop.bytes)/(1<<20), mib, small,
		loop.row("loopback"), wan.row(link),
		wan.full.Seconds()/loop.full.Seconds(), wan.mutate.Seconds()/loop.mutate.Seconds())
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
// pair is nil) and returns how long it took; it fails the test unless it
// exits 0.
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
	if os.Getenv("GEOREP_WAN_LOG") != "" {
		t.Logf("master output:\n%s", out)
	}
	return d
}

// wanLink is where runWAN puts the slave: on loopback (both nil), in pair's
// slave namespace, or behind a delay proxy on loopback.
type wanLink struct {
	pair  *harness.NetnsPair
	delay time.Duration
}

// runWAN replicates a fresh tree over link: a full sync, then a mutation
// round, each a --oneshot master that must converge.
func runWAN(t *testing.T, link wanLink, seed uint64, mib, small int) wanResult {
	t.Helper()
	src := wanTree(t, seed, mib, small)
	var r wanResult
	r.files, r.bytes = treeSize(t, src)
	_, replica, work := roundDirs(t)
	t.Cleanup(func() { harness.KillProcsMentioning(work) })
	var slaveAddr string
	var proxy *harness.Proxy
	switch {
	case link.pair != nil:
		pair := link.pair
		slaveAddr = pair.SlaveIP + ":7100"
		bin, argv := pair.Cmd(pair.Slave, harness.Bin(t, "georep-slave"), "--listen", slaveAddr, "--root", replica, "--insecure")
		s := harness.StartProc(t, nil, bin, argv...)
		if !s.WaitLog("slave serving", 30*time.Second) {
			t.Fatalf("the slave in namespace %s did not start serving:\n%s", pair.Slave, lastLines(s.Log(), 20))
		}
	case link.delay > 0:
		proxy = harness.StartDelayProxy(t, harness.StartSlave(t, replica, "--insecure").Addr, link.delay)
		slaveAddr = proxy.Addr
	default:
		slaveAddr = harness.StartSlave(t, replica, "--insecure").Addr
	}
	args := harness.MasterArgs(slaveAddr, src, work)
	r.full = oneshotIn(t, link.pair, args)
	mustConverge(t, src, replica, harness.CompareOptions{}, "after the full sync")
	wanMutate(t, src, seed)
	r.mutate = oneshotIn(t, link.pair, args)
	mustConverge(t, src, replica, harness.CompareOptions{}, "after the mutation round")
	if proxy != nil {
		acc, _, up, down := proxy.Stats()
		t.Logf("delay proxy: %d connections, %.1f MiB up, %.1f MiB down", acc, float64(up)/(1<<20), float64(down)/(1<<20))
	}
	t.Logf("%s", r)
	return r
}

// proxyRTT measures the round trip of one byte through a delay proxy of
// one-way delay d to an echo server: the median of five.
func proxyRTT(t *testing.T, d time.Duration) time.Duration {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	echoed := make(chan struct{})
	go func() {
		defer close(echoed)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.Copy(c, c)
	}()
	p := harness.StartDelayProxy(t, ln.Addr().String(), d)
	c, err := net.DialTimeout("tcp", p.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var rtts []time.Duration
	b := []byte{0}
	for range 5 {
		start := time.Now()
		if _, err = c.Write(b); err == nil {
			_, err = io.ReadFull(c, b)
		}
		if err != nil {
			break
		}
		rtts = append(rtts, time.Since(start))
	}
	c.Close() // the echo server sees the FIN d later and ends
	<-echoed
	if err != nil {
		t.Fatalf("through the delay proxy: %v", err)
	}
	slices.Sort(rtts)
	return rtts[len(rtts)/2]
}

// TestWANLink replicates the same tree (GEOREP_WAN_MIB MiB in 5 MiB files,
// and 2,000 small files), then a mutation round, over loopback and over a
// WAN-like link, in one run, and logs the figures for the notes. Both must
// converge.
//
// The WAN link is two network namespaces joined by a veth pair with netem
// on both ends (100 ms round trip, 1% loss; the slave in one namespace, the
// master in the other), default 50 MiB. Where netem (or a network
// namespace) is unavailable, a delay proxy on loopback stands in: 50 ms
// each way, 100 ms round trip, no loss, and TCP's congestion control never
// sees the delay (see harness.StartDelayProxy), default wanProxyMiB MiB: its
// figures are what latency alone costs, an upper bound for a lossy link
// (with CUBIC or Reno, TCP at 1% loss and 100 ms RTT manages a few hundred
// KiB/s per connection; slow start on each new connection, such as every
// rsync tunnel's, costs round trips too; netem shows both).
// GEOREP_NETEM_OPTIONAL=1 also runs the namespaced path without delay or
// loss then. GEOREP_WAN_LOG=1 logs each master's output (where the time
// goes: session open, "changelog processed", verify until the next crawl).
func TestWANLink(t *testing.T) {
	harness.RequireRsync(t)
	harness.Bin(t, "georep-master")
	harness.Bin(t, "georep-slave")
	seed := faultSeedOr(4408)

	netem := false
	t.Run("netem", func(t *testing.T) {
		harness.RequireNetns(t)
		pair, ok := harness.NewNetnsPair(t, wanNetem)
		if !ok && os.Getenv("GEOREP_NETEM_OPTIONAL") == "" {
			t.Skip("netem is unavailable (kernel module sch_netem): the delay proxy stands in (GEOREP_NETEM_OPTIONAL=1 also runs the namespaced path without delay or loss)")
		}
		mib, small := wanSizes(t, 50)
		var loop, wan wanResult
		t.Run("loopback", func(t *testing.T) { loop = runWAN(t, wanLink{}, seed, mib, small) })
		t.Run("link", func(t *testing.T) { wan = runWAN(t, wanLink{pair: pair}, seed, mib, small) })
		if t.Failed() {
			return
		}
		if !ok {
			t.Log("netem unavailable: the namespaced link has no delay or loss (GEOREP_NETEM_OPTIONAL); no WAN figure from it")
			wanReport(t, mib, small, loop, wan, "veth between namespaces, no netem")
			return
		}
		netem = true
		wanReport(t, mib, small, loop, wan, "netem "+wanNetem+" both ends: 100 ms RTT, 1% loss")
	})
	if netem {
		return
	}
	t.Run("delay-proxy", func(t *testing.T) {
		rtt := proxyRTT(t, wanDelay)
		if rtt < 2*wanDelay {
			t.Fatalf("a round trip through the delay proxy took %s, want at least %s", rtt, 2*wanDelay)
		}
		t.Logf("NO NETEM: the WAN link is a TCP proxy on loopback delaying every chunk %s each way (round trip measured %s), NO LOSS, and TCP congestion control does not see the delay; a stand-in for netem %q, not the same thing",
			wanDelay, rtt.Round(100*time.Microsecond), wanNetem)
		mib, small := wanSizes(t, wanProxyMiB)
		var loop, wan wanResult
		t.Run("loopback", func(t *testing.T) { loop = runWAN(t, wanLink{}, seed, mib, small) })
		t.Run("link", func(t *testing.T) { wan = runWAN(t, wanLink{delay: wanDelay}, seed, mib, small) })
		if t.Failed() {
			return
		}
		wanReport(t, mib, small, loop, wan, fmt.Sprintf("delay proxy %s each way: 100 ms RTT, NO loss", wanDelay))
	})
}
