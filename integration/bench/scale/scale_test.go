package scale

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/georep/georep/integration/harness"
)

// result is what one size measured.
type result struct {
	files, dirs int64
	ran         bool
	skipped     string // why the size was not run ("" when it was)
	failed      string // the step that failed ("" when none did)
	gen         time.Duration
	rsync       [2]run
	master      [2]run
	slaveHWM    [2]int64  // the slave's VmHWM at the end of each pass, bytes
	catalog     [2]int64  // catalog.db after each pass: its file size, bytes
	catalogDisk [2]int64  // catalog.db after each pass: the blocks it occupies, bytes
	work        [2]int64  // the whole work dir after each pass: allocated blocks, bytes
	load        [2]string // the 1-minute load average at the start and the end
}

// BenchmarkScale: georep's first pass and no-change pass, and rsync -a's, on
// trees of 100k and 1M files (GEOREP_BENCH_SCALE), with peak RSS and the
// master's state on disk. See the package doc.
func BenchmarkScale(b *testing.B) {
	harness.RequireRsync(b)
	cfg, err := loadConfig()
	if err != nil {
		b.Fatal(err)
	}
	masterBin := harness.Bin(b, "georep-master")
	harness.Bin(b, "georep-slave")
	if err := os.MkdirAll(cfg.base, 0o755); err != nil {
		b.Fatal(err)
	}
	dir, err := os.MkdirTemp(cfg.base, "georep-bench-scale-")
	if err != nil {
		b.Fatal(err)
	}
	out := cfg.out
	if out == "" {
		out = filepath.Join(dir, "bench-scale.md")
	}
	free, inodes, fsType, err := diskFree(dir)
	if err != nil {
		b.Fatal(err)
	}
	var names []string
	for _, n := range cfg.sizes {
		names = append(names, label(n))
	}
	fmt.Printf("\nbench-scale: %s files (%s per directory, %s each) in %s (%s, %s and %s inodes free); peak RSS limit %s\n",
		strings.Join(names, ", "), group(cfg.perDir), sizeName(cfg.fileSize), dir, fsName(fsType), gb(int64(free)), group(int64(inodes)), mb(cfg.maxRSS))

	var results []*result
	for _, n := range cfg.sizes {
		r := &result{files: n, dirs: (n + cfg.perDir - 1) / cfg.perDir}
		results = append(results, r)
		b.Run(label(n), func(b *testing.B) { runSize(b, cfg, dir, masterBin, r) })
	}

	table := markdown(cfg, results, fsName(fsType))
	fmt.Printf("\n%s", table)
	if err := os.WriteFile(out, []byte(table), 0o644); err != nil {
		b.Errorf("write the table: %v", err)
	} else {
		fmt.Printf("\ntable written to %s\n", out)
	}
	if cfg.keep {
		return
	}
	// What is left of the run's directory: the table, when it is there.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if p := filepath.Join(dir, e.Name()); p != out {
			removeAll(p)
		}
	}
	if filepath.Dir(out) != dir {
		os.Remove(dir)
	}
}

// runSize measures one size into r.
func runSize(b *testing.B, cfg config, root, masterBin string, r *result) {
	name := label(r.files)
	nd := needFor(r.files, cfg.perDir, cfg.fileSize)
	why, err := fits(root, nd)
	if err != nil {
		b.Fatal(err)
	}
	if why != "" {
		r.skipped = why
		fmt.Printf("\n%s: skipped: %s\n", name, why)
		b.Skipf("%s: %s", name, why)
	}
	r.ran = true
	step := "tree"
	defer func() {
		if b.Failed() && r.failed == "" {
			r.failed = step
		}
	}()
	dir := filepath.Join(root, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	// Registered first, so it runs after the slaves' cleanups.
	b.Cleanup(func() {
		if cfg.keep {
			fmt.Printf("  kept %s (GEOREP_BENCH_KEEP=1)\n", dir)
			return
		}
		removeAll(dir)
	})
	src := filepath.Join(dir, "src")

	r.load[0] = loadavg()
	fmt.Printf("\n%s: %s files in %s directories, about %s and %s inodes on disk at the peak; load average %s\n",
		name, group(r.files), group(r.dirs), gb(int64(nd.bytes)), group(int64(nd.inodes)), r.load[0])
	defer func() {
		r.load[1] = loadavg()
		fmt.Printf("  %s done; load average %s\n", name, r.load[1])
	}()
	start := time.Now()
	if err := makeTree(src, r.files, cfg.perDir, cfg.fileSize); err != nil {
		b.Fatalf("make the tree: %v", err)
	}
	syncDisk()
	r.gen = time.Since(start)
	fmt.Printf("  tree written in %s (%.0f files/s)\n", r.gen.Round(100*time.Millisecond), rate(r.files, r.gen))

	// rsync -a into a fresh target, then again with nothing changed.
	dst := filepath.Join(dir, "rsync-dst")
	rsyncLog := &bytes.Buffer{}
	for pass := range 2 {
		step = fmt.Sprintf("rsync pass %d", pass+1)
		syncDisk()
		cmd := exec.Command("rsync", "-a", src+"/", dst+"/")
		res, err := measure(cmd, rsyncLog, nil, cfg.maxRSS, "rsync "+passName(pass))
		if err != nil {
			b.Fatalf("%s: %v", step, err)
		}
		r.rsync[pass] = res
		if res.killed != "" || res.code != 0 {
			b.Fatalf("%s: exit %d %s\n%s", step, res.code, res.killed, harness.Tail(rsyncLog.String(), 20))
		}
		fmt.Printf("  rsync -a, %-15s %9s %10.0f files/s   peak RSS %s\n", passName(pass)+":", secs(res.dur), rate(r.files, res.dur), mb(res.maxRSS))
	}
	step = "remove rsync's target"
	removeAll(dst)

	// georep: a fresh slave for each pass, one --oneshot master.
	replica := filepath.Join(dir, "replica")
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(replica, 0o755); err != nil {
		b.Fatal(err)
	}
	for pass := range 2 {
		step = fmt.Sprintf("georep pass %d", pass+1)
		syncDisk()
		slave := harness.StartSlave(b, replica)
		ctx, cancel := withTimeout(cfg.passLimit + 10*time.Minute)
		args := harness.MasterArgs(slave.Addr, src, work, "--oneshot", "--oneshot-timeout", cfg.passLimit.String())
		cmd := exec.CommandContext(ctx, masterBin, args...)
		cmd.WaitDelay = 10 * time.Second
		logPath := filepath.Join(dir, fmt.Sprintf("master-pass%d.log", pass+1))
		logf, err := os.Create(logPath)
		if err != nil {
			b.Fatal(err)
		}
		res, err := measure(cmd, logf, masterEcho, cfg.maxRSS, "georep "+passName(pass))
		logf.Close()
		cancel()
		r.slaveHWM[pass] = procMem(slave.Pid()).hwm
		slave.Stop()
		r.master[pass] = res
		if err != nil {
			b.Fatalf("%s: %v", step, err)
		}
		if res.killed != "" || res.code != 0 {
			log, _ := os.ReadFile(logPath)
			b.Fatalf("%s: georep-master --oneshot exit %d %s\n%s", step, res.code, res.killed, harness.Tail(string(log), 40))
		}
		if fi, err := os.Stat(filepath.Join(work, "catalog.db")); err == nil {
			r.catalog[pass] = fi.Size()
			r.catalogDisk[pass], _, _ = du(filepath.Join(work, "catalog.db"))
		}
		r.work[pass], _, _ = du(work)
		fmt.Printf("  georep,   %-15s %9s %10.0f files/s   peak RSS master %s (itself: %s; at its largest sample %s anonymous, %s file-mapped), slave %s\n",
			passName(pass)+":", secs(res.dur), rate(r.files, res.dur), mb(res.maxRSS), mb(res.selfHWM), mb(res.peakAnon), mb(res.peakFile), mb(r.slaveHWM[pass]))
		fmt.Printf("            catalog.db %s on disk (%.0f B/file; file size %s), work dir %s on disk\n",
			mb(r.catalogDisk[pass]), float64(r.catalogDisk[pass])/float64(r.files), mb(r.catalog[pass]), mb(r.work[pass]))
		if pass == 0 {
			step = "compare the replica"
			start := time.Now()
			d, err := harness.QuickCompare(src, replica)
			if err != nil || d != "" {
				b.Fatalf("the replica differs from the source after the first pass: %v %s", err, d)
			}
			fmt.Printf("  replica matches the source (names, types, modes, sizes, times; checked in %s)\n", secs(time.Since(start)))
		}
	}
	step = ""
	b.ReportMetric(rate(r.files, r.master[0].dur), "georep-first-files/s")
	b.ReportMetric(rate(r.files, r.master[1].dur), "georep-nochange-files/s")
	b.ReportMetric(float64(r.master[0].maxRSS)/1e6, "master-first-MB")
	b.ReportMetric(float64(r.master[1].maxRSS)/1e6, "master-nochange-MB")
	b.ReportMetric(float64(r.catalogDisk[1])/float64(r.files), "catalog-B/file")
}

// markdown is the table of every size, for the README's Performance
// section.
func markdown(cfg config, results []*result, fs string) string {
	var w strings.Builder
	rev := ""
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		rev = ", georep " + strings.TrimSpace(string(out))
	}
	fmt.Fprintf(&w, "`make bench-scale`, %s: %s per directory, files of %s; %d cores, %s memory; %s%s. MB = 10^6 bytes.\n\n",
		time.Now().Format("2006-01-02"), group(cfg.perDir), sizeName(cfg.fileSize), runtime.NumCPU(), gb(memTotal()), fs, rev)
	fmt.Fprintf(&w, "| files | tool | first pass | no-change pass | peak RSS, first pass | peak RSS, no-change pass | master's state on disk |\n")
	fmt.Fprintf(&w, "|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		n := group(r.files)
		switch {
		case r.skipped != "":
			fmt.Fprintf(&w, "| %s | — | skipped: %s | | | | |\n", n, r.skipped)
			continue
		case !r.ran:
			continue
		}
		cell := func(x run) string {
			if x.dur == 0 {
				return "—"
			}
			return fmt.Sprintf("%s (%s files/s)", secs(x.dur), group(int64(rate(r.files, x.dur)+0.5)))
		}
		fmt.Fprintf(&w, "| %s | `rsync -a` | %s | %s | %s | %s | — |\n", n,
			cell(r.rsync[0]), cell(r.rsync[1]), mb(r.rsync[0].maxRSS), mb(r.rsync[1].maxRSS))
		state := "—"
		if r.work[0] > 0 {
			last := 0
			if r.work[1] > 0 {
				last = 1
			}
			state = fmt.Sprintf("catalog.db %s (%.0f B/file), work dir %s", mb(r.catalogDisk[last]), float64(r.catalogDisk[last])/float64(r.files), mb(r.work[last]))
		}
		rss := func(pass int) string {
			if r.master[pass].maxRSS == 0 {
				return "—"
			}
			return fmt.Sprintf("master %s, slave %s", mb(r.master[pass].maxRSS), mb(r.slaveHWM[pass]))
		}
		fmt.Fprintf(&w, "| %s | georep | %s | %s | %s | %s | %s |\n", n,
			cell(r.master[0]), cell(r.master[1]), rss(0), rss(1), state)
		if r.failed != "" {
			fmt.Fprintf(&w, "| %s | | failed at: %s | | | | |\n", n, r.failed)
		}
	}
	var loads []string
	for _, r := range results {
		if r.load[0] != "" {
			loads = append(loads, fmt.Sprintf("%s: %s at the start, %s at the end", group(r.files),
				strings.Fields(r.load[0])[0], strings.Fields(r.load[1] + " ?")[0]))
		}
	}
	if len(loads) > 0 {
		fmt.Fprintf(&w, "\nLoad average (1 min; the machine may be shared): %s.\n", strings.Join(loads, "; "))
	}
	fmt.Fprintf(&w, "\nPeak RSS: rsync and georep-master from wait4's rusage, the largest of the process and the children it waited for "+
		"(rsync: the largest of sender, receiver and generator, not their sum); georep-slave its own VmHWM, a fresh slave for each pass. "+
		"catalog.db and the work dir (catalog, changelogs, state files): the blocks they occupy on disk after the last pass "+
		"(the catalog is a Pebble directory; its blocks, not its files' sizes, are counted).\n")
	return w.String()
}

func passName(pass int) string {
	if pass == 0 {
		return "first pass"
	}
	return "no-change pass"
}

func rate(files int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(files) / d.Seconds()
}

func secs(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

func sizeName(n int64) string {
	switch {
	case n == 0:
		return "0 bytes (empty)"
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// syncDisk writes dirty pages out, so that one step's writeback does not
// land in the next one's time.
func syncDisk() { exec.Command("sync").Run() }

// memTotal is MemTotal from /proc/meminfo in bytes.
func memTotal() int64 {
	b, _ := os.ReadFile("/proc/meminfo")
	return kbField(string(b), "MemTotal:")
}

// loadavg is the first three fields of /proc/loadavg: the machine is
// shared, and a busy neighbour shows in the times.
func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
