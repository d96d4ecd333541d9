package crawl

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/master/catalog"
	"github.com/georep/georep/master/glusterfs"
	"github.com/georep/georep/rpc/gfid"
)

// fakeBrick lays out a directory the way a GlusterFS brick looks: every
// inode with trusted.gfid, a .glusterfs directory, a DHT link file.
func fakeBrick(t *testing.T) (dir string, gfids map[string]gfid.GFID) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("brick mode reads trusted.* xattrs: needs root")
	}
	dir = t.TempDir()
	setGFID := func(rel string, g gfid.GFID) {
		if err := unix.Lsetxattr(filepath.Join(dir, rel), brickGFIDXattr, g[:], 0); err != nil {
			t.Skipf("trusted.* xattrs not supported here: %v", err)
		}
	}
	setGFID(".", gfid.Root)
	gfids = map[string]gfid.GFID{}
	for _, d := range []string{"d", "d/e", ".glusterfs", ".glusterfs/ab"} {
		must(t, os.Mkdir(filepath.Join(dir, d), 0o755))
	}
	write(t, filepath.Join(dir, "d/f"), "data")
	write(t, filepath.Join(dir, "top"), "x")
	must(t, os.Link(filepath.Join(dir, "top"), filepath.Join(dir, "d/e/hard")))
	must(t, os.Symlink("../top", filepath.Join(dir, "d/s")))
	for _, rel := range []string{"d", "d/e", "d/f", "top", "d/s"} {
		g := gfid.New()
		gfids[rel] = g
		setGFID(rel, g)
	}
	// A DHT link file: the data lives on another brick.
	write(t, filepath.Join(dir, "d/linkto"), "")
	must(t, os.Chmod(filepath.Join(dir, "d/linkto"), os.ModeSticky))
	setGFID("d/linkto", gfid.New())
	must(t, unix.Lsetxattr(filepath.Join(dir, "d/linkto"), glusterfs.LinktoXattr, []byte("vol-client-1\x00"), 0))
	// Created, but GlusterFS has not given it a gfid yet.
	write(t, filepath.Join(dir, "d/nogfid"), "y")
	return dir, gfids
}

func TestBrickHybridUsesTheBricksGFIDs(t *testing.T) {
	brick, gfids := fakeBrick(t)
	cat, err := catalog.Open(filepath.Join(t.TempDir(), "catalog.db"))
	must(t, err)
	defer cat.Close()
	cfg := Config{Source: brick, ChangelogDir: t.TempDir(), Brick: true}
	res, err := Hybrid(t.Context(), cfg, cat, slog.New(slog.DiscardHandler))
	must(t, err)
	snap := res.Snapshot
	for rel, want := range gfids {
		n, ok := snap.Lookup(want)
		if !ok {
			t.Errorf("%s: gfid %s not in the snapshot", rel, want)
			continue
		}
		if p, _ := snap.Path(want); rel != "d/e/hard" && p != filepath.Join(brick, rel) && !(rel == "top" && len(n.Links) == 2) {
			t.Errorf("%s: path %s", rel, p)
		}
	}
	if n, _ := snap.Lookup(gfids["top"]); len(n.Links) != 2 {
		t.Errorf("hardlinked file has %d links, want 2", len(n.Links))
	}
	root := snap.Children(gfid.Root)
	if _, ok := root[".glusterfs"]; ok {
		t.Error(".glusterfs crawled")
	}
	d := snap.Children(gfids["d"])
	for _, name := range []string{"linkto", "nogfid"} {
		if _, ok := d[name]; ok {
			t.Errorf("d/%s crawled", name)
		}
	}
	if got, want := snap.Len(), len(gfids)+1; got != want {
		t.Errorf("%d gfids crawled, want %d", got, want)
	}
	must(t, res.Commit(cat, nil, nil))

	// The catalog holds the brick's gfids: a rename is a rename, and the
	// scoped crawl knows the directories.
	must(t, os.Rename(filepath.Join(brick, "d/f"), filepath.Join(brick, "d/e/f2")))
	res, err = Hybrid(t.Context(), cfg, cat, slog.New(slog.DiscardHandler))
	must(t, err)
	renames := 0
	for _, r := range res.Records {
		if r.GFID == gfids["d/f"] && r.Fop == "RENAME" {
			renames++
		}
	}
	if renames == 0 || res.Stats.New != 0 {
		t.Errorf("rename of d/f: %d RENAME records, %d new gfids; records %+v", renames, res.Stats.New, res.Records)
	}
}
