// Package applytest holds the tests every replica kind on the apply engine
// (package slave/apply) runs with its own backend, beside the conformance
// suite of package rpc/ops/opstest: the parallel scheduler's equality with
// applying one entry at a time. It has no gsyncd counterpart (gsyncd
// applies entry ops one at a time).
package applytest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
	"github.com/georep/georep/slave/apply"
)

// Replica is what the test drives: a replica kind on the apply engine.
type Replica interface {
	ApplyEntries(ctx context.Context, entries []ops.Entry) []ops.Failure
}

// minParallel is how long the run of creates of the test's batch must be.
const minParallel = 16

// ParallelCreatesMatchSerial applies a batch whose creates run in parallel
// to one replica and the same entries one call at a time (always in order)
// to another, both fresh from open (which returns the replica and its root
// directory), and checks that both give the same failures and the same tree
// (.georep excepted). It returns both replicas (parallel first) for checks
// of their own.
func ParallelCreatesMatchSerial(t *testing.T, open func(t *testing.T) (Replica, string)) (par, ser Replica) {
	t.Helper()
	var batch []ops.Entry
	var dirs []gfid.GFID
	for d := range 12 {
		g := gfid.New()
		dirs = append(dirs, g)
		batch = append(batch, ops.Entry{Op: ops.OpMkdir, GFID: g, Parent: gfid.Root, Name: fmt.Sprintf("d%02d", d), Mode: unix.S_IFDIR | 0o755})
	}
	dup := gfid.New()
	for i := range 300 {
		e := ops.Entry{Op: ops.OpCreate, GFID: gfid.New(), Parent: dirs[i%len(dirs)], Name: fmt.Sprintf("f%03d", i), Mode: unix.S_IFREG | 0o640, UID: 7, GID: 8}
		switch i {
		case 10:
			e.Name = "bad/name" // refused
		case 20:
			e.Parent = gfid.New() // unknown parent
		case 30:
			e.Name = "f006" // same directory as f006 (30%12 == 6): EEXIST
		case 40:
			e.Op, e.Mode, e.Target = ops.OpSymlink, unix.S_IFLNK|0o777, "../target"
		case 50:
			e.Op, e.Mode = ops.OpMknod, unix.S_IFIFO|0o600
		case 60:
			e.GFID = dup
		}
		batch = append(batch, e)
	}
	batch = append(batch, ops.Entry{Op: ops.OpLink, GFID: dup, Parent: dirs[0], Name: "link-to-dup"})

	par, parRoot := open(t)
	ser, serRoot := open(t)
	if got := runAt(batch, len(dirs)); got < minParallel {
		t.Fatalf("the creates do not form a parallel run (%d entries)", got)
	}
	matchSerial(t, par, ser, parRoot, serRoot, batch, 3, "bad name, unknown parent, name taken")
	return par, ser
}

// ParallelEntriesMatchSerial is ParallelCreatesMatchSerial for a batch of
// every op after a first batch of creates: renames of files to the park,
// unlinks, renames back to new names, a rename replacing a file that a
// later LINK names (ENOENT once its last name is gone), a directory
// rename, a rename of an unknown gfid, a name freed then taken again. A
// replica whose engine has Config.ParallelEntries applies most of the
// batch side by side; it must give what applying one entry at a time gives.
func ParallelEntriesMatchSerial(t *testing.T, open func(t *testing.T) (Replica, string)) (par, ser Replica) {
	t.Helper()
	var setup []ops.Entry
	var dirs []gfid.GFID
	for d := range 4 {
		g := gfid.New()
		dirs = append(dirs, g)
		setup = append(setup, ops.Entry{Op: ops.OpMkdir, GFID: g, Parent: gfid.Root, Name: fmt.Sprintf("d%02d", d), Mode: unix.S_IFDIR | 0o755})
	}
	edir, ex := gfid.New(), gfid.New()
	setup = append(setup, ops.Entry{Op: ops.OpMkdir, GFID: edir, Parent: gfid.Root, Name: "e", Mode: unix.S_IFDIR | 0o750},
		ops.Entry{Op: ops.OpCreate, GFID: ex, Parent: edir, Name: "x", Mode: unix.S_IFREG | 0o600})
	type file struct {
		g      gfid.GFID
		parent gfid.GFID
		name   string
	}
	var files []file
	for i := range 200 {
		f := file{gfid.New(), dirs[i%len(dirs)], fmt.Sprintf("f%03d", i)}
		files = append(files, f)
		setup = append(setup, ops.Entry{Op: ops.OpCreate, GFID: f.g, Parent: f.parent, Name: f.name, Mode: unix.S_IFREG | 0o640, UID: 7, GID: 8})
	}
	setup = append(setup, ops.Entry{Op: ops.OpLink, GFID: files[0].g, Parent: dirs[1], Name: "hardlink"})

	rename := func(g, p gfid.GFID, n string, np gfid.GFID, nn string) ops.Entry {
		return ops.Entry{Op: ops.OpRename, GFID: g, Parent: p, Name: n, NewParent: np, NewName: nn}
	}
	var batch []ops.Entry
	for _, f := range files[:60] {
		batch = append(batch, rename(f.g, f.parent, f.name, gfid.Park, f.g.String()))
	}
	for _, f := range files[60:100] {
		batch = append(batch, ops.Entry{Op: ops.OpUnlink, GFID: f.g, Parent: f.parent, Name: f.name})
	}
	// files[101]'s only name is replaced, then linked: ENOENT in order.
	r, h := files[100], files[101]
	batch = append(batch, rename(r.g, r.parent, r.name, h.parent, h.name),
		ops.Entry{Op: ops.OpLink, GFID: h.g, Parent: dirs[2], Name: "relinked"})
	// A directory moved, then emptied and removed where it went.
	batch = append(batch, rename(edir, gfid.Root, "e", dirs[1], "e-moved"),
		ops.Entry{Op: ops.OpUnlink, GFID: ex, Parent: edir, Name: "x"},
		ops.Entry{Op: ops.OpRmdir, GFID: edir, Parent: dirs[1], Name: "e-moved"})
	nd := gfid.New()
	batch = append(batch, ops.Entry{Op: ops.OpMkdir, GFID: nd, Parent: dirs[2], Name: "new", Mode: unix.S_IFDIR | 0o700},
		ops.Entry{Op: ops.OpCreate, GFID: gfid.New(), Parent: nd, Name: "y", Mode: unix.S_IFREG | 0o644})
	for i, f := range files[:60] {
		batch = append(batch, rename(f.g, gfid.Park, f.g.String(), dirs[(i+1)%len(dirs)], fmt.Sprintf("r%03d", i)))
	}
	batch = append(batch, rename(gfid.New(), dirs[0], "nothing", dirs[0], "still-nothing")) // ENOENT
	freed := files[150]
	batch = append(batch, ops.Entry{Op: ops.OpUnlink, GFID: freed.g, Parent: freed.parent, Name: freed.name},
		ops.Entry{Op: ops.OpCreate, GFID: gfid.New(), Parent: freed.parent, Name: freed.name, Mode: unix.S_IFREG | 0o600})
	// A rename onto a name that holds another file nothing else names.
	batch = append(batch, rename(files[160].g, files[160].parent, files[160].name, files[161].parent, files[161].name))
	// A rename of the hardlinked file, whose other name stays.
	batch = append(batch, rename(files[0].g, dirs[1], "hardlink", dirs[3], "hardlink-moved"))

	par, parRoot := open(t)
	ser, serRoot := open(t)
	for _, rep := range []Replica{par, ser} {
		if fs := rep.ApplyEntries(t.Context(), setup); len(fs) != 0 {
			t.Fatalf("setup: %s", describeFailures(fs))
		}
	}
	matchSerial(t, par, ser, parRoot, serRoot, batch, 2, "the LINK of the replaced file, the rename of an unknown gfid")
	return par, ser
}

// matchSerial applies batch to par in one call and to ser one entry at a
// time, and checks that both fail the same entries (wantFailures of them,
// which are what) and end with the same tree.
func matchSerial(t *testing.T, par, ser Replica, parRoot, serRoot string, batch []ops.Entry, wantFailures int, what string) {
	t.Helper()
	pf := par.ApplyEntries(t.Context(), batch)
	var sf []ops.Failure
	for i, e := range batch {
		for _, f := range ser.ApplyEntries(t.Context(), []ops.Entry{e}) {
			f.Index = i
			sf = append(sf, f)
		}
	}
	if describeFailures(pf) != describeFailures(sf) {
		t.Fatalf("failures differ:\nparallel: %s\nserial:   %s", describeFailures(pf), describeFailures(sf))
	}
	if len(pf) != wantFailures {
		t.Errorf("want %d failures (%s), got %s", wantFailures, what, describeFailures(pf))
	}
	if a, b := listTree(t, parRoot), listTree(t, serRoot); a != b {
		t.Fatalf("trees differ:\nparallel:\n%s\nserial:\n%s", a, b)
	}
}

// runAt is the length of the run of apply.IndependentRuns starting at lo.
func runAt(entries []ops.Entry, lo int) int {
	for _, r := range apply.IndependentRuns(entries) {
		if r[0] == lo {
			return r[1] - r[0]
		}
	}
	return 0
}

func describeFailures(fs []ops.Failure) string {
	var parts []string
	for _, f := range fs {
		parts = append(parts, fmt.Sprintf("%d:%s", f.Index, f.Errno))
	}
	return strings.Join(parts, " ")
}

// listTree lists names, types, modes and owners beneath root, .georep
// excepted (its gfids differ between two replicas only in the index).
func listTree(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == ".georep" {
			return filepath.SkipDir
		}
		st := fi.Sys().(*syscall.Stat_t)
		lines = append(lines, fmt.Sprintf("%s %o %d:%d %d", rel, st.Mode, st.Uid, st.Gid, st.Nlink))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
