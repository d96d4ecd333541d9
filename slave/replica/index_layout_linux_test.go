package replica

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
	"github.com/georep/georep/slave/apply"
)

// allTypes creates one inode of every type the caller may create beneath
// parent (devices only as root) and returns their gfids by type.
func allTypes(t *testing.T, r *Replica, parent gfid.GFID, prefix string) map[ops.FileType]gfid.GFID {
	t.Helper()
	gs := map[ops.FileType]gfid.GFID{}
	entries := []ops.Entry{}
	add := func(typ ops.FileType, e ops.Entry) {
		e.GFID, e.Parent, e.Name = gfid.New(), parent, prefix+typ.String()
		gs[typ] = e.GFID
		entries = append(entries, e)
	}
	add(ops.TypeRegular, ops.Entry{Op: ops.OpCreate, Mode: unix.S_IFREG | 0o644})
	add(ops.TypeDir, ops.Entry{Op: ops.OpMkdir, Mode: unix.S_IFDIR | 0o755})
	add(ops.TypeSymlink, ops.Entry{Op: ops.OpSymlink, Target: "/etc/passwd"})
	add(ops.TypeFifo, ops.Entry{Op: ops.OpMknod, Mode: unix.S_IFIFO | 0o644})
	add(ops.TypeSocket, ops.Entry{Op: ops.OpMknod, Mode: unix.S_IFSOCK | 0o644})
	if os.Geteuid() == 0 {
		add(ops.TypeChar, ops.Entry{Op: ops.OpMknod, Mode: unix.S_IFCHR | 0o644, Rdev: unix.Mkdev(1, 3)})
		add(ops.TypeBlock, ops.Entry{Op: ops.OpMknod, Mode: unix.S_IFBLK | 0o644, Rdev: unix.Mkdev(7, 200)})
	}
	mustApply(t, r, entries...)
	return gs
}

// assertIndexPlace checks that g's index entry is in the tree for its type
// and only there.
func assertIndexPlace(t *testing.T, root string, typ ops.FileType, g gfid.GFID) {
	t.Helper()
	inData, inLinks := exists(dataPath(root, g)), exists(linksPath(root, g))
	if typ == ops.TypeRegular {
		if !inData || inLinks {
			t.Errorf("%s %s: in data tree %v, in links tree %v; want the data tree only", typ, g, inData, inLinks)
		}
		return
	}
	if inData || !inLinks {
		t.Errorf("%s %s: in data tree %v, in links tree %v; want the links tree only", typ, g, inData, inLinks)
	}
	st := lstat(t, linksPath(root, g))
	switch {
	case typ == ops.TypeDir && !apply.IsLinkMode(st.Mode):
		t.Errorf("directory %s: index entry mode %o, want a symlink", g, st.Mode)
	case typ != ops.TypeDir && ops.TypeOfMode(st.Mode) != typ:
		t.Errorf("%s %s: index entry is a %s", typ, g, ops.TypeOfMode(st.Mode))
	}
}

// TestIndexTrees creates, links, renames, replays and removes every type and
// checks after each step that the data tree (DataDir) holds only shard
// directories and regular files, and that every gfid still resolves.
func TestIndexTrees(t *testing.T) {
	r, root := newReplica(t)
	assertDataDirRegularOnly(t, r)
	top := allTypes(t, r, gfid.Root, "top-")
	sub := allTypes(t, r, top[ops.TypeDir], "sub-")
	assertDataDirRegularOnly(t, r)
	for _, m := range []map[ops.FileType]gfid.GFID{top, sub} {
		for typ, g := range m {
			assertIndexPlace(t, root, typ, g)
			a, err := r.Stat(t.Context(), g)
			if err != nil || a.Type != typ {
				t.Errorf("Stat(%s %s) = %+v, %v", typ, g, a, err)
			}
		}
	}
	for _, g := range []gfid.GFID{gfid.Root, gfid.Park} {
		if got, err := os.Readlink(linksPath(root, g)); err != nil || got == "" || exists(dataPath(root, g)) {
			t.Errorf("fixed entry of %s: %q, %v; want a symlink in the links tree only", g, got, err)
		}
	}

	// Hardlinks of every non-directory, then renames across directories.
	var more []ops.Entry
	for typ, g := range sub {
		if typ == ops.TypeDir {
			continue
		}
		more = append(more, link(g, gfid.Root, "hl-"+typ.String()))
	}
	mustApply(t, r, more...)
	other := gfid.New()
	mustApply(t, r, mkdir(other, gfid.Root, "other"))
	more = more[:0]
	for typ, g := range top {
		more = append(more, rename(g, gfid.Root, "top-"+typ.String(), other, "moved-"+typ.String()))
	}
	mustApply(t, r, more...)
	// Replays converge and change nothing.
	before := snapshot(t, root)
	mustApply(t, r, more...)
	assertSameTree(t, before, snapshot(t, root))
	assertDataDirRegularOnly(t, r)
	for typ, g := range top {
		assertIndexPlace(t, root, typ, g)
		a, err := r.Stat(t.Context(), g)
		if err != nil || a.Type != typ {
			t.Errorf("after rename: Stat(%s %s) = %+v, %v", typ, g, a, err)
		}
	}
	for typ, g := range sub {
		if typ == ops.TypeDir {
			continue
		}
		if a, err := r.Stat(t.Context(), g); err != nil || a.Nlink != 2 {
			t.Errorf("%s with a second name: Stat = %+v, %v; want nlink 2", typ, a, err)
		}
	}
	// Chains through a moved directory resolve.
	if ents, err := r.Entries(t.Context(), top[ops.TypeDir]); err != nil || len(ents) != len(sub) {
		t.Errorf("Entries(moved dir) = %v, %v", ents, err)
	}
	if err := r.SetXtime(t.Context(), top[ops.TypeDir], gfid.New().String(), 1, 2); err != nil {
		t.Errorf("SetXtime on a moved directory: %v", err)
	}

	// Unlink every name of the non-directories of sub: their entries go.
	more = more[:0]
	for typ, g := range sub {
		if typ == ops.TypeDir {
			continue
		}
		more = append(more, unlink(g, top[ops.TypeDir], "sub-"+typ.String()), unlink(g, gfid.Root, "hl-"+typ.String()))
	}
	mustApply(t, r, more...)
	for typ, g := range sub {
		if typ != ops.TypeDir && (exists(dataPath(root, g)) || exists(linksPath(root, g))) {
			t.Errorf("%s %s: index entry left after its last name went", typ, g)
		}
	}
	// Purge the whole subtree: every entry goes, in both trees.
	if ents, err := r.Entries(t.Context(), sub[ops.TypeDir]); err != nil || len(ents) != 0 {
		t.Errorf("Entries(dir in a moved dir) = %v, %v", ents, err)
	}
	if _, err := r.Purge(t.Context(), gfid.Root, "other", gfid.GFID{}); err != nil {
		t.Fatal(err)
	}
	for typ, g := range top {
		if os.Geteuid() != 0 && typ != ops.TypeRegular && typ != ops.TypeDir {
			continue // documented: as non-root Purge cannot find their index links
		}
		if exists(dataPath(root, g)) || exists(linksPath(root, g)) {
			t.Errorf("%s %s: index entry left after purge", typ, g)
		}
	}
	assertDataDirRegularOnly(t, r)
}

// TestIndexStaleAcrossTrees: a stale entry of a gfid in the tree of another
// type is replaced when the name holding the gfid is replayed, so a gfid never
// has entries in both trees.
func TestIndexStaleAcrossTrees(t *testing.T) {
	r, root := newReplica(t)
	d, fifo, f := gfid.New(), gfid.New(), gfid.New()
	fifoEntry := ops.Entry{Op: ops.OpMknod, GFID: fifo, Parent: gfid.Root, Name: "fifo", Mode: unix.S_IFIFO | 0o644}
	mustApply(t, r, mkdir(d, gfid.Root, "d"), fifoEntry, create(f, gfid.Root, "f", 0o644))

	orphan := func(g gfid.GFID) {
		t.Helper()
		if err := os.Remove(indexPath(root, g)); err != nil {
			t.Fatal(err)
		}
		p := dataPath(root, g)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("stale orphan"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// As non-root a fifo carries no gfid attribute: only its index entry
	// identifies it, so a lost entry cannot be repaired from the name.
	asRoot := os.Geteuid() == 0
	// A directory and a fifo whose entries were replaced by orphan regular files.
	orphan(d)
	if asRoot {
		orphan(fifo)
	}
	if _, err := r.Entries(t.Context(), d); err == nil {
		t.Fatal("Entries through a regular-file entry succeeded")
	}
	mustApply(t, r, mkdir(d, gfid.Root, "d"), fifoEntry)
	assertIndexPlace(t, root, ops.TypeDir, d)
	assertIndexPlace(t, root, ops.TypeFifo, fifo)
	if _, err := r.Entries(t.Context(), d); err != nil {
		t.Errorf("Entries after repair: %v", err)
	}
	// A regular file whose entry was replaced by a dangling directory pointer.
	if err := os.Remove(dataPath(root, f)); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(linksPath(root, f)), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dirLink(gfid.Root, "gone"), linksPath(root, f)); err != nil {
		t.Fatal(err)
	}
	mustApply(t, r, create(f, gfid.Root, "f", 0o644))
	assertIndexPlace(t, root, ops.TypeRegular, f)
	assertDataDirRegularOnly(t, r)
	if !asRoot {
		return
	}
	// A symlink or fifo in the data tree is never taken for an index entry.
	if err := os.Remove(linksPath(root, fifo)); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(dataPath(root, fifo), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Stat(t.Context(), fifo); err == nil {
		t.Error("Stat found a fifo in the data tree")
	}
	mustApply(t, r, fifoEntry) // the name holds the gfid: the index is repaired
	assertIndexPlace(t, root, ops.TypeFifo, fifo)
	assertDataDirRegularOnly(t, r)
}
