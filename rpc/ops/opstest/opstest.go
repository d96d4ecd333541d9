// Package opstest is the conformance suite of whatever applies the
// vocabulary of package rpc/ops: the same behavioural tests of entry-op
// semantics (gsyncd's resource.py entry_ops and meta_ops, as ARCHITECTURE.md
// "The slave's replica" states them) run against every implementation: the
// plain-directory replica (package slave/replica), the GlusterFS volume
// (package slave/glusterfs), the master's slave client over a real slave
// server (integration) and the master's in-memory test slave (package
// master/slavefake). It declares the Backend it drives and imports
// nothing of them. A difference between implementations is accepted only through a Caps
// field, never by a silent skip.
package opstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// Backend is what the suite drives: the replica method set the slave
// daemon uses (package slave's Replica), without the lifecycle, declared
// here so that the suite depends on no implementation.
type Backend interface {
	ApplyEntries(ctx context.Context, entries []ops.Entry) []ops.Failure
	ApplyMeta(ctx context.Context, metas []ops.Meta) []ops.Failure
	WriteFiles(ctx context.Context, files []ops.FileData) []ops.Failure
	Stat(ctx context.Context, g gfid.GFID) (ops.Attr, error)
	Entries(ctx context.Context, dir gfid.GFID) ([]ops.DirEntry, error)
	Purge(ctx context.Context, parent gfid.GFID, name string, only gfid.GFID) (uint64, error)
	SetXtime(ctx context.Context, g gfid.GFID, volumeID string, sec int64, nsec int32) error
	Xtime(ctx context.Context, g gfid.GFID, volumeID string) (sec int64, nsec int32, ok bool, err error)
	// DataDir is where rsync receives: DataDir/ab/<gfid> is the regular
	// file of gfid (the suite reads contents and xattrs through it).
	DataDir() string
}

// Caps declares what a backend supports beyond the common semantics.
type Caps struct {
	// Root: the process may chown and create devices (tests of owners and
	// devices run only then).
	Root bool
	// AuxGFIDRoot: the backend reaches inodes through an aux-gfid mount
	// (GlusterFS), whose virtual .gfid directory takes that name in the
	// root: every entry op naming the root's .gfid fails with EPERM
	// saying so. Elsewhere .gfid is a name like any other.
	AuxGFIDRoot bool
	// InMemory: the backend keeps its tree in memory (the master's test
	// slave, master/slavefake): it has no data directory and no
	// directories on disk. The suite reads a file's content and user.*
	// xattrs through its Contents method instead of DataDir, and
	// HostileSymlinkSwap, which swaps a directory on disk for a symlink,
	// does not apply (it is skipped, saying so).
	InMemory bool
}

// Contents is what an InMemory backend implements for the suite to read
// what a file holds: the content and the user.* xattrs of the regular
// file of g.
type Contents interface {
	Contents(g gfid.GFID) (data []byte, xattrs map[string][]byte, err error)
}

// Run runs the suite. open is called once; the backend must be empty
// (a fresh replica) and is released by open's own cleanup. Every test works
// in a directory of its own beneath the root.
func Run(t *testing.T, caps Caps, open func(t *testing.T) Backend) {
	b := open(t)
	s := &suite{b: b, caps: caps}
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s *suite, dir gfid.GFID)
	}{
		{"CreateEveryType", testCreateEveryType},
		{"Replay", testReplay},
		{"ExistsWithOtherGFID", testExistsOther},
		{"Rename", testRename},
		{"RenameDirectory", testRenameDir},
		{"RenameDirectoryTwice", testRenameDirTwice},
		{"RenameFromMovedParent", testRenameFromMovedParent},
		{"DirectoriesKeepMoving", testDirsKeepMoving},
		{"Hardlinks", testHardlinks},
		{"Remove", testRemove},
		{"MissingParent", testMissingParent},
		{"HostileInput", testHostile},
		{"HostileRenameLink", testHostileRenameLink},
		{"HostileSymlinkSwap", testHostileSymlinkSwap},
		{"UnknownGFIDs", testUnknown},
		{"WriteFiles", testWriteFiles},
		{"MetaOps", testMeta},
		{"Purge", testPurge},
		{"EntriesAndStat", testEntriesStat},
		{"Xtime", testXtime},
		{"RootGFIDName", testRootGFIDName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := gfid.New()
			s.apply(t, mkdir(dir, gfid.Root, "t-"+tc.name))
			tc.fn(t, s, dir)
		})
	}
}

type suite struct {
	b    Backend
	caps Caps
}

func (s *suite) apply(t *testing.T, entries ...ops.Entry) {
	t.Helper()
	if f := s.b.ApplyEntries(t.Context(), entries); len(f) > 0 {
		t.Fatalf("ApplyEntries: %s", describe(f))
	}
}

// applyFail applies e alone and wants it to fail with errno want.
func (s *suite) applyFail(t *testing.T, e ops.Entry, want syscall.Errno) ops.Failure {
	t.Helper()
	f := s.b.ApplyEntries(t.Context(), []ops.Entry{e})
	if len(f) != 1 || f[0].Errno != want || f[0].Index != 0 {
		t.Fatalf("%s %q: failures %s, want one %v", e.Op, e.Name, describe(f), want)
	}
	return f[0]
}

func describe(fs []ops.Failure) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "\n  [%d] %v (%d): %s existing=%s", f.Index, f.Errno, int(f.Errno), f.Message, f.Existing)
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

func (s *suite) stat(t *testing.T, g gfid.GFID) ops.Attr {
	t.Helper()
	a, err := s.b.Stat(t.Context(), g)
	if err != nil {
		t.Fatalf("Stat %s: %v", g, err)
	}
	return a
}

func (s *suite) gone(t *testing.T, g gfid.GFID) {
	t.Helper()
	if a, err := s.b.Stat(t.Context(), g); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat %s = %+v, %v; want not found", g, a, err)
	}
}

// names lists dir as "name=gfid" strings.
func (s *suite) names(t *testing.T, dir gfid.GFID) []string {
	t.Helper()
	ents, err := s.b.Entries(t.Context(), dir)
	if err != nil {
		t.Fatalf("Entries %s: %v", dir, err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name+"="+e.GFID.String())
	}
	return out
}

func (s *suite) wantNames(t *testing.T, dir gfid.GFID, want ...string) {
	t.Helper()
	got := s.names(t, dir)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("Entries %s = %q, want %q", dir, got, want)
	}
}

func at(name string, g gfid.GFID) string { return name + "=" + g.String() }

// tree describes everything beneath dir, through Entries and Stat.
func (s *suite) tree(t *testing.T, dir gfid.GFID) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(g gfid.GFID, prefix string, depth int)
	walk = func(g gfid.GFID, prefix string, depth int) {
		ents, err := s.b.Entries(t.Context(), g)
		if err != nil {
			t.Fatalf("Entries %s (%q): %v", g, prefix, err)
		}
		for _, e := range ents {
			a, err := s.b.Stat(t.Context(), e.GFID)
			if err != nil {
				t.Fatalf("Stat %s (%s%s): %v", e.GFID, prefix, e.Name, err)
			}
			out[prefix+e.Name] = fmt.Sprintf("%s %s %o %d:%d size=%d nlink=%d target=%q", e.GFID, a.Type, a.Mode, a.UID, a.GID, a.Size, a.Nlink, a.Target)
			if e.Type == ops.TypeDir && depth < 32 {
				walk(e.GFID, prefix+e.Name+"/", depth+1)
			}
		}
	}
	walk(dir, "", 0)
	return out
}

func (s *suite) dataPath(g gfid.GFID) string {
	return filepath.Join(s.b.DataDir(), g.Shard(), g.String())
}

// contents reads the content of the regular file of g: through DataDir,
// or through Contents on an InMemory backend.
func (s *suite) contents(t *testing.T, g gfid.GFID) ([]byte, error) {
	if !s.caps.InMemory {
		return os.ReadFile(s.dataPath(g))
	}
	data, _, err := s.inMemory(t).Contents(g)
	return data, err
}

// xattr reads the user.* xattr name of the regular file of g: through
// DataDir, or through Contents on an InMemory backend.
func (s *suite) xattr(t *testing.T, g gfid.GFID, name string) (string, bool) {
	if !s.caps.InMemory {
		buf := make([]byte, 64)
		n, err := unix.Getxattr(s.dataPath(g), name, buf)
		return string(buf[:max(n, 0)]), err == nil
	}
	_, xattrs, err := s.inMemory(t).Contents(g)
	if err != nil {
		t.Fatalf("Contents %s: %v", g, err)
	}
	v, ok := xattrs[name]
	return string(v), ok
}

func (s *suite) inMemory(t *testing.T) Contents {
	t.Helper()
	c, ok := s.b.(Contents)
	if !ok {
		t.Fatalf("backend %T is InMemory without a Contents method: the suite cannot read what its files hold", s.b)
	}
	return c
}

func create(g, parent gfid.GFID, name string, mode uint32) ops.Entry {
	return ops.Entry{Op: ops.OpCreate, GFID: g, Parent: parent, Name: name, Mode: unix.S_IFREG | mode}
}
func mkdir(g, parent gfid.GFID, name string) ops.Entry {
	return ops.Entry{Op: ops.OpMkdir, GFID: g, Parent: parent, Name: name, Mode: unix.S_IFDIR | 0o755}
}
func symlink(g, parent gfid.GFID, name, target string) ops.Entry {
	return ops.Entry{Op: ops.OpSymlink, GFID: g, Parent: parent, Name: name, Mode: unix.S_IFLNK | 0o777, Target: target}
}
func mknod(g, parent gfid.GFID, name string, mode uint32, rdev uint64) ops.Entry {
	return ops.Entry{Op: ops.OpMknod, GFID: g, Parent: parent, Name: name, Mode: mode, Rdev: rdev}
}
func link(g, parent gfid.GFID, name string) ops.Entry {
	return ops.Entry{Op: ops.OpLink, GFID: g, Parent: parent, Name: name}
}
func rename(g, parent gfid.GFID, name string, np gfid.GFID, nn string) ops.Entry {
	return ops.Entry{Op: ops.OpRename, GFID: g, Parent: parent, Name: name, NewParent: np, NewName: nn}
}
func unlink(g, parent gfid.GFID, name string) ops.Entry {
	return ops.Entry{Op: ops.OpUnlink, GFID: g, Parent: parent, Name: name}
}
func rmdir(g, parent gfid.GFID, name string) ops.Entry {
	return ops.Entry{Op: ops.OpRmdir, GFID: g, Parent: parent, Name: name}
}

// everyType creates one inode of every type in dir and returns them by name.
func (s *suite) everyType(t *testing.T, dir gfid.GFID) ([]ops.Entry, map[string]gfid.GFID) {
	t.Helper()
	g := map[string]gfid.GFID{}
	for _, n := range []string{"file", "dir", "symlink", "fifo", "socket", "chardev", "blockdev", "oddname"} {
		g[n] = gfid.New()
	}
	entries := []ops.Entry{
		create(g["file"], dir, "file", 0o640),
		mkdir(g["dir"], dir, "dir"),
		symlink(g["symlink"], dir, "symlink", "../../../etc/passwd\x01 odd"),
		mknod(g["fifo"], dir, "fifo", unix.S_IFIFO|0o600, 0),
		mknod(g["socket"], dir, "socket", unix.S_IFSOCK|0o600, 0),
		create(g["oddname"], dir, "sp ace\nnew\xffline", 0o600),
	}
	if s.caps.Root {
		entries = append(entries,
			mknod(g["chardev"], dir, "chardev", unix.S_IFCHR|0o600, unix.Mkdev(1, 3)),
			mknod(g["blockdev"], dir, "blockdev", unix.S_IFBLK|0o600, unix.Mkdev(7, 9)))
		entries[0].UID, entries[0].GID = 1234, 5678
	}
	s.apply(t, entries...)
	return entries, g
}

func testCreateEveryType(t *testing.T, s *suite, dir gfid.GFID) {
	entries, g := s.everyType(t, dir)
	for _, e := range entries {
		a := s.stat(t, e.GFID)
		wantMode := e.Mode
		if e.Op == ops.OpSymlink {
			wantMode = a.Mode // a symlink's permission bits are not kept
		}
		if a.Mode != wantMode {
			t.Errorf("%q: mode %o, want %o", e.Name, a.Mode, wantMode)
		}
		if s.caps.Root && (a.UID != e.UID || a.GID != e.GID) {
			t.Errorf("%q: owner %d:%d, want %d:%d", e.Name, a.UID, a.GID, e.UID, e.GID)
		}
		if a.Target != e.Target {
			t.Errorf("%q: target %q, want %q verbatim", e.Name, a.Target, e.Target)
		}
		if e.Rdev != 0 && a.Rdev != e.Rdev {
			t.Errorf("%q: rdev %#x, want %#x", e.Name, a.Rdev, e.Rdev)
		}
		if a.Type != ops.TypeDir && a.Nlink != 1 {
			t.Errorf("%q: nlink %d, want 1", e.Name, a.Nlink)
		}
	}
	var want []string
	for _, e := range entries {
		want = append(want, at(e.Name, e.GFID))
	}
	s.wantNames(t, dir, want...)
	if a := s.stat(t, g["dir"]); a.Type != ops.TypeDir {
		t.Errorf("dir: %s", a.Type)
	}
}

func testReplay(t *testing.T, s *suite, dir gfid.GFID) {
	entries, g := s.everyType(t, dir)
	moved, hard := gfid.New(), gfid.New()
	more := []ops.Entry{
		create(moved, dir, "before", 0o644),
		rename(moved, dir, "before", g["dir"], "after"),
		create(hard, dir, "h1", 0o644),
		link(hard, g["dir"], "h2"),
		unlink(g["fifo"], dir, "fifo"),
		rmdir(gfid.New(), dir, "never-there"),
	}
	s.apply(t, more...)
	before := s.tree(t, dir)
	// The whole history again, twice: every op is idempotent.
	for range 2 {
		all := append(slices.Clone(entries), more...)
		f := s.b.ApplyEntries(t.Context(), all)
		// (The replayed MKNOD recreates the fifo; the replayed UNLINK
		// removes it again.)
		if len(f) > 0 {
			t.Fatalf("replay: %s", describe(f))
		}
		if after := s.tree(t, dir); !mapsEqual(before, after) {
			t.Fatalf("replay changed the tree:\nbefore %v\nafter  %v", before, after)
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func testExistsOther(t *testing.T, s *suite, dir gfid.GFID) {
	file, sub := gfid.New(), gfid.New()
	s.apply(t, create(file, dir, "name", 0o644), mkdir(sub, dir, "sub"))
	other := gfid.New()
	for _, e := range []ops.Entry{
		create(other, dir, "name", 0o644),
		mkdir(other, dir, "name"),
		symlink(other, dir, "name", "x"),
		mknod(other, dir, "name", unix.S_IFIFO|0o644, 0),
		create(other, dir, "sub", 0o644),
	} {
		f := s.applyFail(t, e, unix.EEXIST)
		want := file
		if e.Name == "sub" {
			want = sub
		}
		if f.Existing != want {
			t.Errorf("%s %q: existing gfid %s, want %s", e.Op, e.Name, f.Existing, want)
		}
	}
	// LINK of another file onto the name.
	s.apply(t, create(other, dir, "other", 0o644))
	if f := s.applyFail(t, link(other, dir, "name"), unix.EEXIST); f.Existing != file {
		t.Errorf("LINK: existing %s, want %s", f.Existing, file)
	}
	// The same gfid with another type at the name.
	if f := s.applyFail(t, mkdir(file, dir, "name"), unix.EEXIST); f.Existing != file {
		t.Errorf("MKDIR over own file: existing %s", f.Existing)
	}
	// A directory gfid cannot get a second name.
	s.applyFail(t, mkdir(sub, dir, "sub2"), unix.EEXIST)
	s.wantNames(t, dir, at("name", file), at("sub", sub), at("other", other))
}

func testRename(t *testing.T, s *suite, dir gfid.GFID) {
	a, b, d2 := gfid.New(), gfid.New(), gfid.New()
	s.apply(t, create(a, dir, "a", 0o644), create(b, dir, "b", 0o644), mkdir(d2, dir, "d2"))
	s.apply(t, rename(a, dir, "a", d2, "a2"))
	s.apply(t, rename(a, dir, "a", d2, "a2")) // replay: the new name holds it
	s.wantNames(t, d2, at("a2", a))
	// Rename over another file replaces it.
	s.apply(t, rename(a, d2, "a2", dir, "b"))
	s.wantNames(t, dir, at("b", a), at("d2", d2))
	s.gone(t, b)
	// Through the park directory (the master's rename sequence).
	s.apply(t, rename(a, dir, "b", gfid.Park, a.String()), rename(a, gfid.Park, a.String(), d2, "back"))
	s.wantNames(t, d2, at("back", a))
	s.wantNames(t, gfid.Park)
	// The old name does not hold the gfid: it is taken from where it is.
	s.apply(t, rename(a, dir, "elsewhere", dir, "found"))
	s.wantNames(t, dir, at("d2", d2), at("found", a))
	// Renaming a gfid the replica lacks.
	s.applyFail(t, rename(gfid.New(), dir, "x", dir, "y"), unix.ENOENT)
	// Symlinks and fifos keep their type and target through a rename.
	l := gfid.New()
	s.apply(t, symlink(l, dir, "l", "/abs/target"), rename(l, dir, "l", d2, "l2"))
	if at := s.stat(t, l); at.Type != ops.TypeSymlink || at.Target != "/abs/target" {
		t.Fatalf("renamed symlink: %+v", at)
	}
}

func testRenameDir(t *testing.T, s *suite, dir gfid.GFID) {
	d, child, other := gfid.New(), gfid.New(), gfid.New()
	s.apply(t, mkdir(d, dir, "d"), create(child, d, "child", 0o644), mkdir(other, dir, "other"))
	s.apply(t, rename(d, dir, "d", other, "moved"))
	s.wantNames(t, other, at("moved", d))
	s.wantNames(t, d, at("child", child))
	// New entries by the directory's gfid land in its new place.
	c2 := gfid.New()
	s.apply(t, create(c2, d, "c2", 0o600))
	s.wantNames(t, d, at("child", child), at("c2", c2))
	// Replay, and a stale old name: found by gfid.
	s.apply(t, rename(d, dir, "d", other, "moved"))
	s.apply(t, rename(d, dir, "stale", dir, "again"))
	s.wantNames(t, dir, at("again", d), at("other", other))
	// A directory cannot move beneath itself.
	s.applyFail(t, rename(d, dir, "again", d, "inside"), unix.EINVAL)
}

// parkMove is the master's rename sequence for g: to the park directory,
// then to its new name.
func parkMove(g, parent gfid.GFID, name string, np gfid.GFID, nn string) []ops.Entry {
	return []ops.Entry{rename(g, parent, name, gfid.Park, g.String()), rename(g, gfid.Park, g.String(), np, nn)}
}

// testRenameDirTwice: two workers (the bricks of a distribute volume each
// hold every directory) send the same directory rename; the second finds
// the directory already moved, in one batch or op by op, also after its old
// parent and its new parent moved.
func testRenameDirTwice(t *testing.T, s *suite, dir gfid.GFID) {
	a, b, c, d, child, sub := gfid.New(), gfid.New(), gfid.New(), gfid.New(), gfid.New(), gfid.New()
	s.apply(t, mkdir(a, dir, "a"), mkdir(b, a, "b"), mkdir(c, dir, "c"),
		mkdir(d, b, "d"), create(child, d, "child", 0o644), mkdir(sub, d, "sub"))
	move := parkMove(d, b, "d", c, "moved")
	s.apply(t, move...) // the first worker
	s.apply(t, move...) // the second, in one batch
	for _, e := range move {
		s.apply(t, e) // and op by op
	}
	s.wantNames(t, c, at("moved", d))
	s.wantNames(t, b)
	s.wantNames(t, d, at("child", child), at("sub", sub))
	s.wantNames(t, gfid.Park)
	// The second worker is late: the old parent's own parent has moved
	// meanwhile, and the directory's new parent too.
	s.apply(t, parkMove(a, dir, "a", c, "a2")...)
	s.apply(t, parkMove(c, dir, "c", dir, "c2")...)
	s.apply(t, move...)
	s.wantNames(t, dir, at("c2", c))
	s.wantNames(t, c, at("a2", a), at("moved", d))
	s.wantNames(t, d, at("child", child), at("sub", sub))
	// Entries and creates by gfid work wherever it went.
	c2 := gfid.New()
	s.apply(t, create(c2, sub, "c2", 0o600))
	s.wantNames(t, sub, at("c2", c2))
	// A stale old name anywhere: the directory is taken from where it is.
	s.apply(t, rename(d, a, "gone", b, "back"))
	s.wantNames(t, b, at("back", d))
	s.wantNames(t, c, at("a2", a))
	s.wantNames(t, gfid.Park)
}

// testRenameFromMovedParent: a non-directory renamed out of a directory
// that moved meanwhile leaves no name behind; its other names stay.
func testRenameFromMovedParent(t *testing.T, s *suite, dir gfid.GFID) {
	p, q, f, h := gfid.New(), gfid.New(), gfid.New(), gfid.New()
	s.apply(t, mkdir(p, dir, "p"), mkdir(q, dir, "q"), create(f, p, "f", 0o644),
		create(h, p, "h", 0o644), link(h, dir, "h-other"))
	s.apply(t, parkMove(p, dir, "p", q, "p2")...)
	// The file's old parent is named by gfid: found where it moved.
	s.apply(t, parkMove(f, p, "f", dir, "f2")...)
	s.apply(t, parkMove(h, p, "h", q, "h2")...)
	s.wantNames(t, p)
	s.wantNames(t, dir, at("f2", f), at("h-other", h), at("q", q))
	s.wantNames(t, q, at("h2", h), at("p2", p))
	if a := s.stat(t, f); a.Nlink != 1 {
		t.Fatalf("f: nlink %d, want 1", a.Nlink)
	}
	if a := s.stat(t, h); a.Nlink != 2 {
		t.Fatalf("h: nlink %d, want 2", a.Nlink)
	}
	// The second worker replays both, after another move of the parent.
	s.apply(t, parkMove(p, q, "p2", dir, "p3")...)
	s.apply(t, parkMove(f, p, "f", dir, "f2")...)
	s.apply(t, parkMove(h, p, "h", q, "h2")...)
	s.wantNames(t, p)
	s.wantNames(t, dir, at("f2", f), at("h-other", h), at("p3", p), at("q", q))
	s.wantNames(t, q, at("h2", h))
	s.wantNames(t, gfid.Park)
	if a := s.stat(t, h); a.Nlink != 2 {
		t.Fatalf("h after replay: nlink %d, want 2", a.Nlink)
	}
	// Renamed while its old name is gone: given the new name, its other
	// names kept (a hardlink the master still has).
	s.apply(t, rename(h, p, "h", p, "h3"))
	s.wantNames(t, p, at("h3", h))
	if a := s.stat(t, h); a.Nlink != 3 {
		t.Fatalf("h: nlink %d, want 3", a.Nlink)
	}
}

// testDirsKeepMoving renames directories of a tree at random through the
// park directory and lists every directory after each move: a directory is
// found by gfid wherever it went, its old names vanish.
func testDirsKeepMoving(t *testing.T, s *suite, dir gfid.GFID) {
	rng := rand.New(rand.NewPCG(5, 8))
	type loc struct {
		parent gfid.GFID
		name   string
	}
	where := map[gfid.GFID]loc{}
	dirs := []gfid.GFID{dir}
	for i := range 10 {
		g, p := gfid.New(), dirs[rng.IntN(len(dirs))]
		name := fmt.Sprintf("d%d", i)
		s.apply(t, mkdir(g, p, name), create(gfid.New(), g, "f", 0o644))
		where[g] = loc{p, name}
		dirs = append(dirs, g)
	}
	beneath := func(g, d gfid.GFID) bool { // g is d or below it
		for ; g != dir; g = where[g].parent {
			if g == d {
				return true
			}
		}
		return false
	}
	for i := range 30 {
		g, np := dirs[1+rng.IntN(len(dirs)-1)], dirs[rng.IntN(len(dirs))]
		if beneath(np, g) {
			continue
		}
		name := fmt.Sprintf("r%d", i)
		s.apply(t, parkMove(g, where[g].parent, where[g].name, np, name)...)
		where[g] = loc{np, name}
		for _, d := range dirs {
			var want []string
			for _, c := range dirs[1:] {
				if where[c].parent == d {
					want = append(want, at(where[c].name, c))
				}
			}
			got := s.names(t, d)
			if d != dir {
				got = slices.DeleteFunc(got, func(n string) bool { return strings.HasPrefix(n, "f=") })
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("move %d: Entries %s = %q, want %q", i, d, got, want)
			}
		}
	}
}

func testHardlinks(t *testing.T, s *suite, dir gfid.GFID) {
	f, sub := gfid.New(), gfid.New()
	s.apply(t, create(f, dir, "one", 0o644), mkdir(sub, dir, "sub"))
	s.apply(t, link(f, sub, "two"), link(f, sub, "two"))
	if a := s.stat(t, f); a.Nlink != 2 {
		t.Fatalf("nlink %d, want 2", a.Nlink)
	}
	// CREATE of a known non-directory gfid at a new name links it.
	s.apply(t, create(f, dir, "three", 0o644))
	if a := s.stat(t, f); a.Nlink != 3 {
		t.Fatalf("nlink %d, want 3", a.Nlink)
	}
	// RENAME where both names hold the gfid drops the old one.
	s.apply(t, rename(f, dir, "three", sub, "two"))
	s.wantNames(t, dir, at("one", f), at("sub", sub))
	s.apply(t, unlink(f, dir, "one"))
	if a := s.stat(t, f); a.Nlink != 1 {
		t.Fatalf("nlink %d, want 1", a.Nlink)
	}
	s.applyFail(t, link(gfid.New(), dir, "x"), unix.ENOENT)
	s.applyFail(t, link(sub, dir, "dirlink"), unix.EPERM)
	// A symlink can be hardlinked too.
	l := gfid.New()
	s.apply(t, symlink(l, dir, "l", "t"), link(l, sub, "l2"))
	if a := s.stat(t, l); a.Nlink != 2 || a.Target != "t" {
		t.Fatalf("symlink hardlink: %+v", a)
	}
}

func testRemove(t *testing.T, s *suite, dir gfid.GFID) {
	f, d, inner := gfid.New(), gfid.New(), gfid.New()
	s.apply(t, create(f, dir, "f", 0o644), mkdir(d, dir, "d"), create(inner, d, "inner", 0o644))
	s.apply(t,
		unlink(gfid.New(), dir, "missing"),
		rmdir(gfid.New(), dir, "missing"),
		unlink(gfid.New(), gfid.New(), "no-parent"),
		unlink(gfid.New(), dir, "f"), // holds another gfid: left alone
	)
	s.wantNames(t, dir, at("d", d), at("f", f))
	s.applyFail(t, rmdir(d, dir, "d"), unix.ENOTEMPTY)
	s.applyFail(t, unlink(d, dir, "d"), unix.EISDIR)
	s.applyFail(t, rmdir(f, dir, "f"), unix.ENOTDIR)
	s.apply(t, unlink(inner, d, "inner"), rmdir(d, dir, "d"), unlink(f, dir, "f"))
	s.apply(t, unlink(inner, d, "inner"), rmdir(d, dir, "d"), unlink(f, dir, "f"))
	s.wantNames(t, dir)
	s.gone(t, f)
	s.gone(t, d)
}

func testMissingParent(t *testing.T, s *suite, dir gfid.GFID) {
	f := gfid.New()
	s.apply(t, create(f, dir, "f", 0o644))
	nowhere := gfid.New()
	for _, e := range []ops.Entry{
		create(gfid.New(), nowhere, "x", 0o644),
		mkdir(gfid.New(), nowhere, "x"),
		symlink(gfid.New(), nowhere, "x", "t"),
		mknod(gfid.New(), nowhere, "x", unix.S_IFIFO|0o644, 0),
		link(f, nowhere, "x"),
		rename(f, dir, "f", nowhere, "x"),
	} {
		s.applyFail(t, e, unix.ENOENT)
	}
	s.wantNames(t, dir, at("f", f))
	// A parent that is not a directory.
	s.applyFail(t, create(gfid.New(), f, "x", 0o644), unix.ENOTDIR)
}

func testHostile(t *testing.T, s *suite, dir gfid.GFID) {
	f := gfid.New()
	s.apply(t, create(f, dir, "f", 0o644))
	before := s.tree(t, gfid.Root)
	long := strings.Repeat("x", 256)
	bad := []string{"a/b", "/", "..", ".", "x\x00y", "", long, "../escape"}
	for _, name := range bad {
		for _, e := range []ops.Entry{
			create(gfid.New(), dir, name, 0o644),
			mkdir(gfid.New(), dir, name),
			symlink(gfid.New(), dir, name, "/etc"),
			mknod(gfid.New(), dir, name, unix.S_IFIFO|0o644, 0),
			link(f, dir, name),
			rename(f, dir, "f", dir, name),
			rename(f, dir, name, dir, "g"),
			unlink(f, dir, name),
			rmdir(f, dir, name),
		} {
			s.applyFail(t, e, unix.EINVAL)
		}
		if _, err := s.b.Purge(t.Context(), dir, name, gfid.GFID{}); err == nil {
			t.Errorf("Purge %q: no error", name)
		}
	}
	for _, e := range []ops.Entry{
		create(gfid.GFID{}, dir, "zero", 0o644),
		create(gfid.New(), gfid.GFID{}, "zero-parent", 0o644),
		{Op: ops.Op(99), GFID: gfid.New(), Parent: dir, Name: "op"},
		{Op: ops.OpCreate, GFID: gfid.New(), Parent: dir, Name: "dirmode", Mode: unix.S_IFDIR | 0o755},
		symlink(gfid.New(), dir, "empty-target", ""),
		symlink(gfid.New(), dir, "nul-target", "a\x00b"),
	} {
		s.applyFail(t, e, unix.EINVAL)
	}
	for _, e := range []ops.Entry{
		mkdir(gfid.New(), gfid.Root, ".georep"),
		create(gfid.New(), gfid.Root, ".georep", 0o644),
		unlink(gfid.New(), gfid.Root, ".georep"),
		create(gfid.Root, dir, "root", 0o644),
		mkdir(gfid.Park, dir, "park"),
		rename(gfid.Park, gfid.Root, ".georep", dir, "stolen"),
	} {
		s.applyFail(t, e, unix.EPERM)
	}
	if _, err := s.b.Purge(t.Context(), gfid.Root, ".georep", gfid.GFID{}); err == nil {
		t.Error("Purge of .georep: no error")
	}
	if after := s.tree(t, gfid.Root); !mapsEqual(before, after) {
		t.Fatalf("hostile input changed the tree:\nbefore %v\nafter  %v", before, after)
	}
	// A symlink named as a parent is never followed.
	l := gfid.New()
	s.apply(t, symlink(l, dir, "l", "/tmp"))
	s.applyFail(t, create(gfid.New(), l, "x", 0o644), unix.ENOTDIR)
}

func testUnknown(t *testing.T, s *suite, dir gfid.GFID) {
	u := gfid.New()
	s.gone(t, u)
	if _, err := s.b.Entries(t.Context(), u); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Entries of an unknown gfid: %v, want not found", err)
	}
	f := gfid.New()
	s.apply(t, create(f, dir, "f", 0o644))
	if _, err := s.b.Entries(t.Context(), f); err == nil {
		t.Error("Entries of a file: no error")
	}
	if fl := s.b.ApplyMeta(t.Context(), []ops.Meta{{GFID: u, SetMode: true, Mode: 0o600}}); len(fl) != 1 || fl[0].Errno != unix.ENOENT {
		t.Errorf("ApplyMeta of an unknown gfid: %s", describe(fl))
	}
	if fl := s.b.WriteFiles(t.Context(), []ops.FileData{{GFID: u, Data: []byte("x"), Mode: 0o644}}); len(fl) != 1 || fl[0].Errno != unix.ENOENT {
		t.Errorf("WriteFiles of an unknown gfid: %s", describe(fl))
	}
	if _, _, ok, err := s.b.Xtime(t.Context(), u, gfid.New().String()); err == nil || ok {
		t.Errorf("Xtime of an unknown gfid: ok %v err %v", ok, err)
	}
	if _, err := s.b.Stat(t.Context(), gfid.GFID{}); err == nil {
		t.Error("Stat of the zero gfid: no error")
	}
}

func testWriteFiles(t *testing.T, s *suite, dir gfid.GFID) {
	f, d, l := gfid.New(), gfid.New(), gfid.New()
	s.apply(t, create(f, dir, "f", 0o600), mkdir(d, dir, "d"), symlink(l, dir, "l", "f"), link(f, d, "hard"))
	mtime := time.Date(2021, 3, 4, 5, 6, 7, 800, time.UTC)
	fd := ops.FileData{GFID: f, Data: []byte("hello, replica"), Mode: 0o4751, Mtime: mtime}
	if s.caps.Root {
		fd.UID, fd.GID = 4321, 8765
	}
	for round := range 2 {
		if fl := s.b.WriteFiles(t.Context(), []ops.FileData{fd}); len(fl) > 0 {
			t.Fatalf("WriteFiles: %s", describe(fl))
		}
		a := s.stat(t, f)
		if a.Size != uint64(len(fd.Data)) || a.Mode&0o7777 != 0o4751 || !a.Mtime.Equal(mtime) || a.UID != fd.UID || a.GID != fd.GID {
			t.Fatalf("round %d: after WriteFiles %+v", round, a)
		}
		got, err := s.contents(t, f)
		if err != nil || !bytes.Equal(got, fd.Data) {
			t.Fatalf("round %d: content %q, %v; want %q", round, got, err, fd.Data)
		}
		fd.Data = []byte("HELLO, REPLICA") // same size, same mtime
	}
	fl := s.b.WriteFiles(t.Context(), []ops.FileData{
		{GFID: d, Data: []byte("x")}, {GFID: l, Data: []byte("x")}, {GFID: gfid.Root, Data: []byte("x")},
		{GFID: f, Data: nil, Mode: 0o644, Mtime: mtime},
	})
	if len(fl) != 3 || fl[0].Errno != unix.ENOENT || fl[1].Errno != unix.ENOENT || fl[2].Errno != unix.EINVAL {
		t.Fatalf("WriteFiles to a directory, a symlink, the root: %s", describe(fl))
	}
	if a := s.stat(t, f); a.Size != 0 {
		t.Fatalf("empty write left %d bytes", a.Size)
	}
	if a := s.stat(t, l); a.Target != "f" {
		t.Fatalf("symlink changed: %+v", a)
	}
}

func testMeta(t *testing.T, s *suite, dir gfid.GFID) {
	f, d, l := gfid.New(), gfid.New(), gfid.New()
	s.apply(t, create(f, dir, "f", 0o644), mkdir(d, dir, "d"), symlink(l, dir, "l", "f"))
	mt, atime := time.Date(2020, 1, 2, 3, 4, 5, 6000, time.UTC), time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC)
	m := func(g gfid.GFID) ops.Meta {
		mm := ops.Meta{GFID: g, SetMode: true, Mode: 0o2750, Mtime: &mt, Atime: &atime,
			SetXattrs: true, Xattrs: map[string][]byte{"user.a": []byte("1"), "user.b": {0, 1, 2}}}
		if s.caps.Root {
			mm.SetOwner, mm.UID, mm.GID = true, 1001, 1002
		}
		return mm
	}
	if fl := s.b.ApplyMeta(t.Context(), []ops.Meta{m(f), m(d), m(l)}); len(fl) > 0 {
		t.Fatalf("ApplyMeta: %s", describe(fl))
	}
	for _, g := range []gfid.GFID{f, d} {
		a := s.stat(t, g)
		if a.Mode&0o7777 != 0o2750 || !a.Mtime.Equal(mt) || (s.caps.Root && (a.UID != 1001 || a.GID != 1002)) {
			t.Errorf("%s after ApplyMeta: %+v", g, a)
		}
	}
	if a := s.stat(t, l); !a.Mtime.Equal(mt) || (s.caps.Root && a.UID != 1001) || a.Target != "f" {
		t.Errorf("symlink after ApplyMeta: %+v", a)
	}
	xattrs := func() map[string]string {
		out := map[string]string{}
		for _, n := range []string{"user.a", "user.b", "user.c"} {
			if v, ok := s.xattr(t, f, n); ok {
				out[n] = v
			}
		}
		return out
	}
	if got := xattrs(); got["user.a"] != "1" || got["user.b"] != "\x00\x01\x02" {
		t.Fatalf("xattrs %q", got)
	}
	// Replacing: user.a goes, user.c comes.
	if fl := s.b.ApplyMeta(t.Context(), []ops.Meta{{GFID: f, SetXattrs: true, Xattrs: map[string][]byte{"user.b": []byte("2"), "user.c": []byte("3")}}}); len(fl) > 0 {
		t.Fatalf("ApplyMeta: %s", describe(fl))
	}
	if got := xattrs(); len(got) != 2 || got["user.b"] != "2" || got["user.c"] != "3" {
		t.Fatalf("xattrs after replace %q", got)
	}
	fl := s.b.ApplyMeta(t.Context(), []ops.Meta{
		{GFID: f, SetXattrs: true, Xattrs: map[string][]byte{"trusted.evil": nil}},
		{GFID: gfid.Park, SetMode: true, Mode: 0o777},
		{GFID: gfid.GFID{}, SetMode: true},
	})
	if len(fl) != 3 || fl[0].Errno != unix.EINVAL || fl[1].Errno != unix.EPERM || fl[2].Errno != unix.EINVAL {
		t.Fatalf("refused metas: %s", describe(fl))
	}
}

func testPurge(t *testing.T, s *suite, dir gfid.GFID) {
	d, sub, f1, f2, keep := gfid.New(), gfid.New(), gfid.New(), gfid.New(), gfid.New()
	s.apply(t, mkdir(d, dir, "d"), mkdir(sub, d, "sub"), create(f1, sub, "f1", 0o644),
		create(f2, d, "f2", 0o644), link(f2, dir, "f2-link"), create(keep, dir, "keep", 0o644))
	n, err := s.b.Purge(t.Context(), dir, "d", gfid.New())
	if err != nil || n != 0 {
		t.Fatalf("Purge with another gfid: %d, %v", n, err)
	}
	if n, err := s.b.Purge(t.Context(), dir, "missing", gfid.GFID{}); err != nil || n != 0 {
		t.Fatalf("Purge of a missing name: %d, %v", n, err)
	}
	n, err = s.b.Purge(t.Context(), dir, "d", d)
	if err != nil || n != 3 { // d, sub, f1 (f2 keeps a name)
		t.Fatalf("Purge: removed %d, %v; want 3", n, err)
	}
	s.gone(t, d)
	s.gone(t, sub)
	s.gone(t, f1)
	if a := s.stat(t, f2); a.Nlink != 1 {
		t.Fatalf("f2 nlink %d", a.Nlink)
	}
	s.wantNames(t, dir, at("f2-link", f2), at("keep", keep))
	if _, err := s.b.Purge(t.Context(), gfid.New(), "x", gfid.GFID{}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Purge in an unknown parent: %v", err)
	}
}

func testEntriesStat(t *testing.T, s *suite, dir gfid.GFID) {
	for _, g := range []gfid.GFID{gfid.Root, gfid.Park} {
		if a := s.stat(t, g); a.Type != ops.TypeDir {
			t.Fatalf("Stat %s: %+v", g, a)
		}
	}
	for _, n := range s.names(t, gfid.Root) {
		if strings.HasPrefix(n, ".georep=") {
			t.Fatalf("root lists %s", n)
		}
	}
	names := []string{"b", "a", "c", "\xff", " "}
	var want []string
	for _, n := range names {
		g := gfid.New()
		s.apply(t, create(g, dir, n, 0o644))
		want = append(want, at(n, g))
	}
	got := s.names(t, dir)
	slices.Sort(want)
	if !slices.Equal(got, want) || !slices.IsSorted(got) {
		t.Fatalf("Entries %q, want %q sorted", got, want)
	}
	ents, err := s.b.Entries(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Type != ops.TypeRegular || e.GFID.IsZero() {
			t.Fatalf("entry %+v", e)
		}
	}
}

func testXtime(t *testing.T, s *suite, dir gfid.GFID) {
	vol := gfid.New().String()
	if _, _, ok, err := s.b.Xtime(t.Context(), dir, vol); err != nil || ok {
		t.Fatalf("Xtime before: ok %v, %v", ok, err)
	}
	for _, g := range []gfid.GFID{gfid.Root, dir} {
		if err := s.b.SetXtime(t.Context(), g, vol, 1700000000, 123456789); err != nil {
			t.Fatal(err)
		}
		sec, nsec, ok, err := s.b.Xtime(t.Context(), g, vol)
		if err != nil || !ok || sec != 1700000000 || nsec != 123456789 {
			t.Fatalf("Xtime %s: %d.%d %v %v", g, sec, nsec, ok, err)
		}
	}
	if err := s.b.SetXtime(t.Context(), dir, "not-a-uuid", 1, 0); err == nil {
		t.Fatal("SetXtime with a bad volume id: no error")
	}
	if err := s.b.SetXtime(t.Context(), dir, vol, 1, 1e9); err == nil {
		t.Fatal("SetXtime with nsec 1e9: no error")
	}
}

// testHostileRenameLink: a directory moved into its own descendant (at any
// depth, by name or by a stale name), and LINK of a directory (hardlinks of
// directories would make loops), are refused and change nothing.
func testHostileRenameLink(t *testing.T, s *suite, dir gfid.GFID) {
	a, b, c := gfid.New(), gfid.New(), gfid.New()
	s.apply(t, mkdir(a, dir, "a"), mkdir(b, a, "b"), mkdir(c, b, "c"))
	before := s.tree(t, gfid.Root)
	for _, e := range []ops.Entry{
		rename(a, dir, "a", a, "self"),
		rename(a, dir, "a", b, "child"),
		rename(a, dir, "a", c, "grandchild"),
		rename(a, dir, "stale-name", c, "grandchild"),
		rename(b, a, "b", c, "b"),
	} {
		s.applyFail(t, e, unix.EINVAL)
	}
	for _, e := range []ops.Entry{
		link(a, dir, "a-link"),
		link(c, dir, "c-link"),
		link(dir, a, "up"),
		link(gfid.Root, c, "root"),
	} {
		s.applyFail(t, e, unix.EPERM)
	}
	if after := s.tree(t, gfid.Root); !mapsEqual(before, after) {
		t.Fatalf("refused renames and links changed the tree:\nbefore %v\nafter  %v", before, after)
	}
}

// outsideDir makes a directory outside the replica, with a file in it, and
// returns it with a description of both to compare later.
func outsideDir(t *testing.T) (dir string, describe func() string) {
	t.Helper()
	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "sentinel"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	describe = func() string {
		var b strings.Builder
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				return err
			}
			fmt.Fprintf(&b, "%s mode=%o uid=%d nlink=%d size=%d mtime=%d.%d\n", p, st.Mode, st.Uid, st.Nlink, st.Size, st.Mtim.Sec, st.Mtim.Nsec)
			if d.Type().IsRegular() {
				data, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				fmt.Fprintf(&b, "  %q\n", data)
			}
			xs := make([]byte, 4096)
			if n, err := unix.Llistxattr(p, xs); err == nil && n > 0 {
				fmt.Fprintf(&b, "  xattrs %q\n", xs[:n])
			}
			return nil
		})
		if err != nil {
			t.Fatalf("walk %s: %v", dir, err)
		}
		return b.String()
	}
	return dir, describe
}

// testHostileSymlinkSwap: someone with access to the replica's filesystem
// swaps a replica directory for a symlink to a directory outside it between
// two calls. Every operation naming that directory (by gfid, as parent, as
// the thing to change) fails or reaches the real directory, never the
// symlink's target: nothing outside changes and nothing of it is listed.
// Once the directory is back, the replica works again.
func testHostileSymlinkSwap(t *testing.T, s *suite, dir gfid.GFID) {
	if s.caps.InMemory {
		t.Skip("Caps.InMemory: the backend has no directory on disk to swap for a symlink")
	}
	rooted, ok := s.b.(interface{ Root() string })
	if !ok {
		t.Fatalf("backend %T has no Root() string: the suite cannot reach its directories", s.b)
	}
	d, f, sub := gfid.New(), gfid.New(), gfid.New()
	s.apply(t, mkdir(d, dir, "d"), create(f, d, "f", 0o644), mkdir(sub, d, "sub"))
	here := filepath.Join(rooted.Root(), "t-HostileSymlinkSwap")
	if _, err := os.Lstat(filepath.Join(here, "d", "f")); err != nil {
		t.Fatalf("the suite's directory is not where it expects: %v", err)
	}
	outside, describeOutside := outsideDir(t)
	before := describeOutside()
	swap := func(t *testing.T) {
		t.Helper()
		if err := os.Rename(filepath.Join(here, "d"), filepath.Join(here, "d.real")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, filepath.Join(here, "d")); err != nil {
			t.Fatal(err)
		}
	}
	restore := func(t *testing.T) {
		t.Helper()
		if err := os.Remove(filepath.Join(here, "d")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(here, "d.real"), filepath.Join(here, "d")); err != nil {
			t.Fatal(err)
		}
	}
	swap(t)
	x := gfid.New()
	for _, e := range []ops.Entry{
		create(x, d, "x", 0o644),
		mkdir(x, d, "x"),
		symlink(x, d, "x", "/etc/passwd"),
		mknod(x, d, "x", unix.S_IFIFO|0o644, 0),
		link(f, d, "x"),
		rename(f, d, "f", d, "x"),
		rename(f, dir, "nowhere", d, "x"),
		unlink(gfid.New(), d, "sentinel"),
		rmdir(sub, d, "sub"),
		rename(d, dir, "d", dir, "d2"),
		rmdir(d, dir, "d"),
	} {
		fl := s.b.ApplyEntries(t.Context(), []ops.Entry{e})
		t.Logf("%s %q in the swapped directory: %s", e.Op, e.Name, describe(fl))
		for _, x := range fl {
			if x.Errno == 0 || x.Message == "" {
				t.Errorf("%s %q: failure without errno or message: %s", e.Op, e.Name, describe(fl))
			}
		}
	}
	metaFails := s.b.ApplyMeta(t.Context(), []ops.Meta{
		{GFID: d, SetMode: true, Mode: 0o777},
		{GFID: d, SetXattrs: true, Xattrs: map[string][]byte{"user.evil": []byte("1")}},
	})
	t.Logf("MetaOps of the swapped directory: %s", describe(metaFails))
	if ents, err := s.b.Entries(t.Context(), d); err == nil {
		for _, e := range ents {
			if e.Name == "sentinel" {
				t.Errorf("Entries of the swapped directory lists the symlink target's %q", e.Name)
			}
		}
	}
	if n, err := s.b.Purge(t.Context(), d, "sentinel", gfid.GFID{}); err == nil && n > 0 {
		t.Errorf("Purge of sentinel in the swapped directory removed %d", n)
	}
	if _, err := s.b.Purge(t.Context(), dir, "d", d); err != nil {
		t.Logf("Purge of the swapped directory itself: %v", err)
	}
	if after := describeOutside(); after != before {
		t.Fatalf("operations on a directory swapped for a symlink changed what it points to:\nbefore\n%safter\n%s", before, after)
	}
	if fi, err := os.Lstat(filepath.Join(here, "d")); err == nil && fi.Mode()&fs.ModeSymlink == 0 {
		t.Logf("the symlink was replaced by a %v", fi.Mode().Type())
	}
	// Put the directory back (unless the replica purged the symlink
	// already) and check it works again.
	if _, err := os.Lstat(filepath.Join(here, "d.real")); err == nil {
		if fi, err := os.Lstat(filepath.Join(here, "d")); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			restore(t)
		} else if err != nil {
			if err := os.Rename(filepath.Join(here, "d.real"), filepath.Join(here, "d")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := os.Lstat(filepath.Join(here, "d")); err == nil {
		y := gfid.New()
		if fl := s.b.ApplyEntries(t.Context(), []ops.Entry{create(y, d, "after", 0o644)}); len(fl) > 0 {
			t.Logf("create in the restored directory: %s", describe(fl))
		}
	}
}

// testRootGFIDName: the name .gfid in the root. On an aux-gfid backend it
// is reserved (EPERM naming the aux-gfid access path, for every op, so
// the master can file it as permanent); elsewhere it is replicated like
// any name. .gfid below the root is an ordinary name everywhere.
func testRootGFIDName(t *testing.T, s *suite, dir gfid.GFID) {
	d, f, sub := gfid.New(), gfid.New(), gfid.New()
	s.apply(t, create(f, dir, "f", 0o644), mkdir(sub, dir, ".gfid"))
	if got := s.names(t, dir); !slices.Contains(got, ".gfid="+sub.String()) {
		t.Fatalf("%s holds %q, want .gfid below the root", dir, got)
	}
	s.apply(t, rmdir(sub, dir, ".gfid"))
	if !s.caps.AuxGFIDRoot {
		s.apply(t, mkdir(d, gfid.Root, ".gfid"), create(gfid.New(), d, "inner", 0o644))
		if got := s.names(t, gfid.Root); !slices.Contains(got, ".gfid="+d.String()) {
			t.Fatalf("root holds %q, want .gfid", got)
		}
		s.apply(t, rename(d, gfid.Root, ".gfid", dir, "moved"))
		if _, err := s.b.Purge(t.Context(), dir, "moved", gfid.GFID{}); err != nil {
			t.Fatal(err)
		}
		return
	}
	before := s.tree(t, gfid.Root)
	for _, e := range []ops.Entry{
		mkdir(d, gfid.Root, ".gfid"),
		create(gfid.New(), gfid.Root, ".gfid", 0o644),
		symlink(gfid.New(), gfid.Root, ".gfid", "x"),
		mknod(gfid.New(), gfid.Root, ".gfid", unix.S_IFIFO|0o644, 0),
		link(f, gfid.Root, ".gfid"),
		rename(f, dir, "f", gfid.Root, ".gfid"),
		rename(d, gfid.Root, ".gfid", dir, "moved"),
		rmdir(d, gfid.Root, ".gfid"),
		unlink(f, gfid.Root, ".gfid"),
	} {
		fl := s.applyFail(t, e, unix.EPERM)
		if !strings.Contains(fl.Message, "reserved by GlusterFS's aux-gfid access path on the slave") {
			t.Errorf("%s %q: message %q does not say why the name is reserved", e.Op, e.Name, fl.Message)
		}
	}
	if _, err := s.b.Purge(t.Context(), gfid.Root, ".gfid", gfid.GFID{}); !errors.Is(err, unix.EPERM) {
		t.Errorf("Purge of the root's .gfid: %v, want EPERM", err)
	}
	if after := s.tree(t, gfid.Root); !mapsEqual(before, after) {
		t.Errorf("refused ops changed the tree:\nbefore %v\nafter  %v", before, after)
	}
}
