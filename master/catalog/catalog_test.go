package catalog

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

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
	// Second open of the same file times out on bbolt's lock instead of hanging.
	path := filepath.Join(t.TempDir(), "catalog.db")
	open(t, path)
	if c, err := Open(path); err == nil {
		c.Close()
		t.Fatal("second Open of a locked catalog succeeded")
	}
	// A file that is not a bbolt database.
	junk := filepath.Join(t.TempDir(), "junk.db")
	os.WriteFile(junk, []byte("not a database, definitely not one at all............................"), 0o600)
	if c, err := Open(junk); err == nil {
		c.Close()
		t.Fatal("Open of junk succeeded")
	}
}

func TestNodeDecodeRejectsGarbage(t *testing.T) {
	n := Node{GFID: gfid.New(), Type: TypeReg, Links: []Link{{gfid.Root, "a"}}}
	b := n.marshal()
	for i := 0; i < len(b); i++ {
		if _, err := unmarshalNode(n.GFID, b[:i]); err == nil {
			t.Fatalf("truncated record of %d bytes decoded", i)
		}
	}
	if _, err := unmarshalNode(n.GFID, append(b, 0)); err == nil {
		t.Fatal("record with trailing byte decoded")
	}
}

func TestTypeOfMode(t *testing.T) {
	for mode, want := range map[uint32]Type{0o100644: TypeReg, 0o40755: TypeDir, 0o120777: TypeSymlink, 0o10644: TypeFifo, 0o20600: TypeChar, 0o60600: TypeBlock, 0o140755: TypeSocket, 0: TypeUnknown} {
		if got := TypeOfMode(mode); got != want {
			t.Errorf("TypeOfMode(%o) = %v, want %v", mode, got, want)
		}
	}
}
