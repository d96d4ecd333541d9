package catalog

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/georep/georep/rpc/gfid"
)

func open(t testing.TB, path string) *Catalog {
	t.Helper()
	c, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestIdentifyIsDurableAndStable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	c := open(t, path)
	keys := []Key{{1, 100}, {2, 200}, {1, 101}, {2, 200}}
	gs, fresh, err := c.Identify(keys)
	if err != nil {
		t.Fatal(err)
	}
	if fresh != 3 {
		t.Fatalf("fresh = %d, want 3", fresh)
	}
	if gs[1] != gs[3] || gs[0] == gs[2] || gs[0] == gs[1] {
		t.Fatalf("gfids %v: same key must give the same gfid, different keys different ones", gs)
	}
	c.Close()

	c = open(t, path)
	again, fresh, err := c.Identify(keys[:3])
	if err != nil || fresh != 0 || !reflect.DeepEqual(again, gs[:3]) {
		t.Fatalf("after reopen: %v fresh=%d err=%v, want %v", again, fresh, err, gs[:3])
	}
	n := 0
	c.ForEachIdentity(func(Key, gfid.GFID) error { n++; return nil })
	if n != 3 {
		t.Fatalf("%d identities, want 3", n)
	}

	// A deleted gfid's key is forgotten: the inode (if it came back) gets a new gfid.
	if err := c.Commit(nil, []gfid.GFID{gs[0]}); err != nil {
		t.Fatal(err)
	}
	g, fresh, _ := c.Identify(keys[:1])
	if fresh != 1 || g[0] == gs[0] {
		t.Fatalf("deleted identity reused: %v fresh=%d", g, fresh)
	}

	// Reassign replaces the mapping; committing the old gfid as deleted keeps the new one.
	ng, err := c.Reassign(keys[1])
	if err != nil || ng == gs[1] {
		t.Fatalf("Reassign = %v, %v", ng, err)
	}
	if err := c.Commit(nil, []gfid.GFID{gs[1]}); err != nil {
		t.Fatal(err)
	}
	if g, fresh, _ := c.Identify(keys[1:2]); fresh != 0 || g[0] != ng {
		t.Fatalf("after reassign: %v fresh=%d, want %v", g, fresh, ng)
	}
}

func TestCommitNamespace(t *testing.T) {
	c := open(t, filepath.Join(t.TempDir(), "catalog.db"))
	d, f, s := gfid.New(), gfid.New(), gfid.New()
	name := "new\nline \xff" + string(make([]byte, 0))
	nodes := []Node{
		{GFID: gfid.Root, Type: TypeDir, Mode: 0o40755},
		{GFID: d, Type: TypeDir, Mode: 0o40700, UID: 1, GID: 2, MtimeNs: 5, CtimeNs: 6, Links: []Link{{gfid.Root, "d"}}},
		{GFID: f, Type: TypeReg, Mode: 0o100644, Size: 1 << 40, MtimeNs: -7, Links: []Link{{d, name}, {gfid.Root, "hard"}}, XattrHash: []byte{1, 2, 3}},
		{GFID: s, Type: TypeSymlink, Mode: 0o120777, Target: "../x\x00y", Links: []Link{{gfid.Root, "s"}}},
	}
	if err := c.Commit(nodes, nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range nodes {
		got, ok, err := c.Node(want.GFID)
		if err != nil || !ok || !reflect.DeepEqual(got, want) || !got.Equal(&want) {
			t.Fatalf("Node(%v) = %+v %v %v, want %+v", want.GFID, got, ok, err, want)
		}
	}
	if g, ok, _ := c.Lookup(d, name); !ok || g != f {
		t.Fatalf("Lookup(d, name) = %v %v", g, ok)
	}
	kids, err := c.Children(gfid.Root)
	if err != nil || !reflect.DeepEqual(kids, map[string]gfid.GFID{"d": d, "hard": f, "s": s}) {
		t.Fatalf("Children(root) = %v %v", kids, err)
	}

	// Rename f's second link, delete s, and put a new gfid at "s".
	n2 := gfid.New()
	f2 := nodes[2]
	f2.Links = []Link{{d, name}, {gfid.Root, "hard2"}}
	if err := c.Commit([]Node{f2, {GFID: n2, Type: TypeFifo, Mode: 0o10644, Links: []Link{{gfid.Root, "s"}}}}, []gfid.GFID{s}); err != nil {
		t.Fatal(err)
	}
	kids, _ = c.Children(gfid.Root)
	if !reflect.DeepEqual(kids, map[string]gfid.GFID{"d": d, "hard2": f, "s": n2}) {
		t.Fatalf("after commit Children(root) = %v", kids)
	}
	if _, ok, _ := c.Node(s); ok {
		t.Fatal("deleted node still present")
	}
	count := 0
	c.ForEachNode(func(n Node) error { count++; return nil })
	if count != 4 {
		t.Fatalf("%d nodes, want 4", count)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "missing", "catalog.db")); err == nil {
		t.Fatal("Open in a missing directory succeeded")
	}
	if _, err := Open("/proc/georep-catalog.db"); err == nil {
		t.Fatal("Open in /proc succeeded")
	}
	if os.Geteuid() != 0 {
		dir := t.TempDir()
		os.Chmod(dir, 0o500)
		defer os.Chmod(dir, 0o700)
		if _, err := Open(filepath.Join(dir, "catalog.db")); err == nil {
			t.Fatal("Open in a read-only directory succeeded")
		}
	}
	// A second open of the same catalog fails on the store's lock instead
	// of hanging, in this process or another.
	path := filepath.Join(t.TempDir(), "catalog.db")
	open(t, path)
	if c, err := Open(path); err == nil {
		c.Close()
		t.Fatal("second Open of a locked catalog succeeded")
	}
	// A file that is not a bbolt database (a schema-1 catalog) is not
	// migrated, and stays.
	junk := filepath.Join(t.TempDir(), "junk.db")
	os.WriteFile(junk, []byte("not a database, definitely not one at all............................"), 0o600)
	if c, err := Open(junk); err == nil {
		c.Close()
		t.Fatal("Open of junk succeeded")
	}
	if b, err := os.ReadFile(junk); err != nil || len(b) == 0 {
		t.Fatalf("junk after Open: %q, %v", b, err)
	}
	// A directory that is not a store.
	empty := filepath.Join(t.TempDir(), "empty.db")
	os.Mkdir(empty, 0o700)
	if c, err := Open(empty); err == nil {
		c.Close()
		t.Fatal("Open of an empty directory succeeded")
	}
	// A symlink, or anything else.
	link := filepath.Join(t.TempDir(), "link.db")
	os.Symlink(path, link)
	if c, err := Open(link); err == nil {
		c.Close()
		t.Fatal("Open of a symlink succeeded")
	}
}

// TestStorePrivate: the store's directory is the master's alone, as the
// bbolt file (0600) was.
func TestStorePrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	open(t, path)
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("store directory: %v, %v; want mode 0700", st.Mode(), err)
	}
	v1, _ := v1Catalog(t)
	open(t, v1)
	if st, err := os.Stat(v1); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("migrated store directory: %v, %v; want mode 0700", st.Mode(), err)
	}
}

// TestCloseTwice: Close is idempotent, and methods of a closed catalog
// fail instead of crashing.
func TestCloseTwice(t *testing.T) {
	c, err := Open(filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, _, err := c.Node(gfid.Root); err == nil {
		t.Error("Node of a closed catalog succeeded")
	}
	if err := c.Commit(nil, nil); err == nil {
		t.Error("Commit to a closed catalog succeeded")
	}
}

// TestNoRecycledLogs: after a commit far larger than a memtable, the
// write-ahead log it went through is removed once flushed, not kept for
// reuse at its size (see deleteCleaner).
func TestNoRecycledLogs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	c := open(t, path)
	tr := makeTree(50, 1000, 5)
	tr.identify(t, c)
	for range 3 {
		if err := c.Commit(tr.nodes, nil); err != nil {
			t.Fatal(err)
		}
		for i := range tr.nodes {
			tr.nodes[i].CtimeNs++
		}
	}
	if err := c.db.Flush(); err != nil {
		t.Fatal(err)
	}
	var logs int64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		logs = 0
		ents, _ := os.ReadDir(path)
		for _, e := range ents {
			if info, err := e.Info(); err == nil && filepath.Ext(e.Name()) == ".log" {
				logs += info.Size()
			}
		}
		if logs < memTableSize || time.Now().After(deadline) {
			break
		}
	}
	if logs >= memTableSize {
		t.Fatalf("%d bytes of write-ahead logs after a flush: recycled", logs)
	}
}

func TestNodeRecordRoundTrip(t *testing.T) {
	g := gfid.New()
	nodes := []Node{
		{GFID: g, Type: TypeReg, Mode: 0o100644, UID: 1000, GID: 1000, Size: 12345, MtimeNs: 1767268800123456789,
			CtimeNs: 1767268800123999999, Links: []Link{{gfid.Root, "f000123"}}},
		{GFID: g, Type: TypeDir, Mode: 0o40755},
		{GFID: g, Type: TypeReg, Mode: 0o100644, UID: 1 << 31, GID: 0, Size: -1, MtimeNs: -1, CtimeNs: -1,
			Links: []Link{{gfid.New(), ""}, {gfid.Root, "x\x00y"}}, XattrHash: []byte{1}},
		{GFID: g, Type: TypeChar, Mode: 0o20600, Rdev: 1<<64 - 1, UID: 4294967295, GID: 4294967295},
		{GFID: g, Type: TypeSymlink, Mode: 0o120777, Target: "../t", MtimeNs: math.MinInt64, CtimeNs: math.MaxInt64},
		{GFID: g, Type: TypeFifo, Mode: 0o40755, MtimeNs: math.MaxInt64, CtimeNs: math.MinInt64}, // type bits that disagree
		{GFID: g, Type: TypeUnknown, Mode: 1<<32 - 1},
	}
	keys := []*Key{nil, {Ino: 1, BtimeNs: 0}, {Ino: 1<<64 - 1, BtimeNs: math.MinInt64}, {Ino: 77, BtimeNs: math.MaxInt64}}
	for _, n := range nodes {
		for _, k := range keys {
			b := encodeNode(nil, &n, k)
			got, key, hasKey, err := decodeNode(g, b)
			if err != nil || !reflect.DeepEqual(got, n) || hasKey != (k != nil) || (k != nil && key != *k) {
				t.Fatalf("%+v with key %v: decoded %+v, %v %v, %v", n, k, got, key, hasKey, err)
			}
		}
	}
	if b := encodeNode(nil, &nodes[0], &Key{Ino: 1 << 20, BtimeNs: nodes[0].MtimeNs - 300_000}); len(b) > 56 {
		t.Errorf("a regular file's record takes %d bytes: % x", len(b), b)
	}
}

func TestNodeDecodeRejectsGarbage(t *testing.T) {
	n := Node{GFID: gfid.New(), Type: TypeReg, Links: []Link{{gfid.Root, "a"}}, Target: "t", XattrHash: []byte{1}, Rdev: 1}
	for _, key := range []*Key{nil, {Ino: 3, BtimeNs: 4}} {
		b := encodeNode(nil, &n, key)
		for i := 0; i < len(b); i++ {
			if _, _, _, err := decodeNode(n.GFID, b[:i]); err == nil {
				t.Fatalf("truncated record of %d bytes decoded", i)
			}
		}
		if _, _, _, err := decodeNode(n.GFID, append(b, 0)); err == nil {
			t.Fatal("record with trailing byte decoded")
		}
	}
	if _, _, _, err := decodeNode(n.GFID, []byte{byte(TypeReg) | recNoBtime, 0, 0, 0, 0, 0, 0, 0}); err == nil {
		t.Fatal("record with a birth time flag and no key decoded")
	}
}

func TestTypeOfMode(t *testing.T) {
	for mode, want := range map[uint32]Type{0o100644: TypeReg, 0o40755: TypeDir, 0o120777: TypeSymlink, 0o10644: TypeFifo, 0o20600: TypeChar, 0o60600: TypeBlock, 0o140755: TypeSocket, 0: TypeUnknown} {
		if got := TypeOfMode(mode); got != want {
			t.Errorf("TypeOfMode(%o) = %v, want %v", mode, got, want)
		}
	}
}

// TestBind: the brick's gfid replaces what the catalog had for a key, a
// gfid that moved to another inode leaves its old key, and the reverse of
// each binding is kept where Commit finds it (a deleted gfid forgets its
// key, and only its own).
func TestBind(t *testing.T) {
	c := open(t, filepath.Join(t.TempDir(), "catalog.db"))
	k1, k2, k3 := Key{Ino: 1, BtimeNs: 10}, Key{Ino: 2, BtimeNs: 20}, Key{Ino: 3, BtimeNs: 0}
	g1, g2, g3 := gfid.New(), gfid.New(), gfid.New()
	identities := func() map[Key]gfid.GFID {
		m := map[Key]gfid.GFID{}
		c.ForEachIdentity(func(k Key, g gfid.GFID) error { m[k] = g; return nil })
		return m
	}
	want := func(what string, w map[Key]gfid.GFID) {
		t.Helper()
		if got := identities(); !reflect.DeepEqual(got, w) {
			t.Fatalf("%s: identities %v, want %v", what, got, w)
		}
	}
	if n, err := c.Bind([]Key{k1, k2}, []gfid.GFID{g1, g2}); err != nil || n != 2 {
		t.Fatalf("Bind = %d, %v", n, err)
	}
	if n, err := c.Bind([]Key{k1, k2}, []gfid.GFID{g1, g2}); err != nil || n != 0 {
		t.Fatalf("Bind again = %d, %v", n, err)
	}
	want("bound", map[Key]gfid.GFID{k1: g1, k2: g2})
	// g1 synced: its record carries its key.
	if err := c.Commit([]Node{{GFID: g1, Type: TypeReg, Mode: 0o100644, Links: []Link{{gfid.Root, "a"}}}}, nil); err != nil {
		t.Fatal(err)
	}
	// g1 moves to inode k3 (a brick's file copied back with its gfid): k1
	// is forgotten.
	if n, err := c.Bind([]Key{k3}, []gfid.GFID{g1}); err != nil || n != 1 {
		t.Fatalf("Bind moved = %d, %v", n, err)
	}
	want("moved", map[Key]gfid.GFID{k3: g1, k2: g2})
	// k2's inode now holds g3: g2 loses its key, and deleting g2 leaves k2.
	if _, err := c.Bind([]Key{k2}, []gfid.GFID{g3}); err != nil {
		t.Fatal(err)
	}
	if err := c.Commit(nil, []gfid.GFID{g2}); err != nil {
		t.Fatal(err)
	}
	want("rebound", map[Key]gfid.GFID{k3: g1, k2: g3})
	// Deleting g1 (synced, moved) forgets k3; deleting g3 (never synced)
	// forgets k2.
	if err := c.Commit(nil, []gfid.GFID{g1, g3}); err != nil {
		t.Fatal(err)
	}
	want("deleted", map[Key]gfid.GFID{})
	if _, err := c.Bind([]Key{k1}, []gfid.GFID{{}}); err == nil {
		t.Fatal("Bind to the zero gfid succeeded")
	}
}

// TestUnsyncKeepsIdentity: an unsynced directory's nodes and names go, its
// identities stay, and a later delete of the gfids still forgets them.
func TestUnsyncKeepsIdentity(t *testing.T) {
	c := open(t, filepath.Join(t.TempDir(), "catalog.db"))
	keys := []Key{{Ino: 10, BtimeNs: 1}, {Ino: 11, BtimeNs: 2}, {Ino: 12, BtimeNs: 3}}
	gs, _, err := c.Identify(keys)
	if err != nil {
		t.Fatal(err)
	}
	nodes := []Node{
		{GFID: gs[0], Type: TypeDir, Mode: 0o40755, Links: []Link{{gfid.Root, "d"}}},
		{GFID: gs[1], Type: TypeReg, Mode: 0o100644, Links: []Link{{gs[0], "f"}}},
		{GFID: gs[2], Type: TypeReg, Mode: 0o100644, Links: []Link{{gfid.Root, "g"}}},
	}
	if err := c.Commit(nodes, nil); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Unsync([]gfid.GFID{gs[0]}); err != nil || n != 2 {
		t.Fatalf("Unsync = %d, %v", n, err)
	}
	if n, _ := c.Count(); n != 1 {
		t.Fatalf("Count = %d after Unsync, want 1", n)
	}
	if kids, _ := c.Children(gfid.Root); !reflect.DeepEqual(kids, map[string]gfid.GFID{"g": gs[2]}) {
		t.Fatalf("Children(root) = %v", kids)
	}
	if again, fresh, err := c.Identify(keys); err != nil || fresh != 0 || !reflect.DeepEqual(again, gs) {
		t.Fatalf("Identify after Unsync: %v fresh %d %v", again, fresh, err)
	}
	if err := c.Commit(nil, gs[:2]); err != nil {
		t.Fatal(err)
	}
	n := 0
	c.ForEachIdentity(func(Key, gfid.GFID) error { n++; return nil })
	if n != 1 {
		t.Fatalf("%d identities after deleting the unsynced gfids, want 1", n)
	}
}
