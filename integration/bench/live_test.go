package bench

// The daemon benchmarks: what a running georep-master costs and how fast it
// follows changes, next to what running rsync for each change (or each poll)
// would cost, measured in the same run on the same tree.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/integration/harness"
)

// detectors are the change detectors the daemon benchmarks run with, one
// sub-benchmark each; "" passes no --change-detector flag (the default).
var detectors = []string{"changelog", "xsync"}

var changeInterval = flag.String("change-interval", "", "--change-interval of the daemon in the daemon benchmarks (\"\": the daemon's default)")

func detectorName(det string) string {
	if det == "" {
		return "default"
	}
	return det
}

func daemonArgs(det string) []string {
	var args []string
	if *changeInterval != "" {
		args = append(args, "--change-interval", *changeInterval)
	}
	if det != "" {
		args = append(args, "--change-detector", det)
	}
	return args
}

// live is a slave and a master daemon replicating src.
type live struct {
	src, replica string
	slave        *harness.Slave
	master       *harness.Proc
}

// startLive starts a slave and a master daemon on the tree src (in dir) and
// waits up to timeout for the initial sync: until QuickCompare finds nothing,
// then, when full is set, until Compare finds nothing either.
func startLive(b *testing.B, det, dir, src string, timeout time.Duration, full bool) *live {
	b.Helper()
	l := &live{src: src, replica: filepath.Join(dir, "replica")}
	if err := os.Mkdir(l.replica, 0o755); err != nil {
		b.Fatal(err)
	}
	l.slave = harness.StartSlave(b, l.replica)
	start := time.Now()
	l.master = harness.StartMasterProc(b, nil, harness.MasterArgs(l.slave.Addr, src, filepath.Join(dir, "work"), daemonArgs(det)...)...)
	deadline := start.Add(timeout)
	for {
		d, err := harness.QuickCompare(src, l.replica)
		if err != nil {
			b.Fatal(err)
		}
		if d == "" {
			break
		}
		if l.master.Exited() || time.Now().After(deadline) {
			b.Fatalf("initial sync not done after %s (master exited: %v): %s\nmaster log:\n%s",
				time.Since(start).Round(time.Second), l.master.Exited(), d, logTail(l.master.Log(), 30))
		}
		time.Sleep(250 * time.Millisecond)
	}
	if full {
		l.mustConverge(b, time.Until(deadline)+time.Minute, "initial sync")
	}
	b.Logf("initial sync of %s: %s", filepath.Base(src), time.Since(start).Round(100*time.Millisecond))
	return l
}

func (l *live) mustConverge(b *testing.B, timeout time.Duration, what string) {
	b.Helper()
	diffs, err := harness.WaitConverged(l.src, l.replica, harness.CompareOptions{}, timeout)
	if err != nil || len(diffs) > 0 {
		if len(diffs) > 20 {
			diffs = append(diffs[:20], fmt.Sprintf("... (%d differences)", len(diffs)))
		}
		b.Fatalf("%s: the replica differs after %s: %v\n%s\nmaster log:\n%s", what, timeout, err, strings.Join(diffs, "\n"), logTail(l.master.Log(), 30))
	}
}

func logTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// rsyncRun runs rsync with args (bounded by 30 minutes) and returns its wall
// time and CPU time (user and system of rsync and of the processes it waited
// for: its receiver).
func rsyncRun(b *testing.B, args ...string) (wall, cpu time.Duration) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "rsync", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	wall = time.Since(start)
	if err != nil {
		b.Fatalf("rsync %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return wall, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

func randBytes(rng *rand.Rand, n int) []byte {
	p := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := rng.Uint64()
		for k := 0; k < 8 && i+k < n; k++ {
			p[i+k] = byte(v >> (8 * k))
		}
	}
	return p
}

// percentile is the nearest-rank q-quantile of ds.
func percentile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[max(0, int(math.Ceil(q*float64(len(s))))-1)]
}

// BenchmarkLatency: a daemon synced and idle on 1,000 × 4 KiB files; 50
// times, after a random pause below 1 s, one new 4 KiB file is written and
// the time until the replica holds it, byte for byte, is measured (polled
// every millisecond). Side by side: one `rsync -a --delete` shipping that
// same change on the same tree, what rsync from cron pays per change.
func BenchmarkLatency(b *testing.B) {
	harness.RequireRsync(b)
	for _, det := range detectors {
		b.Run(detectorName(det), func(b *testing.B) { benchLatency(b, det) })
	}
}

func benchLatency(b *testing.B, det string) {
	const files, writes = 1000, 50
	const perWrite = 2 * time.Minute // bound, not expectation
	dir := b.TempDir()
	src, rdst := filepath.Join(dir, "src"), filepath.Join(dir, "rsync-dst")
	makeTree(b, src, files, 4<<10)
	l := startLive(b, det, dir, src, 10*time.Minute, true)
	rsyncRun(b, "-a", src+"/", rdst+"/")
	time.Sleep(2 * time.Second) // idle

	rng := rand.New(rand.NewPCG(3, 3))
	var georep, rsync []time.Duration
	for i := range writes {
		time.Sleep(time.Duration(rng.IntN(1000)) * time.Millisecond)
		rel := filepath.Join(fmt.Sprintf("d%03d", i%(files/200)), fmt.Sprintf("latency-%02d", i))
		content := randBytes(rng, 4<<10)
		start := time.Now()
		if err := os.WriteFile(filepath.Join(src, rel), content, 0o644); err != nil {
			b.Fatal(err)
		}
		for {
			if got, err := os.ReadFile(filepath.Join(l.replica, rel)); err == nil && bytes.Equal(got, content) {
				georep = append(georep, time.Since(start))
				break
			}
			if time.Since(start) > perWrite {
				b.Fatalf("write %d (%s) not on the replica after %s\nmaster log:\n%s", i, rel, perWrite, logTail(l.master.Log(), 30))
			}
			time.Sleep(time.Millisecond)
		}
		wall, _ := rsyncRun(b, "-a", "--delete", src+"/", rdst+"/")
		rsync = append(rsync, wall)
	}
	l.mustConverge(b, time.Minute, "after the latency writes")

	g50, g99, r50, r99 := percentile(georep, .5), percentile(georep, .99), percentile(rsync, .5), percentile(rsync, .99)
	b.ReportMetric(g50.Seconds(), "georep-p50-s")
	b.ReportMetric(g99.Seconds(), "georep-p99-s")
	b.ReportMetric(r50.Seconds(), "rsync-p50-s")
	b.ReportMetric(r99.Seconds(), "rsync-p99-s")
	fmt.Printf("\n%-44s %10s %10s   (%d writes of 4 KiB, one at a time)\n", fmt.Sprintf("latency, 1,000 x 4 KiB (%s)", detectorName(det)), "p50 s", "p99 s", writes)
	fmt.Printf("%-44s %10.3f %10.3f\n", "  georep daemon, write to on the replica", g50.Seconds(), g99.Seconds())
	fmt.Printf("%-44s %10.3f %10.3f\n", "  rsync -a --delete, one run per change", r50.Seconds(), r99.Seconds())
}

// BenchmarkMixedOps: a daemon synced and idle on 10,000 × 4 KiB files in 50
// directories; then 1,500 operations on distinct files in a seeded order (500
// renames, into any directory, 500 deletes and 500 overwrites with new
// bytes), and the time from the end of the operations until the replica
// equals the source: a cheap check of what they touched polled every
// millisecond, then Compare of the whole trees. Side by side: `rsync -a
// --delete` of the same change onto a copy of the tree made before it.
func BenchmarkMixedOps(b *testing.B) {
	harness.RequireRsync(b)
	for _, det := range detectors {
		b.Run(detectorName(det), func(b *testing.B) { benchMixedOps(b, det) })
	}
}

func benchMixedOps(b *testing.B, det string) {
	const files, dirs, each = 10000, 50, 500
	const bound = 10 * time.Minute // bound, not expectation
	dir := b.TempDir()
	src, rdst := filepath.Join(dir, "src"), filepath.Join(dir, "rsync-dst")
	makeTree(b, src, files, 4<<10)
	l := startLive(b, det, dir, src, 15*time.Minute, true)
	rsyncRun(b, "-a", src+"/", rdst+"/") // the pre-change copy
	time.Sleep(2 * time.Second)          // idle

	rng := rand.New(rand.NewPCG(5, 5))
	path := func(i int) string { return filepath.Join(fmt.Sprintf("d%03d", i/200), fmt.Sprintf("f%05d", i)) }
	perm := rng.Perm(files)
	type op struct {
		kind     byte // 'r'ename, 'd'elete, 'o'verwrite
		from, to string
		content  []byte
	}
	ops := make([]op, 0, 3*each)
	for _, i := range perm[:each] {
		ops = append(ops, op{kind: 'r', from: path(i), to: filepath.Join(fmt.Sprintf("d%03d", rng.IntN(dirs)), fmt.Sprintf("r%05d", i))})
	}
	for _, i := range perm[each : 2*each] {
		ops = append(ops, op{kind: 'd', from: path(i)})
	}
	for _, i := range perm[2*each : 3*each] {
		ops = append(ops, op{kind: 'o', from: path(i), content: randBytes(rng, 4<<10)})
	}
	rng.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
	for _, o := range ops {
		var err error
		switch o.kind {
		case 'r':
			err = os.Rename(filepath.Join(src, o.from), filepath.Join(src, o.to))
		case 'd':
			err = os.Remove(filepath.Join(src, o.from))
		case 'o':
			err = os.WriteFile(filepath.Join(src, o.from), o.content, 0o644)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()

	// What the cheap check expects, from the source as the operations left it.
	mtimes := map[string]unix.Timespec{}
	stat := func(p string) unix.Stat_t {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			b.Fatal(err)
		}
		return st
	}
	for d := range dirs {
		rel := fmt.Sprintf("d%03d", d)
		mtimes[rel] = stat(filepath.Join(src, rel)).Mtim
	}
	for _, o := range ops {
		if o.kind == 'r' {
			mtimes[o.to] = stat(filepath.Join(src, o.to)).Mtim
		}
	}
	applied := func() bool {
		for _, o := range ops {
			var st unix.Stat_t
			err := unix.Lstat(filepath.Join(l.replica, o.from), &st)
			switch o.kind {
			case 'r', 'd':
				if !errors.Is(err, fs.ErrNotExist) {
					return false
				}
			case 'o':
				if got, err := os.ReadFile(filepath.Join(l.replica, o.from)); err != nil || !bytes.Equal(got, o.content) {
					return false
				}
			}
		}
		for rel, want := range mtimes {
			var st unix.Stat_t
			if unix.Lstat(filepath.Join(l.replica, rel), &st) != nil || st.Mtim != want {
				return false
			}
		}
		return true
	}
	for !applied() {
		if time.Since(start) > bound {
			b.Fatalf("the operations were not all on the replica after %s\nmaster log:\n%s", bound, logTail(l.master.Log(), 30))
		}
		time.Sleep(time.Millisecond)
	}
	took := time.Since(start)
	if diffs, err := harness.Compare(src, l.replica, harness.CompareOptions{}); err != nil || len(diffs) > 0 {
		b.Logf("the cheap check passed after %s but Compare did not (%d differences, e.g. %q): polling Compare", took, len(diffs), diffs[:min(1, len(diffs))])
		l.mustConverge(b, bound, "after the mixed operations")
		took = time.Since(start)
	}

	rsyncWall, rsyncCPU := rsyncRun(b, "-a", "--delete", src+"/", rdst+"/")
	if diffs, err := harness.Compare(src, rdst, harness.CompareOptions{}); err != nil || len(diffs) > 0 {
		b.Fatalf("rsync's copy differs: %v %q", err, diffs[:min(5, len(diffs))])
	}
	b.ReportMetric(took.Seconds(), "georep-s")
	b.ReportMetric(rsyncWall.Seconds(), "rsync-s")
	b.ReportMetric(rsyncCPU.Seconds(), "rsync-cpu-s")
	fmt.Printf("\n%-44s %10s   (500 renames, 500 deletes, 500 overwrites)\n", fmt.Sprintf("mixed ops on 10,000 x 4 KiB (%s)", detectorName(det)), "seconds")
	fmt.Printf("%-44s %10.3f\n", "  georep daemon, end of ops to converged", took.Seconds())
	fmt.Printf("%-44s %10.3f   (CPU %.3f s)\n", "  rsync -a --delete of the same change", rsyncWall.Seconds(), rsyncCPU.Seconds())
}

// BenchmarkIdleCPU: a daemon synced on 200,000 empty files in 1,000
// directories (once the replica matches, the master is given up to 10
// minutes to settle under a fifth of a CPU), then idle for 10 s: the CPU time
// the master and the slave used meanwhile (from /proc/<pid>/stat, their
// waited-for children included), and how many hybrid crawls ran in it
// (started in it, or under way when it opened). Side by side:
// the CPU time of one `rsync -a --delete` over the same unchanged tree, what
// polling with rsync pays per poll.
func BenchmarkIdleCPU(b *testing.B) {
	harness.RequireRsync(b)
	for _, det := range detectors {
		b.Run(detectorName(det), func(b *testing.B) { benchIdleCPU(b, det) })
	}
}

func benchIdleCPU(b *testing.B, det string) {
	const files, dirs = 200000, 1000
	const idle, settleBound = 10 * time.Second, 10 * time.Minute
	dir := b.TempDir()
	src, rdst := filepath.Join(dir, "src"), filepath.Join(dir, "rsync-dst")
	start := time.Now()
	makeEmptyTree(b, src, files, dirs)
	b.Logf("created %d empty files in %d directories in %s", files, dirs, time.Since(start).Round(100*time.Millisecond))
	rsyncRun(b, "-a", src+"/", rdst+"/") // rsync's copy, before the daemon starts
	// 0-byte files: QuickCompare (names, types, modes, owners, sizes, mtimes)
	// is a full check, and keeps memory low on this many files.
	l := startLive(b, det, dir, src, 30*time.Minute, false)

	cpu := func(pid int) harness.CPUTimes {
		c, err := harness.ProcCPU(pid)
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	mpid, spid := l.master.Cmd.Process.Pid, l.slave.Pid()
	// The replica matching does not make the master idle: it may still be
	// recording what it synced. Wait until it uses less than a fifth of a
	// CPU over a second (bounded), so that the window measures idling.
	matched := time.Now()
	for prev := cpu(mpid); time.Since(matched) < settleBound; {
		time.Sleep(time.Second)
		c := cpu(mpid)
		if c.Self()-prev.Self() < 200*time.Millisecond {
			break
		}
		prev = c
	}
	busy := time.Since(matched)
	b.Logf("the master was busy for %s after the replica matched", busy.Round(time.Second))

	m0, s0, log0 := cpu(mpid), cpu(spid), l.master.Log()
	time.Sleep(idle)
	m1, s1, log := cpu(mpid), cpu(spid), l.master.Log()
	if l.master.Exited() {
		b.Fatalf("the master exited:\n%s", logTail(log, 30))
	}
	crawls := strings.Count(log[len(log0):], "hybrid crawl started")
	if strings.Count(log0, "hybrid crawl started") > strings.Count(log0, "hybrid crawl done") {
		crawls++ // one was under way when the window opened
	}
	masterCPU := m1.Self() + m1.Children() - m0.Self() - m0.Children()
	slaveCPU := s1.Self() + s1.Children() - s0.Self() - s0.Children()
	if d, err := harness.QuickCompare(src, l.replica); err != nil || d != "" {
		b.Fatalf("the replica differs after the idle window: %v %s", err, d)
	}

	rsyncWall, rsyncCPU := rsyncRun(b, "-a", "--delete", src+"/", rdst+"/")
	b.ReportMetric(masterCPU.Seconds(), "georep-master-cpu-s")
	b.ReportMetric(slaveCPU.Seconds(), "georep-slave-cpu-s")
	b.ReportMetric(float64(crawls), "georep-crawls")
	b.ReportMetric(float64(m1.RSS)/(1<<20), "georep-master-rss-MiB")
	b.ReportMetric(busy.Seconds(), "georep-busy-after-sync-s")
	b.ReportMetric(rsyncCPU.Seconds(), "rsync-cpu-s/poll")
	b.ReportMetric(rsyncWall.Seconds(), "rsync-s/poll")
	fmt.Printf("\n%-44s %10s %8s   (%s window; the master was busy for %s after the replica matched)\n",
		fmt.Sprintf("idle on 200,000 empty files (%s)", detectorName(det)), "CPU s", "crawls", idle, busy.Round(time.Second))
	fmt.Printf("%-44s %10.2f %8d   (RSS %.0f MiB)\n", "  georep-master, idle window", masterCPU.Seconds(), crawls, float64(m1.RSS)/(1<<20))
	fmt.Printf("%-44s %10.2f\n", "  georep-slave, idle window", slaveCPU.Seconds())
	fmt.Printf("%-44s %10.2f %8s   (%.2f s wall)\n", "  rsync -a --delete, one poll", rsyncCPU.Seconds(), "-", rsyncWall.Seconds())
}

// makeEmptyTree creates files empty files spread evenly over dirs
// directories under root, with a few goroutines.
func makeEmptyTree(b *testing.B, root string, files, dirs int) {
	b.Helper()
	per := (files + dirs - 1) / dirs
	work := make(chan int)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for d := range work {
				dp := filepath.Join(root, fmt.Sprintf("d%04d", d))
				if err := os.MkdirAll(dp, 0o755); err != nil {
					errs <- err
					return
				}
				for i := d * per; i < min(files, (d+1)*per); i++ {
					p := filepath.Join(dp, fmt.Sprintf("e%06d", i))
					fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
					if err != nil {
						errs <- fmt.Errorf("create %s: %w", p, err)
						return
					}
					unix.Close(fd)
				}
			}
		})
	}
	for d := range dirs {
		select {
		case work <- d:
		case err := <-errs:
			close(work)
			wg.Wait()
			b.Fatal(err)
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
}
