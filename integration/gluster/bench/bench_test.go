package bench

import (
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/georep/georep/integration/gluster"
)

// noCache are glusterfs client options for the mounts the slave is checked
// through: no kernel attribute, entry or negative-lookup caching, so that
// what the replicator wrote is seen at once.
var noCache = []string{"--attribute-timeout=0", "--entry-timeout=0", "--negative-timeout=0"}

// pair is a fresh master volume (changelog on) and slave volume, the
// master's FUSE mount the workloads write through, and a mount of the slave
// the results are checked on.
type pair struct {
	master, slave *gluster.Volume
	masterMount   string
	slaveView     string
}

func newPair(tb testing.TB, k knobs, tag string) *pair {
	tb.Helper()
	c := gluster.Start(tb)
	p := &pair{
		master: c.Volume(tb, tag+"-m", gluster.VolumeOpts{Changelog: true, RolloverTime: k.rollover}),
		slave:  c.Volume(tb, tag+"-s", gluster.VolumeOpts{}),
	}
	p.masterMount = p.master.Mount(tb)
	p.slaveView = p.slave.Mount(tb, noCache...)
	return p
}

// replicator is one tool set up on a pair, not yet replicating.
type replicator interface {
	// start begins replicating (the measured time starts just before).
	start(tb testing.TB)
	// settle waits, after the initial sync, until the tool follows live
	// changes.
	settle(tb testing.TB) error
	// diag describes the tool's state, for a failure.
	diag() string
}

type gsyncdRep struct{ s *gsyncdSession }

func (g gsyncdRep) start(tb testing.TB) { g.s.start(tb) }
func (g gsyncdRep) diag() string        { return g.s.diag() }
func (g gsyncdRep) settle(tb testing.TB) error {
	if err := g.s.waitCrawl("Changelog Crawl", 2*time.Minute); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	return nil
}

type georepRep struct {
	mode    georepMode
	k       knobs
	p       *pair
	run     *georepRun
	workDir string
}

func (g *georepRep) start(tb testing.TB) {
	g.run.startMaster(tb, g.mode, g.k, g.p.master, g.p.masterMount, g.workDir)
}
func (g *georepRep) diag() string { return g.run.diag() }
func (g *georepRep) settle(tb testing.TB) error {
	time.Sleep(2 * time.Second)
	if g.run.master.Exited() {
		return fmt.Errorf("georep-master exited:\n%s", tail(g.run.master.Log(), 20))
	}
	return nil
}

// setUp makes the tool ready to replicate the pair: for gsyncd the host's
// ssh set-up and a created, configured session; for georep a serving slave.
func setUp(tb testing.TB, tool string, k knobs, p *pair) replicator {
	tb.Helper()
	switch tool {
	case "gsyncd":
		if err := requireGsyncd(); err != nil {
			tb.Fatal(err)
		}
		h := setUpGsyncdHost(tb)
		return gsyncdRep{s: newGsyncdSession(tb, h, k, p.master, p.slave)}
	default:
		mode := probeGeorep(tb)
		root := ""
		if !mode.gluster {
			root = p.slave.Mount(tb)
		}
		return &georepRep{mode: mode, k: k, p: p, run: startGeorepSlave(tb, mode, p.slave, root), workDir: filepath.Join(tb.TempDir(), "work")}
	}
}

func syncFS() { exec.Command("sync").Run() }

// treeResults are one tool's figures on the small-file tree.
type treeResults struct {
	label        string
	files, each  int
	bytes        int64
	small, mixed result
	lat          []time.Duration
	latErr       string
	note         string // why the tool did not finish, when it did not
}

// tools are the tools a benchmark runs, gsyncd first.
func tools(k knobs) []string {
	var t []string
	if k.gsyncd {
		t = append(t, "gsyncd")
	}
	if k.georep {
		t = append(t, "georep")
	}
	return t
}

// label names a tool in the tables (georep's is refined once its mode is
// known).
func label(k knobs, tool string) string {
	if tool != "gsyncd" {
		return "georep"
	}
	l := fmt.Sprintf("gsyncd (change_interval %ds", k.changeInterval)
	if k.gsyncdStock {
		return l + ", stock)"
	}
	return l + ", access-mount)"
}

// BenchmarkTree: 10,000 × 4 KiB initial sync, then 1,500 mixed operations,
// then single-file latency, each tool on its own fresh pair of volumes.
func BenchmarkTree(b *testing.B) {
	k := loadKnobs(b)
	files := k.scaled(10000, 20)
	each := min(k.scaled(500, 5), files/3)
	res := map[string]*treeResults{}
	for _, tool := range tools(k) {
		r := &treeResults{files: files, each: each, label: label(k, tool)}
		res[tool] = r
		if !b.Run(tool, func(b *testing.B) { benchTree(b, tool, k, r) }) && r.note == "" {
			r.note = "failed (see the log above)"
		}
	}
	printTree(k, res)
	if r := res["georep"]; r != nil && (r.small.err != "" || r.mixed.err != "" || r.latErr != "") {
		b.Errorf("georep did not replicate correctly (see the tables)")
	}
}

func benchTree(b *testing.B, tool string, k knobs, r *treeResults) {
	p := newPair(b, k, "tree")
	rep := setUp(b, tool, k, p)
	if g, ok := rep.(*georepRep); ok {
		r.label = g.mode.label
	}
	t0 := time.Now()
	want := writeSmall(b, p.masterMount, r.files, 4<<10, 1)
	r.bytes = want.bytes()
	syncFS()
	b.Logf("%s: wrote %d × 4 KiB on the master mount in %s", tool, r.files, time.Since(t0).Round(100*time.Millisecond))

	start := time.Now()
	rep.start(b)
	r.small = waitConverged(p.slaveView, want, start, start.Add(2*time.Minute+time.Duration(r.files)*time.Second/20), nil, rep.diag)
	if !r.small.ok() {
		fail(b, "%s, initial sync of %d files: %s", tool, r.files, r.small.err)
		return
	}
	b.Logf("%s: initial sync of %d files in %s", tool, r.files, r.small.took.Round(10*time.Millisecond))
	b.ReportMetric(float64(r.files)/r.small.took.Seconds(), "files/s")

	if err := rep.settle(b); err != nil {
		r.mixed = result{ran: true, err: err.Error()}
		b.Logf("%s: %v", tool, err)
		return
	}
	check := mixedOps(b, p.masterMount, want, r.files, r.each, 5)
	start = time.Now()
	r.mixed = waitConverged(p.slaveView, want, start, start.Add(2*time.Minute+time.Duration(3*r.each)*time.Second/10),
		func() string { return check(p.slaveView) }, rep.diag)
	if !r.mixed.ok() {
		fail(b, "%s, mixed operations: %s", tool, r.mixed.err)
		return
	}
	b.Logf("%s: %d mixed operations on the slave %s after the last", tool, 3*r.each, r.mixed.took.Round(10*time.Millisecond))
	b.ReportMetric(r.mixed.took.Seconds(), "mixed-s")

	time.Sleep(2 * time.Second)
	r.lat, r.latErr = latencies(p.masterMount, p.slaveView, k.latencyN, 2*time.Minute, 7, rep.diag)
	if r.latErr != "" {
		fail(b, "%s, latency: %s", tool, r.latErr)
	}
	if len(r.lat) > 0 {
		b.ReportMetric(percentile(r.lat, .5).Seconds(), "p50-s")
		b.ReportMetric(percentile(r.lat, .99).Seconds(), "p99-s")
	}
}

// largeResults are one tool's figures on the large files.
type largeResults struct {
	label string
	files int
	size  int64
	sync  result
	note  string
}

// BenchmarkLargeFiles: 4 × 256 MiB initial sync, each tool on its own fresh
// pair of volumes.
func BenchmarkLargeFiles(b *testing.B) {
	k := loadKnobs(b)
	size := max(1<<20, int64(math.Round(256*k.scale))<<20)
	res := map[string]*largeResults{}
	for _, tool := range tools(k) {
		r := &largeResults{files: 4, size: size, label: label(k, tool)}
		res[tool] = r
		if !b.Run(tool, func(b *testing.B) { benchLarge(b, tool, k, r) }) && r.note == "" {
			r.note = "failed (see the log above)"
		}
	}
	printLarge(k, res)
	if r := res["georep"]; r != nil && r.sync.err != "" {
		b.Errorf("georep did not replicate correctly (see the table)")
	}
}

func benchLarge(b *testing.B, tool string, k knobs, r *largeResults) {
	p := newPair(b, k, "large")
	rep := setUp(b, tool, k, p)
	if g, ok := rep.(*georepRep); ok {
		r.label = g.mode.label
	}
	t0 := time.Now()
	want := writeBig(b, p.masterMount, r.files, r.size, 2)
	syncFS()
	b.Logf("%s: wrote %d × %d MiB on the master mount in %s", tool, r.files, r.size>>20, time.Since(t0).Round(100*time.Millisecond))
	start := time.Now()
	rep.start(b)
	bound := 2*time.Minute + time.Duration(want.bytes()/(5<<20))*time.Second
	r.sync = waitConverged(p.slaveView, want, start, start.Add(bound), nil, rep.diag)
	if !r.sync.ok() {
		fail(b, "%s, large files: %s", tool, r.sync.err)
		return
	}
	b.ReportMetric(float64(want.bytes())/(1<<20)/r.sync.took.Seconds(), "MiB/s")
}

// fail reports a tool's failure in full on stdout (a benchmark's log is
// truncated) and its first line in the log.
func fail(b *testing.B, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	fmt.Printf("\n%s\n", msg)
	b.Log(firstLine(msg))
}

// percentile is the nearest-rank q-quantile of ds.
func percentile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[max(0, int(math.Ceil(q*float64(len(s))))-1)]
}

// cell is a figure, or why there is none.
func cell(r result, note string, f func(time.Duration) string) string {
	switch {
	case r.ok():
		return f(r.took)
	case r.wrong:
		return "WRONG"
	case r.ran:
		return "FAILED"
	case note != "":
		return "FAILED"
	}
	return "not run"
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func printTree(k knobs, res map[string]*treeResults) {
	var any *treeResults
	for _, r := range res {
		any = r
	}
	if any == nil {
		return
	}
	mib := float64(any.files) * 4 / 1024
	fmt.Printf("\n== GlusterFS volume to volume, %d × 4 KiB: replicator start → every file on the slave with its content (scale %g)\n", any.files, k.scale)
	fmt.Printf("%-40s %10s %10s %10s\n", "tool", "seconds", "files/s", "MiB/s")
	var notes []string
	for _, tool := range tools(k) {
		r := res[tool]
		fmt.Printf("%-40s %10s %10s %10s\n", r.label,
			cell(r.small, r.note, func(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }),
			cell(r.small, r.note, func(d time.Duration) string { return fmt.Sprintf("%.0f", float64(r.files)/d.Seconds()) }),
			cell(r.small, r.note, func(d time.Duration) string { return fmt.Sprintf("%.2f", mib/d.Seconds()) }))
		notes = appendNote(notes, r.label, r.small.err, r.note)
	}
	printNotes(notes)

	fmt.Printf("\n== %d mixed operations (%d renames, %d deletes, %d overwrites) on that tree: end of the operations → slave matches\n", 3*any.each, any.each, any.each, any.each)
	fmt.Printf("%-40s %10s\n", "tool", "seconds")
	notes = nil
	for _, tool := range tools(k) {
		r := res[tool]
		fmt.Printf("%-40s %10s\n", r.label, cell(r.mixed, r.note, func(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }))
		notes = appendNote(notes, r.label, r.mixed.err, "")
	}
	printNotes(notes)

	fmt.Printf("\n== single 4 KiB file: write on the master mount → on the slave mount with its content (changelog rollover %s)\n", k.rollover)
	fmt.Printf("%-40s %10s %10s %10s\n", "tool", "p50 s", "p99 s", "files")
	notes = nil
	for _, tool := range tools(k) {
		r := res[tool]
		p50, p99 := "not run", "not run"
		if r.latErr != "" || (r.note != "" && len(r.lat) == 0) {
			p50, p99 = "FAILED", "FAILED"
		}
		if len(r.lat) > 0 && r.latErr == "" {
			p50, p99 = fmt.Sprintf("%.3f", percentile(r.lat, .5).Seconds()), fmt.Sprintf("%.3f", percentile(r.lat, .99).Seconds())
		}
		fmt.Printf("%-40s %10s %10s %10d\n", r.label, p50, p99, len(r.lat))
		notes = appendNote(notes, r.label, r.latErr, "")
	}
	printNotes(notes)
}

func printLarge(k knobs, res map[string]*largeResults) {
	var any *largeResults
	for _, r := range res {
		any = r
	}
	if any == nil {
		return
	}
	mib := float64(any.files) * float64(any.size) / (1 << 20)
	fmt.Printf("\n== GlusterFS volume to volume, %d × %d MiB: replicator start → every file on the slave with its content (scale %g)\n", any.files, any.size>>20, k.scale)
	fmt.Printf("%-40s %10s %10s\n", "tool", "seconds", "MiB/s")
	var notes []string
	for _, tool := range tools(k) {
		r := res[tool]
		fmt.Printf("%-40s %10s %10s\n", r.label,
			cell(r.sync, r.note, func(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }),
			cell(r.sync, r.note, func(d time.Duration) string { return fmt.Sprintf("%.1f", mib/d.Seconds()) }))
		notes = appendNote(notes, r.label, r.sync.err, r.note)
	}
	printNotes(notes)
}

func appendNote(notes []string, label, err, note string) []string {
	if err != "" {
		return append(notes, label+": "+firstLine(err))
	}
	if note != "" {
		return append(notes, label+": "+note)
	}
	return notes
}

func printNotes(notes []string) {
	for _, n := range notes {
		fmt.Printf("   %s\n", n)
	}
}
