package replica

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
	"github.com/georep/georep/slave/apply"
)

func TestOpen(t *testing.T) {
	t.Run("missing root", func(t *testing.T) {
		_, err := Open(filepath.Join(t.TempDir(), "nope"), nil)
		if err == nil || !isNotExist(err) {
			t.Fatalf("Open of a missing root = %v, want a not-exist error", err)
		}
	})
	t.Run("root is a file", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Open(f, nil)
		if err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Fatalf("Open of a file = %v, want 'not a directory'", err)
		}
	})
	t.Run("layout and reopen", func(t *testing.T) {
		r, root := newReplica(t)
		for _, d := range []string{".georep", ".georep/gfid", ".georep/links", ".georep/park"} {
			st := lstat(t, filepath.Join(root, d))
			if !apply.IsDirMode(st.Mode) || st.Mode&0o777 != 0o700 {
				t.Errorf("%s: mode %o, want a 0700 directory", d, st.Mode)
			}
		}
		if g := xattrGFID(t, r, root); g != gfid.Root {
			t.Errorf("root gfid %s, want %s", g, gfid.Root)
		}
		if g := xattrGFID(t, r, filepath.Join(root, ".georep/park")); g != gfid.Park {
			t.Errorf("park gfid %s, want %s", g, gfid.Park)
		}
		for g, want := range map[gfid.GFID]string{gfid.Root: "../../..", gfid.Park: "../../park"} {
			if got, err := os.Readlink(indexPath(root, g)); err != nil || got != want {
				t.Errorf("index of %s = %q, %v; want %q", g, got, err, want)
			}
			// The kernel resolves the index entry to the same directory.
			if a, b := lstat(t, root+"/.georep/links/00/"+g.String()+"/."), lstat(t, filepath.Join(root, map[gfid.GFID]string{gfid.Root: ".", gfid.Park: ".georep/park"}[g])); a.Ino != b.Ino {
				t.Errorf("index entry of %s does not lead to its directory", g)
			}
		}
		if want := filepath.Join(root, ".georep", "gfid"); r.DataDir() != want || r.Root() != root {
			t.Errorf("DataDir %q Root %q", r.DataDir(), r.Root())
		}
		before := snapshot(t, root)
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		r2, err := Open(root, nil)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer r2.Close()
		assertSameTree(t, before, snapshot(t, root))
		if err := r.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if f := r.ApplyEntries(t.Context(), []ops.Entry{mkdir(gfid.New(), gfid.Root, "x")}); len(f) != 1 {
			t.Errorf("ApplyEntries after Close: %v, want a failure", f)
		}
	})
	t.Run("root carries another gfid", func(t *testing.T) {
		requireRoot(t)
		root := t.TempDir()
		g := gfid.New()
		if err := unix.Setxattr(root, "trusted.georep.gfid", g[:], 0); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(root, nil); err == nil || !strings.Contains(err.Error(), "carries gfid") {
			t.Fatalf("Open = %v, want a gfid mismatch error", err)
		}
	})
}

func TestCreateOps(t *testing.T) {
	r, root := newReplica(t)
	type check struct {
		typ    ops.FileType
		mode   uint32 // permission bits
		target string
	}
	tests := []struct {
		name     string
		e        ops.Entry
		needRoot bool
		want     check
	}{
		{name: "create", e: ops.Entry{Op: ops.OpCreate, Mode: unix.S_IFREG | 0o640, UID: 1000, GID: 1001}, want: check{typ: ops.TypeRegular, mode: 0o640}},
		{name: "create setuid", e: ops.Entry{Op: ops.OpCreate, Mode: unix.S_IFREG | 0o4755, UID: 1000, GID: 1000}, needRoot: true, want: check{typ: ops.TypeRegular, mode: 0o4755}},
		{name: "create setgid", e: ops.Entry{Op: ops.OpCreate, Mode: unix.S_IFREG | 0o2750, UID: 0, GID: 1000}, want: check{typ: ops.TypeRegular, mode: 0o2750}},
		{name: "mkdir", e: ops.Entry{Op: ops.OpMkdir, Mode: unix.S_IFDIR | 0o750, UID: 1000, GID: 1000}, want: check{typ: ops.TypeDir, mode: 0o750}},
		{name: "mkdir sticky", e: ops.Entry{Op: ops.OpMkdir, Mode: unix.S_IFDIR | 0o1777}, want: check{typ: ops.TypeDir, mode: 0o1777}},
		{name: "fifo", e: ops.Entry{Op: ops.OpMknod, Mode: unix.S_IFIFO | 0o620, UID: 1000, GID: 1000}, want: check{typ: ops.TypeFifo, mode: 0o620}},
		{name: "socket", e: ops.Entry{Op: ops.OpMknod, Mode: unix.S_IFSOCK | 0o600}, want: check{typ: ops.TypeSocket, mode: 0o600}},
		{name: "mknod regular", e: ops.Entry{Op: ops.OpMknod, Mode: unix.S_IFREG | 0o604}, want: check{typ: ops.TypeRegular, mode: 0o604}},
		{name: "char", e: ops.Entry{Op: ops.OpMknod, Mode: unix.S_IFCHR | 0o666, Rdev: unix.Mkdev(1, 3)}, needRoot: true, want: check{typ: ops.TypeChar, mode: 0o666}},
		{name: "block", e: ops.Entry{Op: ops.OpMknod, Mode: unix.S_IFBLK | 0o660, Rdev: unix.Mkdev(7, 200)}, needRoot: true, want: check{typ: ops.TypeBlock, mode: 0o660}},
		{name: "symlink", e: ops.Entry{Op: ops.OpSymlink, Mode: unix.S_IFLNK | 0o777, UID: 1000, GID: 1000, Target: "../../etc/passwd"}, want: check{typ: ops.TypeSymlink, mode: 0o777, target: "../../etc/passwd"}},
		{name: "symlink absolute", e: ops.Entry{Op: ops.OpSymlink, Target: "/etc"}, want: check{typ: ops.TypeSymlink, mode: 0o777, target: "/etc"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.needRoot || tt.e.UID != 0 || tt.e.GID != 0 {
				requireRoot(t)
			}
			wantUID, wantGID := tt.e.UID, tt.e.GID
			if os.Geteuid() != 0 { // chown to root is refused and skipped
				wantUID, wantGID = uint32(os.Geteuid()), uint32(os.Getegid())
			}
			e := tt.e
			e.GFID, e.Parent, e.Name = gfid.New(), gfid.Root, strings.ReplaceAll(tt.name, " ", "_")
			mustApply(t, r, e)
			p := filepath.Join(root, e.Name)
			st := lstat(t, p)
			if got := ops.TypeOfMode(st.Mode); got != tt.want.typ {
				t.Fatalf("type %s, want %s", got, tt.want.typ)
			}
			if got := st.Mode & 0o7777; got != tt.want.mode {
				t.Errorf("mode %o, want %o", got, tt.want.mode)
			}
			if st.Uid != wantUID || st.Gid != wantGID {
				t.Errorf("owner %d:%d, want %d:%d", st.Uid, st.Gid, wantUID, wantGID)
			}
			if st.Rdev != e.Rdev {
				t.Errorf("rdev %d, want %d", st.Rdev, e.Rdev)
			}
			if os.Geteuid() != 0 && noUserXattrs(st.Mode) {
				// As non-root only the index hardlink identifies a special file.
			} else if g := xattrGFID(t, r, p); g != e.GFID {
				t.Errorf("gfid xattr %s, want %s", g, e.GFID)
			}
			assertIndexPlace(t, root, tt.want.typ, e.GFID)
			ip := indexPath(root, e.GFID)
			if tt.want.typ == ops.TypeDir {
				if got, err := os.Readlink(ip); err != nil || got != dirLink(gfid.Root, e.Name) {
					t.Errorf("index symlink %q, %v; want %q", got, err, dirLink(gfid.Root, e.Name))
				}
			} else if ist := lstat(t, ip); ist.Ino != st.Ino {
				t.Errorf("index entry is not a hardlink of the inode")
			}
			if tt.want.target != "" {
				if got, _ := os.Readlink(p); got != tt.want.target {
					t.Errorf("target %q, want %q", got, tt.want.target)
				}
			}
			a, err := r.Stat(t.Context(), e.GFID)
			if err != nil {
				t.Fatalf("Stat: %v", err)
			}
			if a.Type != tt.want.typ || a.Mode != st.Mode || a.UID != wantUID || a.Rdev != e.Rdev || a.Target != tt.want.target {
				t.Errorf("Stat = %+v", a)
			}
			if tt.want.typ != ops.TypeDir && a.Nlink != 1 {
				t.Errorf("Stat nlink %d, want 1 (the index link is not counted)", a.Nlink)
			}
			// A replay succeeds and changes nothing.
			before := snapshot(t, root)
			mustApply(t, r, e)
			assertSameTree(t, before, snapshot(t, root))
		})
	}
	assertDataDirRegularOnly(t, r)
}

func TestCreateConflicts(t *testing.T) {
	r, root := newReplica(t)
	g1, g2, d := gfid.New(), gfid.New(), gfid.New()
	mustApply(t, r, create(g1, gfid.Root, "a", 0o644), mkdir(d, gfid.Root, "d"))

	t.Run("name holds another gfid", func(t *testing.T) {
		f := applyFail(t, r, create(g2, gfid.Root, "a", 0o644), unix.EEXIST)
		if f.Existing != g1 {
			t.Errorf("Existing %s, want %s", f.Existing, g1)
		}
		if !strings.Contains(f.Message, `"a"`) || !strings.Contains(f.Message, g2.String()) || !strings.Contains(f.Message, "CREATE") {
			t.Errorf("message %q does not name op, gfid and name", f.Message)
		}
	})
	t.Run("name holds an inode without gfid", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(root, "foreign"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		f := applyFail(t, r, mkdir(g2, gfid.Root, "foreign"), unix.EEXIST)
		if !f.Existing.IsZero() {
			t.Errorf("Existing %s, want zero", f.Existing)
		}
	})
	t.Run("mkdir of a gfid that exists elsewhere", func(t *testing.T) {
		f := applyFail(t, r, mkdir(d, gfid.Root, "d2"), unix.EEXIST)
		if !strings.Contains(f.Message, "gfid exists at another name") {
			t.Errorf("message %q", f.Message)
		}
		if exists(filepath.Join(root, "d2")) {
			t.Error("d2 was created")
		}
	})
	t.Run("create of an existing file gfid links", func(t *testing.T) {
		mustApply(t, r, create(g1, d, "a2", 0o644))
		if lstat(t, filepath.Join(root, "a")).Ino != lstat(t, filepath.Join(root, "d", "a2")).Ino {
			t.Error("a and d/a2 are not hardlinks")
		}
	})
	t.Run("same gfid wrong type", func(t *testing.T) {
		applyFail(t, r, mkdir(g1, gfid.Root, "a"), unix.EEXIST)
	})
	t.Run("parent missing", func(t *testing.T) {
		f := applyFail(t, r, create(gfid.New(), gfid.New(), "x", 0o644), unix.ENOENT)
		if !strings.Contains(f.Message, "parent") || !strings.Contains(f.Message, "not found") {
			t.Errorf("message %q", f.Message)
		}
	})
	t.Run("parent is a file", func(t *testing.T) {
		applyFail(t, r, create(gfid.New(), g1, "x", 0o644), unix.ENOTDIR)
	})
	t.Run("missing index entry repaired", func(t *testing.T) {
		g, dg := gfid.New(), gfid.New()
		mustApply(t, r, create(g, gfid.Root, "rep", 0o644), mkdir(dg, gfid.Root, "repd"))
		for _, x := range []gfid.GFID{g, dg} {
			if err := os.Remove(indexPath(root, x)); err != nil {
				t.Fatal(err)
			}
		}
		mustApply(t, r, create(g, gfid.Root, "rep", 0o644), mkdir(dg, gfid.Root, "repd"))
		if lstat(t, indexPath(root, g)).Ino != lstat(t, filepath.Join(root, "rep")).Ino {
			t.Error("file index entry not repaired")
		}
		if got, _ := os.Readlink(indexPath(root, dg)); got != dirLink(gfid.Root, "repd") {
			t.Errorf("dir index entry %q not repaired", got)
		}
	})
}

func TestLink(t *testing.T) {
	r, root := newReplica(t)
	f, d := gfid.New(), gfid.New()
	mustApply(t, r, create(f, gfid.Root, "f", 0o644), mkdir(d, gfid.Root, "d"), link(f, d, "f2"), link(f, gfid.Root, "f3"))
	ino := lstat(t, filepath.Join(root, "f")).Ino
	for _, p := range []string{"d/f2", "f3", indexPath(root, f)} {
		if !filepath.IsAbs(p) {
			p = filepath.Join(root, p)
		}
		if lstat(t, p).Ino != ino {
			t.Errorf("%s is not a hardlink of f", p)
		}
	}
	if st := lstat(t, indexPath(root, f)); st.Nlink != 4 {
		t.Errorf("nlink %d, want 4 (3 names + index)", st.Nlink)
	}
	if a, _ := r.Stat(t.Context(), f); a.Nlink != 3 {
		t.Errorf("Stat nlink %d, want 3", a.Nlink)
	}
	// Data written through the data dir reaches every name.
	if err := os.WriteFile(filepath.Join(r.DataDir(), indexPath(root, f)[len(r.DataDir()):]), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "d/f2")); string(b) != "data" {
		t.Errorf("d/f2 = %q", b)
	}
	before := snapshot(t, root)
	mustApply(t, r, link(f, d, "f2"))
	assertSameTree(t, before, snapshot(t, root))

	applyFail(t, r, link(d, gfid.Root, "dlink"), unix.EPERM)
	if msg := applyFail(t, r, link(d, gfid.Root, "d"), unix.EPERM).Message; !strings.Contains(msg, "LINK to a directory refused") {
		t.Errorf("message %q", msg)
	}
	applyFail(t, r, link(gfid.New(), gfid.Root, "ghost"), unix.ENOENT)
	if f := applyFail(t, r, link(f, gfid.Root, "d"), unix.EEXIST); f.Existing != d {
		t.Errorf("Existing %s, want %s", f.Existing, d)
	}
	assertSameTree(t, before, snapshot(t, root))
}

func TestUnlink(t *testing.T) {
	r, root := newReplica(t)
	f, other, d := gfid.New(), gfid.New(), gfid.New()
	mustApply(t, r, create(f, gfid.Root, "a", 0o644), link(f, gfid.Root, "b"), create(other, gfid.Root, "o", 0o644), mkdir(d, gfid.Root, "d"))

	mustApply(t, r, unlink(f, gfid.Root, "a"))
	if exists(filepath.Join(root, "a")) || !exists(indexPath(root, f)) {
		t.Fatal("after unlinking one of two names: want a gone, index kept")
	}
	mustApply(t, r, unlink(f, gfid.Root, "b"))
	if exists(filepath.Join(root, "b")) || exists(indexPath(root, f)) {
		t.Fatal("after unlinking the last name: want name and index entry gone")
	}
	if _, err := r.Stat(t.Context(), f); !isNotExist(err) {
		t.Errorf("Stat after last unlink = %v, want not-exist", err)
	}
	// Replays and mismatches succeed and change nothing.
	before := snapshot(t, root)
	mustApply(t, r,
		unlink(f, gfid.Root, "b"),          // missing name
		unlink(f, gfid.Root, "o"),          // another gfid: left alone
		unlink(f, gfid.New(), "x"),         // missing parent
		rmdir(gfid.New(), gfid.Root, "d"),  // RMDIR of another gfid: left alone
		rmdir(gfid.New(), gfid.Root, "no"), // missing
	)
	assertSameTree(t, before, snapshot(t, root))
	applyFail(t, r, unlink(d, gfid.Root, "d"), unix.EISDIR)
	applyFail(t, r, rmdir(other, gfid.Root, "o"), unix.ENOTDIR)

	// RMDIR: not empty, then empty.
	c := gfid.New()
	mustApply(t, r, create(c, d, "child", 0o644))
	applyFail(t, r, rmdir(d, gfid.Root, "d"), unix.ENOTEMPTY)
	mustApply(t, r, unlink(c, d, "child"), rmdir(d, gfid.Root, "d"))
	if exists(filepath.Join(root, "d")) || exists(indexPath(root, d)) {
		t.Fatal("after RMDIR: want directory and index entry gone")
	}
	// Recreating a removed gfid works (its index entry went with it).
	mustApply(t, r, mkdir(d, gfid.Root, "d"))
}

func TestRename(t *testing.T) {
	r, root := newReplica(t)
	f, g, d, e, sub := gfid.New(), gfid.New(), gfid.New(), gfid.New(), gfid.New()
	mustApply(t, r,
		mkdir(d, gfid.Root, "d"), mkdir(e, gfid.Root, "e"), mkdir(sub, d, "sub"),
		create(f, d, "f", 0o644), create(g, gfid.Root, "g", 0o644),
	)

	t.Run("file", func(t *testing.T) {
		mustApply(t, r, rename(f, d, "f", e, "f-moved"))
		if exists(filepath.Join(root, "d/f")) || xattrGFID(t, r, filepath.Join(root, "e/f-moved")) != f {
			t.Fatal("file not moved")
		}
		before := snapshot(t, root)
		mustApply(t, r, rename(f, d, "f", e, "f-moved")) // replay
		assertSameTree(t, before, snapshot(t, root))
	})
	t.Run("replace drops the replaced inode's index", func(t *testing.T) {
		mustApply(t, r, rename(f, e, "f-moved", gfid.Root, "g"))
		if xattrGFID(t, r, filepath.Join(root, "g")) != f {
			t.Fatal("g not replaced")
		}
		if exists(indexPath(root, g)) {
			t.Error("index entry of the replaced inode kept")
		}
		if _, err := r.Stat(t.Context(), g); !isNotExist(err) {
			t.Errorf("Stat of replaced gfid: %v", err)
		}
	})
	t.Run("directory rename updates the chain", func(t *testing.T) {
		mustApply(t, r, rename(d, gfid.Root, "d", e, "d-moved"))
		if got, _ := os.Readlink(indexPath(root, d)); got != dirLink(e, "d-moved") {
			t.Errorf("index %q", got)
		}
		// A child directory still resolves through the updated chain.
		c := gfid.New()
		mustApply(t, r, create(c, sub, "c", 0o600))
		if !exists(filepath.Join(root, "e/d-moved/sub/c")) {
			t.Fatal("child created at the wrong place")
		}
		ents, err := r.Entries(t.Context(), d)
		if err != nil || len(ents) != 1 || ents[0].Name != "sub" || ents[0].GFID != sub || ents[0].Type != ops.TypeDir {
			t.Errorf("Entries(d) = %+v, %v", ents, err)
		}
		if a, err := r.Stat(t.Context(), sub); err != nil || a.Type != ops.TypeDir {
			t.Errorf("Stat(sub) = %+v, %v", a, err)
		}
	})
	t.Run("into own subtree refused", func(t *testing.T) {
		before := snapshot(t, root)
		f := applyFail(t, r, rename(d, e, "d-moved", sub, "loop"), unix.EINVAL)
		if !strings.Contains(f.Message, "own subtree") {
			t.Errorf("message %q", f.Message)
		}
		applyFail(t, r, rename(d, e, "d-moved", d, "self"), unix.EINVAL)
		applyFail(t, r, rename(e, gfid.Root, "e", sub, "deep"), unix.EINVAL)
		assertSameTree(t, before, snapshot(t, root))
	})
	t.Run("swap via park", func(t *testing.T) {
		x, y := gfid.New(), gfid.New()
		mustApply(t, r, create(x, gfid.Root, "x", 0o600), mkdir(y, gfid.Root, "y"))
		seq := []ops.Entry{
			rename(x, gfid.Root, "x", gfid.Park, x.String()),
			rename(y, gfid.Root, "y", gfid.Park, y.String()),
			rename(x, gfid.Park, x.String(), gfid.Root, "y"),
			rename(y, gfid.Park, y.String(), gfid.Root, "x"),
		}
		mustApply(t, r, seq...)
		if xattrGFID(t, r, filepath.Join(root, "y")) != x || xattrGFID(t, r, filepath.Join(root, "x")) != y {
			t.Fatal("not swapped")
		}
		if ents, _ := os.ReadDir(filepath.Join(root, ".georep/park")); len(ents) != 0 {
			t.Errorf("park not empty: %v", ents)
		}
		before := snapshot(t, root)
		mustApply(t, r, seq...) // replay converges
		assertSameTree(t, before, snapshot(t, root))
	})
	t.Run("old name gone, gfid elsewhere", func(t *testing.T) {
		h := gfid.New()
		mustApply(t, r, create(h, gfid.Root, "h", 0o600))
		mustApply(t, r, rename(h, gfid.Root, "nothere", e, "h2")) // non-dir: linked
		if lstat(t, filepath.Join(root, "e/h2")).Ino != lstat(t, filepath.Join(root, "h")).Ino {
			t.Error("e/h2 is not a link of h")
		}
		applyFail(t, r, rename(gfid.New(), gfid.Root, "nothere", e, "zz"), unix.ENOENT)
		// A directory is moved from where it is.
		mustApply(t, r, rename(sub, gfid.Root, "nothere", gfid.Root, "sub-top"))
		if xattrGFID(t, r, filepath.Join(root, "sub-top")) != sub || exists(filepath.Join(root, "e/d-moved/sub")) {
			t.Error("directory not moved from its current place")
		}
	})
	t.Run("hardlinks", func(t *testing.T) {
		k := gfid.New()
		mustApply(t, r, create(k, gfid.Root, "k1", 0o600), link(k, gfid.Root, "k2"))
		mustApply(t, r, rename(k, gfid.Root, "k1", gfid.Root, "k2"))
		if exists(filepath.Join(root, "k1")) || !exists(filepath.Join(root, "k2")) {
			t.Error("rename between two hardlinks: want k1 gone, k2 kept")
		}
	})
}

// TestReplay applies a whole sequence twice: the second run must succeed and
// leave the same tree.
func TestReplay(t *testing.T) {
	r, root := newReplica(t)
	d1, d2, d3, f1, f2, s1, p1, x := gfid.New(), gfid.New(), gfid.New(), gfid.New(), gfid.New(), gfid.New(), gfid.New(), gfid.New()
	seq := []ops.Entry{
		mkdir(d1, gfid.Root, "d1"),
		mkdir(d2, d1, "d2"),
		mkdir(d3, gfid.Root, "d3"),
		create(f1, d2, "f1", 0o644),
		link(f1, d1, "f1-link"),
		create(f2, gfid.Root, "f2", 0o600),
		symlink(s1, d1, "s1", "../f2"),
		{Op: ops.OpMknod, GFID: p1, Parent: d3, Name: "pipe", Mode: unix.S_IFIFO | 0o644},
		create(x, gfid.Root, "tmp", 0o600),
		rename(d2, d1, "d2", gfid.Park, d2.String()),
		rename(f2, gfid.Root, "f2", gfid.Park, f2.String()),
		rename(d2, gfid.Park, d2.String(), d3, "d2-new"),
		rename(f2, gfid.Park, f2.String(), d3, "f2-new"),
		unlink(x, gfid.Root, "tmp"),
		rename(s1, d1, "s1", d3, "s1-new"),
		unlink(f1, d1, "f1-link"),
		mkdir(gfid.New(), d3, "empty"),
	}
	mustApply(t, r, seq...)
	first := snapshot(t, root)
	// The second run converges to the same tree. The one entry that fails is
	// the MKDIR of d2, which has been renamed since: a directory gfid that
	// exists at another name is EEXIST by contract (the RENAMEs that follow
	// succeed as already done).
	fails := r.ApplyEntries(t.Context(), seq)
	for _, f := range fails {
		if f.Index != 1 || f.Errno != unix.EEXIST || !strings.Contains(f.Message, "gfid exists at another name") {
			t.Errorf("replay: entry %d: %v %s", f.Index, f.Errno, f.Message)
		}
	}
	if len(fails) != 1 {
		t.Errorf("replay: %d failures, want 1", len(fails))
	}
	assertSameTree(t, first, snapshot(t, root))
	// A third run of the same sequence gives the same tree again.
	_ = r.ApplyEntries(t.Context(), seq)
	assertSameTree(t, first, snapshot(t, root))
	if exists(indexPath(root, x)) {
		t.Error("index entry of an unlinked file kept")
	}
}

func TestHostileInput(t *testing.T) {
	r, root := newReplica(t)
	d, f := gfid.New(), gfid.New()
	mustApply(t, r, mkdir(d, gfid.Root, "d"), create(f, d, "f", 0o644))
	outside := filepath.Dir(root)
	before, beforeOut := snapshot(t, root), snapshot(t, outside)
	long := strings.Repeat("a", 256)
	names := []string{"a/b", "..", ".", "", long, "a\x00b", "/", "../outside", "x/../../outside"}
	makers := []func(name string) ops.Entry{
		func(n string) ops.Entry { return create(gfid.New(), d, n, 0o644) },
		func(n string) ops.Entry { return mkdir(gfid.New(), d, n) },
		func(n string) ops.Entry {
			return ops.Entry{Op: ops.OpMknod, GFID: gfid.New(), Parent: d, Name: n, Mode: unix.S_IFIFO | 0o644}
		},
		func(n string) ops.Entry { return symlink(gfid.New(), d, n, "x") },
		func(n string) ops.Entry { return link(f, gfid.Root, n) },
		func(n string) ops.Entry { return rename(f, d, "f", d, n) },
		func(n string) ops.Entry { return rename(f, d, n, gfid.Root, "ok") },
		func(n string) ops.Entry { return unlink(f, d, n) },
		func(n string) ops.Entry { return rmdir(d, gfid.Root, n) },
	}
	for _, name := range names {
		for _, op := range makers {
			e := op(name)
			t.Run(e.Op.String()+"/"+apply.TruncName(name), func(t *testing.T) {
				applyFail(t, r, e, unix.EINVAL)
			})
		}
	}
	reserved := []ops.Entry{
		mkdir(gfid.New(), gfid.Root, ".georep"),
		create(gfid.New(), gfid.Root, ".georep", 0o644),
		rename(f, d, "f", gfid.Root, ".georep"),
		rename(f, gfid.Root, ".georep", d, "g"),
		rmdir(gfid.Park, gfid.Root, ".georep"),
		unlink(f, gfid.Root, ".georep"),
		rename(gfid.Park, gfid.Root, "nothere", gfid.Root, "park"),
		rename(gfid.Root, gfid.Root, "nothere", d, "root"),
		rmdir(gfid.Park, gfid.Root, "x"),
		mkdir(gfid.Root, d, "root"),
	}
	for _, e := range reserved {
		t.Run("reserved/"+apply.Describe(e), func(t *testing.T) { applyFail(t, r, e, unix.EPERM) })
	}
	invalid := []ops.Entry{
		{Op: 0, GFID: gfid.New(), Parent: d, Name: "x"},
		{Op: 42, GFID: gfid.New(), Parent: d, Name: "x"},
		create(gfid.GFID{}, d, "x", 0o644),
		create(gfid.New(), gfid.GFID{}, "x", 0o644),
		rename(f, d, "f", gfid.GFID{}, "x"),
		{Op: ops.OpCreate, GFID: gfid.New(), Parent: d, Name: "x", Mode: unix.S_IFDIR | 0o755},
		{Op: ops.OpMkdir, GFID: gfid.New(), Parent: d, Name: "x", Mode: unix.S_IFREG | 0o755},
		{Op: ops.OpMknod, GFID: gfid.New(), Parent: d, Name: "x", Mode: unix.S_IFDIR | 0o755},
		{Op: ops.OpMknod, GFID: gfid.New(), Parent: d, Name: "x", Mode: 0o755},
		symlink(gfid.New(), d, "x", ""),
		symlink(gfid.New(), d, "x", "a\x00b"),
		symlink(gfid.New(), d, "x", strings.Repeat("a", 4096)),
	}
	for _, e := range invalid {
		t.Run("invalid/"+apply.Describe(e), func(t *testing.T) { applyFail(t, r, e, unix.EINVAL) })
	}
	if _, err := r.Purge(t.Context(), gfid.Root, ".georep", gfid.GFID{}); err == nil {
		t.Error("Purge of .georep allowed")
	}
	if _, err := r.Purge(t.Context(), d, "..", gfid.GFID{}); err == nil {
		t.Error("Purge of .. allowed")
	}
	if fails := r.ApplyMeta(t.Context(), []ops.Meta{{GFID: gfid.Park, SetMode: true, Mode: 0o777}, {SetMode: true}}); len(fails) != 2 {
		t.Errorf("ApplyMeta of park / zero gfid: %v", fails)
	}
	assertSameTree(t, before, snapshot(t, root))
	assertSameTree(t, beforeOut, snapshot(t, outside))
}

// TestSymlinkSwapEscape replaces a replica directory by a symlink to a
// directory outside the root between two operations: resolving it must fail
// and nothing may be created outside.
func TestSymlinkSwapEscape(t *testing.T) {
	r, root := newReplica(t)
	outside := filepath.Join(filepath.Dir(root), "outside")
	d, f := gfid.New(), gfid.New()
	mustApply(t, r, mkdir(d, gfid.Root, "d"), create(f, d, "f", 0o644))
	if ents, err := r.Entries(t.Context(), d); err != nil || len(ents) != 1 {
		t.Fatalf("Entries(d) = %v, %v", ents, err)
	}
	beforeOut := snapshot(t, outside)

	// Swap d for a symlink, keeping the gfid xattr on the symlink (as root)
	// to make the forgery as convincing as possible.
	if err := os.Rename(filepath.Join(root, "d"), filepath.Join(root, "d-away")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "d")); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := unix.Lsetxattr(filepath.Join(root, "d"), r.s.gfidAttr, d[:], 0); err != nil {
			t.Fatal(err)
		}
	}
	g := gfid.New()
	entries := []ops.Entry{
		create(g, d, "escaped", 0o644),
		mkdir(gfid.New(), d, "escaped-dir"),
		symlink(gfid.New(), d, "escaped-link", "x"),
		rename(f, gfid.Root, "nothere", d, "sentinel"),
		unlink(f, d, "sentinel"),
		rmdir(d, gfid.Root, "d"),
	}
	fails := r.ApplyEntries(t.Context(), entries)
	for _, f := range fails {
		t.Logf("refused as expected: %s (%v)", f.Message, f.Errno)
	}
	if len(fails) < 4 {
		t.Errorf("got %d failures, want the four creating ops refused", len(fails))
	}
	if fails := r.ApplyMeta(t.Context(), []ops.Meta{{GFID: d, SetMode: true, Mode: 0o777, SetXattrs: true, Xattrs: map[string][]byte{"user.x": []byte("1")}}}); len(fails) != 1 {
		t.Errorf("ApplyMeta through swapped dir: %v, want one failure", fails)
	}
	if _, err := r.Entries(t.Context(), d); err == nil {
		t.Error("Entries through a swapped directory succeeded")
	}
	if _, err := r.Purge(t.Context(), d, "sentinel", gfid.GFID{}); err == nil {
		t.Error("Purge through a swapped directory succeeded")
	}
	if err := r.SetXtime(t.Context(), d, gfid.New().String(), 1, 2); err == nil {
		t.Error("SetXtime through a swapped directory succeeded")
	}
	assertSameTree(t, beforeOut, snapshot(t, outside))
	if exists(indexPath(root, g)) {
		t.Error("index entry created for the refused CREATE")
	}
}

func TestDirectoryChainStale(t *testing.T) {
	r, root := newReplica(t)
	d, sub := gfid.New(), gfid.New()
	mustApply(t, r, mkdir(d, gfid.Root, "d"), mkdir(sub, d, "sub"))
	// Rename behind georep's back: the chain no longer leads to d.
	if err := os.Rename(filepath.Join(root, "d"), filepath.Join(root, "elsewhere")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Stat(t.Context(), sub); !isNotExist(err) {
		t.Errorf("Stat through a stale chain = %v, want not-exist", err)
	}
	f := applyFail(t, r, create(gfid.New(), sub, "x", 0o644), unix.ESTALE)
	t.Log(f.Message)
	// Another directory with a forged name at the chain's place is not d.
	if err := os.Mkdir(filepath.Join(root, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	applyFail(t, r, create(gfid.New(), d, "x", 0o644), unix.ESTALE)
	if exists(filepath.Join(root, "d", "x")) {
		t.Error("created in a directory that does not carry the gfid")
	}
}

func TestChainLoop(t *testing.T) {
	r, root := newReplica(t)
	a, b := gfid.New(), gfid.New()
	mustApply(t, r, mkdir(a, gfid.Root, "a"), mkdir(b, a, "b"))
	// Corrupt the index: a's parent is b.
	if err := os.Remove(indexPath(root, a)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dirLink(b, "a"), indexPath(root, a)); err != nil {
		t.Fatal(err)
	}
	f := applyFail(t, r, create(gfid.New(), b, "x", 0o644), unix.ELOOP)
	t.Log(f.Message)
}

func TestCanceled(t *testing.T) {
	r, _ := newReplica(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	fails := r.ApplyEntries(ctx, []ops.Entry{mkdir(gfid.New(), gfid.Root, "a"), mkdir(gfid.New(), gfid.Root, "b")})
	if len(fails) != 2 || fails[0].Errno != syscall.ECANCELED {
		t.Fatalf("failures %v, want two ECANCELED", fails)
	}
}
