package catalog

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/georep/georep/rpc/gfid"
)

// tree is a synthetic source tree as a crawl would see it: dirs directories
// of perDir regular files each under the root, inode numbers in creation
// order, times of a tree written over a few minutes.
type tree struct {
	keys  []Key
	nodes []Node // nodes[i] belongs to keys[i]; gfids filled by identify
}

func makeTree(dirs, perDir int, seed uint64) *tree {
	r := rand.New(rand.NewPCG(seed, seed+1))
	t := &tree{}
	ino := uint64(1 << 20)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano()
	stamp := func() (btime, mtime, ctime int64) {
		now += int64(r.IntN(2_000_000)) // a file every ~1 ms
		btime = now
		mtime = now + int64(r.IntN(300_000))
		ctime = mtime + int64(r.IntN(50_000))
		return
	}
	for d := 0; d < dirs; d++ {
		ino++
		b, m, c := stamp()
		t.keys = append(t.keys, Key{ino, b})
		t.nodes = append(t.nodes, Node{Type: TypeDir, Mode: 0o40755, UID: 1000, GID: 1000, Size: 4096,
			MtimeNs: m, CtimeNs: c, Links: []Link{{gfid.Root, fmt.Sprintf("d%04d", d)}}})
		for f := 0; f < perDir; f++ {
			ino++
			b, m, c := stamp()
			t.keys = append(t.keys, Key{ino, b})
			t.nodes = append(t.nodes, Node{Type: TypeReg, Mode: 0o100644, UID: 1000, GID: 1000,
				Size: int64(r.IntN(64 << 10)), MtimeNs: m, CtimeNs: c,
				Links: []Link{{Name: fmt.Sprintf("f%06d", d*perDir+f)}}}) // parent: see identify
		}
	}
	return t
}

// identify assigns the tree's gfids through c and links every file to its
// directory's gfid.
func (t *tree) identify(tb testing.TB, c *Catalog) {
	tb.Helper()
	gs, _, err := c.Identify(t.keys)
	if err != nil {
		tb.Fatal(err)
	}
	dir := gfid.GFID{}
	for i := range t.nodes {
		t.nodes[i].GFID = gs[i]
		if t.nodes[i].Type == TypeDir {
			dir = gs[i]
		} else {
			t.nodes[i].Links[0].Parent = dir
		}
	}
}

// diskBytes is what path (a file or a directory tree) occupies: the sum of
// its files' sizes.
func diskBytes(tb testing.TB, path string) int64 {
	tb.Helper()
	var n int64
	err := filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// TestBytesPerFile writes the catalog of a first sync of a realistic tree
// (1,000 files per directory, one link each) and logs what it costs on disk
// per file. GEOREP_CATALOG_FILES sets the number of files (20,000 by
// default). The bound is generous: it only catches a regression to the
// old layout's ~700 bytes.
func TestBytesPerFile(t *testing.T) {
	files := 20_000
	if s := os.Getenv("GEOREP_CATALOG_FILES"); s != "" {
		var err error
		if files, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "catalog.db")
	c := open(t, path)
	tr := makeTree(files/1000, 1000, 1)
	start := time.Now()
	tr.identify(t, c)
	identified := time.Since(start)
	start = time.Now()
	// A first sync: the entry ops' commit (impossible times), then the
	// pass's commit, as master/crawl does.
	entries := make([]Node, len(tr.nodes))
	for i, n := range tr.nodes {
		n.MtimeNs, n.CtimeNs = -1, -1
		entries[i] = n
	}
	if err := c.Commit(entries, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Commit(tr.nodes, nil); err != nil {
		t.Fatal(err)
	}
	committed := time.Since(start)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = open(t, path) // as the next start finds it
	if n, err := c.Count(); err != nil || n != int64(len(tr.nodes)) {
		t.Fatalf("Count = %d, %v; want %d", n, err, len(tr.nodes))
	}
	size := diskBytes(t, path)
	perFile := float64(size) / float64(len(tr.nodes))
	t.Logf("%d nodes: %d bytes on disk, %.1f bytes per file (identify %v, two commits %v)",
		len(tr.nodes), size, perFile, identified.Round(time.Millisecond), committed.Round(time.Millisecond))
	if perFile > 300 {
		t.Errorf("%.1f bytes per file, want < 300", perFile)
	}
}
