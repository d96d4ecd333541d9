package catalog

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/georep/georep/rpc/gfid"
)

// rssKB reads a field of /proc/self/status (VmRSS, VmHWM) in KiB.
func rssKB(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	return -1
}

// resetPeak starts a new peak-RSS measurement (VmHWM).
func resetPeak() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// TestScale measures a first sync and a crawl of GEOREP_CATALOG_SCALE files
// (skipped without it): wall and CPU time of each step, what the catalog
// adds to the process's memory at its peak, bytes per file on disk. The
// tree itself is held in memory by the test (as the crawl holds it); the
// memory figures are deltas over it.
func TestScale(t *testing.T) {
	files, _ := strconv.Atoi(os.Getenv("GEOREP_CATALOG_SCALE"))
	if files == 0 {
		t.Skip("set GEOREP_CATALOG_SCALE=1000000 to measure")
	}
	tr := makeTree(files/1000, 1000, 3)
	entries := make([]Node, len(tr.nodes))
	runtime.GC()
	debug.FreeOSMemory()
	base := rssKB("VmRSS")
	t.Logf("%d nodes; the test's own RSS with the tree: %d MiB", len(tr.nodes), base/1024)
	dir := os.Getenv("GEOREP_CATALOG_DIR") // kept for TestFootprint
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, "catalog.db")
	step := func(name string, fn func()) {
		t.Helper()
		runtime.GC()
		debug.FreeOSMemory()
		before := rssKB("VmRSS")
		resetPeak()
		cpu, start := cpuTime(), time.Now()
		fn()
		wall, cpuUsed := time.Since(start), cpuTime()-cpu
		t.Logf("%-34s wall %8v  cpu %8v  peak RSS +%4d MiB, after +%4d MiB over the tree",
			name, wall.Round(time.Millisecond), cpuUsed.Round(time.Millisecond), (rssKB("VmHWM")-before)/1024, (rssKB("VmRSS")-base)/1024)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var c *Catalog
	step("open (new)", func() { var err error; c, err = Open(path); must(err) })
	step("identify (all new)", func() { tr.identify(t, c) })
	for i, n := range tr.nodes {
		n.MtimeNs, n.CtimeNs = -1, -1
		entries[i] = n
	}
	step("commit entries (all)", func() { must(c.Commit(entries, nil)) })
	entries = nil
	step("commit (all)", func() { must(c.Commit(tr.nodes, nil)) })
	step("close", func() { must(c.Close()) })
	t.Logf("on disk after the first sync: %.1f bytes per file", float64(diskBytes(t, path))/float64(len(tr.nodes)))
	step("open", func() { var err error; c, err = Open(path); must(err) })
	defer func() { c.Close() }()
	step("identify (all known)", func() {
		if _, fresh, err := c.Identify(tr.keys); err != nil || fresh != 0 {
			t.Fatal(fresh, err)
		}
	})
	step("for each node", func() {
		n := 0
		must(c.ForEachNode(func(Node) error { n++; return nil }))
		if n != len(tr.nodes) {
			t.Fatalf("%d nodes", n)
		}
	})
	step("for each identity", func() { must(c.ForEachIdentity(func(Key, gfid.GFID) error { return nil })) })
	const samples = 20000
	point := func(name string, fn func(i int)) {
		cpu, start := cpuTime(), time.Now()
		for i := 0; i < samples; i++ {
			fn((i * 7919) % len(tr.nodes))
		}
		t.Logf("%-34s wall %8v  cpu %8v per lookup", name, (time.Since(start) / samples), (cpuTime()-cpu)/samples)
	}
	point("Identity (random)", func(i int) {
		if _, ok, err := c.Identity(tr.keys[i]); !ok || err != nil {
			t.Fatal(ok, err)
		}
	})
	point("Node (random)", func(i int) {
		if _, ok, err := c.Node(tr.nodes[i].GFID); !ok || err != nil {
			t.Fatal(ok, err)
		}
	})
	point("Lookup (random)", func(i int) {
		l := tr.nodes[i].Links[0]
		if _, ok, err := c.Lookup(l.Parent, l.Name); !ok || err != nil {
			t.Fatal(ok, err)
		}
	})
	point("Lookup (missing)", func(i int) {
		if _, ok, err := c.Lookup(tr.nodes[i].Links[0].Parent, "missing"); ok || err != nil {
			t.Fatal(ok, err)
		}
	})
	changed := make([]Node, 0, 100_000)
	for i := 0; i < len(tr.nodes) && len(changed) < cap(changed); i += max(1, len(tr.nodes)/100_000) {
		n := tr.nodes[i]
		n.CtimeNs += 1000
		changed = append(changed, n)
	}
	step("commit (100k changed, spread)", func() { must(c.Commit(changed, nil)) })
	step("close", func() { must(c.Close()) })
	t.Logf("on disk after: %.1f bytes per file", float64(diskBytes(t, path))/float64(len(tr.nodes)))
	step("open", func() { var err error; c, err = Open(path); must(err) })
	time.Sleep(20 * time.Second)
	t.Logf("on disk 20 s later: %.1f bytes per file", float64(diskBytes(t, path))/float64(len(tr.nodes)))
	t.Logf("%s", c.db.Metrics())
	step("compact everything", func() { must(c.db.Compact(context.Background(), []byte{0}, []byte{0xff}, false)) })
	time.Sleep(5 * time.Second)
	t.Logf("on disk compacted: %.1f bytes per file", float64(diskBytes(t, path))/float64(len(tr.nodes)))
}

// TestFootprint opens the catalog TestScale left in GEOREP_CATALOG_DIR
// (skipped without it) in a process that holds nothing else, and reports
// the memory the open store costs, idle and after the reads of a crawl and
// random lookups.
func TestFootprint(t *testing.T) {
	dir := os.Getenv("GEOREP_CATALOG_DIR")
	if dir == "" {
		t.Skip("set GEOREP_CATALOG_DIR to a directory TestScale wrote")
	}
	report := func(what string) {
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		t.Logf("%-40s RSS %4d MiB (peak %4d), Go heap %4d MiB", what, rssKB("VmRSS")/1024, rssKB("VmHWM")/1024, ms.HeapAlloc>>20)
	}
	report("before Open")
	c, err := Open(filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	report("open")
	var gs []gfid.GFID
	if err := c.ForEachNode(func(n Node) error { gs = append(gs, n.GFID); return nil }); err != nil {
		t.Fatal(err)
	}
	report(fmt.Sprintf("after ForEachNode (%d gfids held)", len(gs)))
	if err := c.ForEachIdentity(func(Key, gfid.GFID) error { return nil }); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50_000; i++ {
		if _, ok, err := c.Node(gs[(i*7919)%len(gs)]); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	report("after 50,000 random Node lookups")
	t.Logf("%s", c.db.Metrics())
}
