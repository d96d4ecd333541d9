package catalog

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the CPU time this process used so far (every goroutine, the
// store's background work included).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per op since start: on a shared machine
// the wall time per op says more about the neighbours.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// benchCatalog is a catalog holding the first sync of a 100,000-file tree.
func benchCatalog(b *testing.B) (*Catalog, *tree) {
	b.Helper()
	c := open(b, filepath.Join(b.TempDir(), "catalog.db"))
	tr := makeTree(100, 1000, 2)
	tr.identify(b, c)
	if err := c.Commit(tr.nodes, nil); err != nil {
		b.Fatal(err)
	}
	return c, tr
}

func BenchmarkIdentity(b *testing.B) {
	c, tr := benchCatalog(b)
	defer reportCPU(b, cpuTime())
	for i := 0; b.Loop(); i++ {
		if _, ok, err := c.Identity(tr.keys[(i*7919)%len(tr.keys)]); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

func BenchmarkNode(b *testing.B) {
	c, tr := benchCatalog(b)
	defer reportCPU(b, cpuTime())
	for i := 0; b.Loop(); i++ {
		if _, ok, err := c.Node(tr.nodes[(i*7919)%len(tr.nodes)].GFID); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	c, tr := benchCatalog(b)
	defer reportCPU(b, cpuTime())
	for i := 0; b.Loop(); i++ {
		l := tr.nodes[(i*7919)%len(tr.nodes)].Links[0]
		if _, ok, err := c.Lookup(l.Parent, l.Name); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkCommit100k commits the changed records of 100,000 files (a
// metadata change of every file) on a catalog that holds them.
func BenchmarkCommit100k(b *testing.B) {
	c, tr := benchCatalog(b)
	defer reportCPU(b, cpuTime())
	for i := 0; b.Loop(); i++ {
		for j := range tr.nodes {
			tr.nodes[j].CtimeNs++
		}
		if err := c.Commit(tr.nodes, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIdentifyKnown100k identifies 100,000 known inodes (a crawl of an
// unchanged tree).
func BenchmarkIdentifyKnown100k(b *testing.B) {
	c, tr := benchCatalog(b)
	defer reportCPU(b, cpuTime())
	for b.Loop() {
		if _, fresh, err := c.Identify(tr.keys); err != nil || fresh != 0 {
			b.Fatal(fresh, err)
		}
	}
}
