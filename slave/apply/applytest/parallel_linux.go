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
	if len(pf) != 3 {
		t.Errorf("want 3 failures (bad name, unknown parent, name taken), got %s", describeFailures(pf))
	}
	if a, b := listTree(t, parRoot), listTree(t, serRoot); a != b {
		t.Fatalf("trees differ:\nparallel:\n%s\nserial:\n%s", a, b)
	}
	return par, ser
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
