package replica

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

func TestStatEntries(t *testing.T) {
	r, root := newReplica(t)
	d, f, s := gfid.New(), gfid.New(), gfid.New()
	mustApply(t, r, mkdir(d, gfid.Root, "d"), create(f, d, "f", 0o640), symlink(s, gfid.Root, "s", "d/f"))
	if err := os.WriteFile(filepath.Join(root, "foreign"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Stat(t.Context(), gfid.New()); !isNotExist(err) {
		t.Errorf("Stat of unknown gfid = %v, want fs.ErrNotExist", err)
	}
	if _, err := r.Stat(t.Context(), gfid.GFID{}); err == nil {
		t.Error("Stat of zero gfid succeeded")
	}
	a, err := r.Stat(t.Context(), gfid.Root)
	if err != nil || a.Type != ops.TypeDir {
		t.Errorf("Stat(root) = %+v, %v", a, err)
	}
	if err := os.WriteFile(filepath.Join(root, "d/f"), []byte("hello"), 0o640); err != nil {
		t.Fatal(err)
	}
	mt := time.Date(2020, 1, 2, 3, 4, 5, 6000, time.UTC)
	if err := os.Chtimes(filepath.Join(root, "d/f"), mt, mt); err != nil {
		t.Fatal(err)
	}
	a, err = r.Stat(t.Context(), f)
	if err != nil || a.Type != ops.TypeRegular || a.Size != 5 || a.Mode != unix.S_IFREG|0o640 || !a.Mtime.Equal(mt) || a.Nlink != 1 {
		t.Errorf("Stat(f) = %+v, %v", a, err)
	}
	if a, err := r.Stat(t.Context(), s); err != nil || a.Type != ops.TypeSymlink || a.Target != "d/f" {
		t.Errorf("Stat(s) = %+v, %v", a, err)
	}

	ents, err := r.Entries(t.Context(), gfid.Root)
	if err != nil {
		t.Fatal(err)
	}
	want := []ops.DirEntry{{Name: "d", GFID: d, Type: ops.TypeDir}, {Name: "foreign", Type: ops.TypeRegular}, {Name: "s", GFID: s, Type: ops.TypeSymlink}}
	if os.Geteuid() != 0 {
		want[2].GFID = gfid.GFID{} // as non-root a symlink carries no user.* gfid attribute
	}
	if !slices.Equal(ents, want) {
		t.Errorf("Entries(root) = %+v, want %+v (never .georep)", ents, want)
	}
	park, err := r.Entries(t.Context(), gfid.Park)
	if err != nil || len(park) != 0 {
		t.Errorf("Entries(park) = %v, %v", park, err)
	}
	if _, err := r.Entries(t.Context(), f); err == nil {
		t.Error("Entries of a file succeeded")
	}
	if _, err := r.Entries(t.Context(), gfid.New()); !isNotExist(err) {
		t.Errorf("Entries of unknown gfid = %v", err)
	}
}

func TestPurge(t *testing.T) {
	r, root := newReplica(t)
	top, sub, f1, f2, f3, s := gfid.New(), gfid.New(), gfid.New(), gfid.New(), gfid.New(), gfid.New()
	mustApply(t, r,
		mkdir(top, gfid.Root, "top"), mkdir(sub, top, "sub"),
		create(f1, top, "f1", 0o644), create(f2, sub, "f2", 0o644), link(f2, sub, "f2b"),
		create(f3, sub, "f3", 0o644), link(f3, gfid.Root, "f3-outside-purge"),
		symlink(s, sub, "s", "/"),
		ops.Entry{Op: ops.OpMknod, GFID: gfid.New(), Parent: sub, Name: "fifo", Mode: unix.S_IFIFO | 0o600},
	)
	if err := os.WriteFile(filepath.Join(root, "top/sub/foreign"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("only mismatch leaves it", func(t *testing.T) {
		n, err := r.Purge(t.Context(), gfid.Root, "top", sub)
		if err != nil || n != 0 || !exists(filepath.Join(root, "top")) {
			t.Fatalf("Purge with other gfid = %d, %v", n, err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		if n, err := r.Purge(t.Context(), gfid.Root, "nothere", gfid.GFID{}); err != nil || n != 0 {
			t.Fatalf("Purge of missing name = %d, %v", n, err)
		}
		if _, err := r.Purge(t.Context(), gfid.New(), "x", gfid.GFID{}); !isNotExist(err) {
			t.Fatalf("Purge in unknown parent = %v", err)
		}
	})
	t.Run("recursive", func(t *testing.T) {
		n, err := r.Purge(t.Context(), gfid.Root, "top", top)
		if err != nil {
			t.Fatal(err)
		}
		// top, sub, f1, f2 (two names, one inode), s, fifo, foreign; f3 keeps a name.
		want, dropped := uint64(7), []gfid.GFID{top, sub, f1, f2, s}
		if os.Geteuid() != 0 {
			// As non-root the symlink and the fifo carry no gfid attribute, so
			// purge cannot find (and drop) their index links.
			want, dropped = 5, dropped[:4]
		}
		if n != want {
			t.Errorf("removed %d inodes, want %d", n, want)
		}
		if exists(filepath.Join(root, "top")) {
			t.Fatal("top still there")
		}
		for _, g := range dropped {
			if exists(indexPath(root, g)) {
				t.Errorf("index entry of %s kept", g)
			}
		}
		if !exists(indexPath(root, f3)) {
			t.Error("index entry of f3, which keeps a name, dropped")
		}
		if a, err := r.Stat(t.Context(), f3); err != nil || a.Nlink != 1 {
			t.Errorf("Stat(f3) = %+v, %v", a, err)
		}
		if !exists(filepath.Join(root, "..", "outside", "sentinel")) {
			t.Error("sentinel outside the root removed")
		}
	})
	t.Run("file", func(t *testing.T) {
		n, err := r.Purge(t.Context(), gfid.Root, "f3-outside-purge", gfid.GFID{})
		if err != nil || n != 1 || exists(indexPath(root, f3)) {
			t.Fatalf("Purge of a file = %d, %v", n, err)
		}
	})
}

func TestXtime(t *testing.T) {
	r, _ := newReplica(t)
	f, d := gfid.New(), gfid.New()
	mustApply(t, r, create(f, gfid.Root, "f", 0o644), mkdir(d, gfid.Root, "d"))
	vol := gfid.New().String()
	for _, g := range []gfid.GFID{gfid.Root, d, f} {
		if _, _, ok, err := r.Xtime(t.Context(), g, vol); err != nil || ok {
			t.Fatalf("Xtime before set: ok=%v err=%v", ok, err)
		}
		if err := r.SetXtime(t.Context(), g, vol, 1700000000, 123456789); err != nil {
			t.Fatal(err)
		}
		sec, nsec, ok, err := r.Xtime(t.Context(), g, vol)
		if err != nil || !ok || sec != 1700000000 || nsec != 123456789 {
			t.Fatalf("Xtime = %d.%d ok=%v err=%v", sec, nsec, ok, err)
		}
	}
	if err := r.SetXtime(t.Context(), f, "not-a-uuid", 1, 0); err == nil {
		t.Error("SetXtime with a bad volume id succeeded")
	}
	if err := r.SetXtime(t.Context(), f, vol, 1, 1e9); err == nil {
		t.Error("SetXtime with nsec out of range succeeded")
	}
	if err := r.SetXtime(t.Context(), gfid.New(), vol, 1, 0); !isNotExist(err) {
		t.Errorf("SetXtime of unknown gfid = %v", err)
	}
	// The raw attribute: 8+4 bytes big endian.
	buf := make([]byte, 64)
	n, err := unix.Getxattr(r.Root(), r.s.ns+".georep."+vol+".xtime", buf)
	if err != nil || !bytes.Equal(buf[:n], []byte{0, 0, 0, 0, 0x65, 0x53, 0xf1, 0x00, 0x07, 0x5b, 0xcd, 0x15}) {
		t.Errorf("raw xtime %x, %v", buf[:n], err)
	}
}

func TestApplyMeta(t *testing.T) {
	r, root := newReplica(t)
	f, d, s, p := gfid.New(), gfid.New(), gfid.New(), gfid.New()
	mustApply(t, r, create(f, gfid.Root, "f", 0o644), mkdir(d, gfid.Root, "d"), symlink(s, gfid.Root, "s", "f"),
		ops.Entry{Op: ops.OpMknod, GFID: p, Parent: gfid.Root, Name: "p", Mode: unix.S_IFIFO | 0o644})
	if err := unix.Setxattr(filepath.Join(root, "f"), "user.old", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(filepath.Join(root, "f"), "user.keep", []byte("old"), 0); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2001, 2, 3, 4, 5, 6, 7000, time.UTC)
	mt := time.Date(2002, 3, 4, 5, 6, 7, 8000, time.UTC)
	uid := uint32(os.Geteuid())
	if uid == 0 {
		uid = 1234
	}
	metas := []ops.Meta{
		{GFID: f, SetOwner: true, UID: uid, GID: uint32(os.Getegid()), SetMode: true, Mode: 0o4755, Mtime: &mt, Atime: &at,
			SetXattrs: true, Xattrs: map[string][]byte{"user.keep": []byte("new"), "user.add": []byte("2")}},
		{GFID: d, SetMode: true, Mode: 0o1777, Mtime: &mt, Atime: &at},
		{GFID: s, SetOwner: true, UID: uid, GID: uint32(os.Getegid()), SetMode: true, Mode: 0o600, Mtime: &mt, SetXattrs: true, Xattrs: map[string][]byte{"user.x": nil}},
		{GFID: p, SetMode: true, Mode: 0o2640},
		{GFID: gfid.Root, Mtime: &mt},
		{GFID: gfid.New(), SetMode: true},                                                           // unknown
		{GFID: f, SetXattrs: true, Xattrs: map[string][]byte{"trusted.evil": []byte("1")}},          // outside user.*
		{GFID: d, SetXattrs: true, Xattrs: map[string][]byte{"security.capability": []byte("1")}},   // outside user.*
		{GFID: d, SetXattrs: true, Xattrs: map[string][]byte{"user.": []byte("1"), "user.ok": nil}}, // empty suffix
	}
	fails := r.ApplyMeta(t.Context(), metas)
	var idx []int
	for _, f := range fails {
		t.Logf("failure %d: %v %s", f.Index, f.Errno, f.Message)
		idx = append(idx, f.Index)
	}
	if !slices.Equal(idx, []int{5, 6, 7, 8}) {
		t.Fatalf("failed indexes %v, want [5 6 7 8]", idx)
	}
	if fails[0].Errno != unix.ENOENT || fails[1].Errno != unix.EINVAL {
		t.Errorf("errnos %v %v", fails[0].Errno, fails[1].Errno)
	}

	st := lstat(t, filepath.Join(root, "f"))
	if st.Mode&0o7777 != 0o4755 || st.Uid != uid {
		t.Errorf("f: mode %o owner %d:%d", st.Mode&0o7777, st.Uid, st.Gid)
	}
	if st.Mtim != unix.NsecToTimespec(mt.UnixNano()) || st.Atim != unix.NsecToTimespec(at.UnixNano()) {
		t.Errorf("f: times %v %v", st.Atim, st.Mtim)
	}
	xs := map[string]string{}
	buf := make([]byte, 1024)
	n, _ := unix.Listxattr(filepath.Join(root, "f"), buf)
	for _, name := range bytes.Split(buf[:n], []byte{0}) {
		if len(name) == 0 {
			continue
		}
		v := make([]byte, 64)
		m, _ := unix.Getxattr(filepath.Join(root, "f"), string(name), v)
		xs[string(name)] = string(v[:m])
	}
	if xs["user.keep"] != "new" || xs["user.add"] != "2" {
		t.Errorf("user xattrs %v", xs)
	}
	if _, ok := xs["user.old"]; ok {
		t.Error("user.old not removed")
	}
	if xattrGFID(t, r, filepath.Join(root, "f")) != f {
		t.Error("gfid attribute lost")
	}

	st = lstat(t, filepath.Join(root, "d"))
	if st.Mode&0o7777 != 0o1777 || st.Mtim != unix.NsecToTimespec(mt.UnixNano()) || st.Atim != unix.NsecToTimespec(at.UnixNano()) {
		t.Errorf("d: mode %o mtime %v atime %v", st.Mode&0o7777, st.Mtim, st.Atim)
	}
	st = lstat(t, filepath.Join(root, "s"))
	if st.Uid != uid || st.Mtim != unix.NsecToTimespec(mt.UnixNano()) {
		t.Errorf("s: uid %d mtime %v (the link's own)", st.Uid, st.Mtim)
	}
	if st := lstat(t, filepath.Join(root, "f")); st.Mode&0o7777 != 0o4755 {
		t.Error("chmod of the symlink followed it")
	}
	if st := lstat(t, filepath.Join(root, "p")); st.Mode&0o7777 != 0o2640 {
		t.Errorf("p: mode %o", st.Mode&0o7777)
	}
	if st := lstat(t, root); st.Mtim != unix.NsecToTimespec(mt.UnixNano()) {
		t.Errorf("root mtime %v", st.Mtim)
	}
}

func TestApplyMetaSetuidAfterChown(t *testing.T) {
	requireRoot(t)
	r, root := newReplica(t)
	d := gfid.New()
	mustApply(t, r, ops.Entry{Op: ops.OpMkdir, GFID: d, Parent: gfid.Root, Name: "d", Mode: unix.S_IFDIR | 0o2775, UID: 1000, GID: 1000})
	fails := r.ApplyMeta(t.Context(), []ops.Meta{{GFID: d, SetOwner: true, UID: 2000, GID: 2000, SetMode: true, Mode: 0o6755}})
	if len(fails) != 0 {
		t.Fatal(fails)
	}
	if st := lstat(t, filepath.Join(root, "d")); st.Mode&0o7777 != 0o6755 || st.Uid != 2000 {
		t.Errorf("mode %o uid %d", st.Mode&0o7777, st.Uid)
	}
}
