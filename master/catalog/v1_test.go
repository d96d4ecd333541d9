package catalog

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/georep/georep/rpc/gfid"
)

// marshalV1 is the node record of schema 1, as the bbolt catalog wrote it.
func (n *Node) marshalV1() []byte {
	b := make([]byte, 0, 96+len(n.Target)+len(n.Links)*24)
	b = append(b, nodeVersionV1, byte(n.Type))
	b = binary.AppendUvarint(b, uint64(n.Mode))
	b = binary.AppendUvarint(b, uint64(n.UID))
	b = binary.AppendUvarint(b, uint64(n.GID))
	b = binary.AppendVarint(b, n.Size)
	b = binary.AppendVarint(b, n.MtimeNs)
	b = binary.AppendVarint(b, n.CtimeNs)
	b = binary.AppendUvarint(b, n.Rdev)
	b = appendBytes(b, []byte(n.Target))
	b = appendBytes(b, n.XattrHash)
	b = binary.AppendUvarint(b, uint64(len(n.Links)))
	for _, l := range n.Links {
		b = append(b, l.Parent[:]...)
		b = appendBytes(b, []byte(l.Name))
	}
	return b
}

func TestNodeDecodeV1RejectsGarbage(t *testing.T) {
	n := Node{GFID: gfid.New(), Type: TypeReg, Links: []Link{{gfid.Root, "a"}}}
	b := n.marshalV1()
	if got, err := unmarshalNodeV1(n.GFID, b); err != nil || !reflect.DeepEqual(got, n) {
		t.Fatalf("unmarshalNodeV1 = %+v, %v", got, err)
	}
	for i := 0; i < len(b); i++ {
		if _, err := unmarshalNodeV1(n.GFID, b[:i]); err == nil {
			t.Fatalf("truncated record of %d bytes decoded", i)
		}
	}
	if _, err := unmarshalNodeV1(n.GFID, append(b, 0)); err == nil {
		t.Fatal("record with trailing byte decoded")
	}
}

// v1Catalog copies testdata/v1/catalog.db (a schema-1 catalog written by
// the bbolt code, see TestWriteV1Testdata in its commit's history) into a
// work dir, and returns its path and what it holds.
func v1Catalog(t *testing.T) (string, *contents) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "v1", "contents.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := &contents{}
	if err := json.Unmarshal(b, want); err != nil {
		t.Fatal(err)
	}
	db, err := os.ReadFile(filepath.Join("testdata", "v1", "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "catalog.db")
	if err := os.WriteFile(path, db, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, want
}

func checkContents(t *testing.T, c *Catalog, want *contents) {
	t.Helper()
	got := dump(t, c)
	if !reflect.DeepEqual(got.Identities, want.Identities) {
		t.Errorf("identities:\n got %v\nwant %v", got.Identities, want.Identities)
	}
	if len(got.Nodes) != len(want.Nodes) {
		t.Errorf("%d nodes, want %d", len(got.Nodes), len(want.Nodes))
	}
	for i := range min(len(got.Nodes), len(want.Nodes)) {
		if !reflect.DeepEqual(got.Nodes[i], want.Nodes[i]) {
			t.Errorf("node %d:\n got %+v\nwant %+v", i, got.Nodes[i], want.Nodes[i])
		}
	}
	if !reflect.DeepEqual(got.Names, want.Names) {
		t.Errorf("names:\n got %v\nwant %v", got.Names, want.Names)
	}
	if got.Count != want.Count {
		t.Errorf("Count = %d, want %d", got.Count, want.Count)
	}
}

// TestMigrateV1 opens a catalog written by the bbolt code: every identity,
// node and name is there afterwards, and the reverse of every identity too
// (a deleted gfid forgets its key).
func TestMigrateV1(t *testing.T) {
	path, want := v1Catalog(t)
	if len(want.Identities) < 30 || len(want.Nodes) < 15 || len(want.Names) < 3 {
		t.Fatalf("testdata holds too little: %d identities, %d nodes, %d directories", len(want.Identities), len(want.Nodes), len(want.Names))
	}
	c := open(t, path)
	if st, err := os.Stat(path); err != nil || !st.IsDir() {
		t.Fatalf("after migration %s is %v, %v; want the store's directory", path, st, err)
	}
	for _, p := range []string{path + ".new", path + ".v1"} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left after migration: %v", p, err)
		}
	}
	checkContents(t, c, want)
	c.Close()
	c = open(t, path) // reopened, not migrated again
	checkContents(t, c, want)

	// The same inodes get the same gfids.
	keys := make([]Key, len(want.Identities))
	for i, id := range want.Identities {
		keys[i] = id.Key
	}
	gs, fresh, err := c.Identify(keys)
	if err != nil || fresh != 0 {
		t.Fatalf("Identify after migration: fresh %d, %v", fresh, err)
	}
	for i, id := range want.Identities {
		if gs[i] != id.GFID {
			t.Errorf("key %v: gfid %v, want %v", id.Key, gs[i], id.GFID)
		}
	}

	// Deleting every gfid the catalog knows (as a crawl of an emptied tree
	// would, identities never synced included) leaves no identity: each
	// one's reverse survived, in its node record or in the pending table.
	// Gfids whose key went to another gfid (a Reassign, a Bind) leave that
	// key alone.
	var all []gfid.GFID
	seen := map[gfid.GFID]bool{}
	for _, n := range want.Nodes {
		all = append(all, n.GFID)
		seen[n.GFID] = true
	}
	unsynced := 0
	for _, id := range want.Identities {
		if !seen[id.GFID] {
			unsynced++
		}
	}
	if unsynced < 5 {
		t.Fatalf("testdata has %d identities without a node, want some", unsynced)
	}
	// First the synced ones: the unsynced identities stay.
	if err := c.Commit(nil, all); err != nil {
		t.Fatal(err)
	}
	n := 0
	c.ForEachIdentity(func(_ Key, g gfid.GFID) error {
		if seen[g] {
			t.Errorf("identity of deleted node %v survives", g)
		}
		n++
		return nil
	})
	if n != unsynced {
		t.Errorf("%d identities left, want the %d never synced", n, unsynced)
	}
	var rest []gfid.GFID
	c.ForEachIdentity(func(_ Key, g gfid.GFID) error { rest = append(rest, g); return nil })
	if err := c.Commit(nil, rest); err != nil {
		t.Fatal(err)
	}
	c.ForEachIdentity(func(k Key, g gfid.GFID) error {
		t.Errorf("identity %v → %v survives its deletion", k, g)
		return nil
	})
	if n, _ := c.Count(); n != 0 {
		t.Errorf("Count = %d after deleting everything", n)
	}
	it, err := c.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	for it.First(); it.Valid(); it.Next() {
		if k := it.Key(); k[0] != tabMeta {
			t.Errorf("key %q left after deleting everything", k)
		}
	}
	it.Close()
}

// TestMigrateV1Interrupted: a crash at any step of a migration is finished
// or redone by the next Open.
func TestMigrateV1Interrupted(t *testing.T) {
	// Crash while the new store is built: a partial path.new beside the
	// schema-1 file.
	path, want := v1Catalog(t)
	os.MkdirAll(path+".new", 0o700)
	os.WriteFile(filepath.Join(path+".new", "000001.sst"), []byte("half a table"), 0o600)
	c := open(t, path)
	checkContents(t, c, want)
	c.Close()

	// Crash between the two renames: path.v1 and a complete path.new.
	path, want = v1Catalog(t)
	if err := migrate(path, path+".scratch", path+".gone"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, path+".new"); err != nil {
		t.Fatal(err)
	}
	db, _ := os.ReadFile(filepath.Join("testdata", "v1", "catalog.db"))
	os.WriteFile(path+".v1", db, 0o600)
	c = open(t, path)
	checkContents(t, c, want)
	if _, err := os.Lstat(path + ".v1"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s.v1 left: %v", path, err)
	}
	c.Close()

	// Crash before the old file was removed.
	path, want = v1Catalog(t)
	if err := migrate(path, path+".new", path+".gone"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path+".v1", db, 0o600)
	c = open(t, path)
	checkContents(t, c, want)
	if _, err := os.Lstat(path + ".v1"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s.v1 left: %v", path, err)
	}
	c.Close()

	// Only path.v1 (the store was lost by hand): migrated from it.
	path, want = v1Catalog(t)
	os.Rename(path, path+".v1")
	c = open(t, path)
	checkContents(t, c, want)
}

// writeV1 writes a schema-1 catalog of tr (identified: tr.nodes have their
// gfids) at path, as the bbolt code laid it out, plus unsynced identities
// for the keys in extra.
func writeV1(t testing.TB, path string, tr *tree, extra []Key) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		buckets := map[string]*bolt.Bucket{}
		for _, name := range [][]byte{v1Meta, v1Ident, v1KeyOf, v1Nodes, v1Names} {
			b, err := tx.CreateBucket(name)
			if err != nil {
				return err
			}
			buckets[string(name)] = b
		}
		buckets["meta"].Put(v1Version, []byte{1})
		// Each bucket in key order, as the bbolt code wrote it (random
		// inserts into one transaction are quadratic in bbolt).
		puts := map[string][][2][]byte{}
		put := func(bucket string, k, v []byte) { puts[bucket] = append(puts[bucket], [2][]byte{k, v}) }
		for i, k := range tr.keys {
			g := tr.nodes[i].GFID
			put("ident", k.bytes(), g[:])
			put("keyof", g[:], k.bytes())
			put("nodes", g[:], tr.nodes[i].marshalV1())
			for _, l := range tr.nodes[i].Links {
				put("names", append(append([]byte(nil), l.Parent[:]...), l.Name...), g[:])
			}
		}
		for _, k := range extra {
			g := gfid.New()
			put("ident", k.bytes(), g[:])
			put("keyof", g[:], k.bytes())
		}
		for bucket, kvs := range puts {
			slices.SortFunc(kvs, func(a, b [2][]byte) int { return bytes.Compare(a[0], b[0]) })
			for _, kv := range kvs {
				if err := buckets[bucket].Put(kv[0], kv[1]); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMigrateKilled kills a process in the middle of a migration, at
// random moments: the next Open migrates again or finishes the switch, and
// the catalog is whole.
func TestMigrateKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes for a few seconds")
	}
	dir := t.TempDir()
	v1 := filepath.Join(dir, "v1.db")
	tr := makeTree(20, 1000, 4)
	for i := range tr.nodes {
		tr.nodes[i].GFID = gfid.New()
	}
	dirG := gfid.GFID{}
	for i := range tr.nodes {
		if tr.nodes[i].Type == TypeDir {
			dirG = tr.nodes[i].GFID
		} else {
			tr.nodes[i].Links[0].Parent = dirG
		}
	}
	writeV1(t, v1, tr, []Key{{Ino: 1, BtimeNs: 1}, {Ino: 2, BtimeNs: 0}})
	// What a migration that is not interrupted gives.
	clean := filepath.Join(dir, "clean.db")
	copyFile(v1, clean)
	start := time.Now()
	c := open(t, clean)
	took := time.Since(start)
	want := dump(t, c)
	c.Close()
	if len(want.Nodes) != len(tr.nodes) || len(want.Identities) != len(tr.nodes)+2 {
		t.Fatalf("clean migration: %d nodes, %d identities", len(want.Nodes), len(want.Identities))
	}

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	for kill := 0; kill < 6; kill++ {
		path := filepath.Join(dir, fmt.Sprintf("catalog%d.db", kill))
		copyFile(v1, path)
		cmd := exec.Command(os.Args[0], "-test.run=^TestMigrateChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+path)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Anywhere from the child's start to past the end of its migration.
		time.Sleep(time.Duration(rng.Int64N(int64(2*took + 100*time.Millisecond))))
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		state := "v1 file"
		if st, err := os.Stat(path); err != nil {
			state = "switching"
		} else if st.IsDir() {
			state = "migrated"
		} else if _, err := os.Stat(path + ".new"); err == nil {
			state = "building"
		}
		c := open(t, path)
		checkContents(t, c, want)
		c.Close()
		t.Logf("kill %d: left the catalog %s", kill, state)
	}
}

// TestMigrateChild is the child of TestMigrateKilled: it opens (migrates)
// the catalog.
func TestMigrateChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("the child of TestMigrateKilled")
	}
	c, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// TestMigrateScale migrates a schema-1 catalog of GEOREP_CATALOG_SCALE
// files (skipped without it) and logs how long it takes and what it costs
// on disk before and after.
func TestMigrateScale(t *testing.T) {
	files, _ := strconv.Atoi(os.Getenv("GEOREP_CATALOG_SCALE"))
	if files == 0 {
		t.Skip("set GEOREP_CATALOG_SCALE=1000000 to measure")
	}
	tr := makeTree(files/1000, 1000, 7)
	dirG := gfid.GFID{}
	for i := range tr.nodes {
		tr.nodes[i].GFID = gfid.New()
		if tr.nodes[i].Type == TypeDir {
			dirG = tr.nodes[i].GFID
		} else {
			tr.nodes[i].Links[0].Parent = dirG
		}
	}
	path := filepath.Join(t.TempDir(), "catalog.db")
	writeV1(t, path, tr, nil)
	before := diskBytes(t, path)
	cpu, start := cpuTime(), time.Now()
	c := open(t, path)
	wall, used := time.Since(start), cpuTime()-cpu
	if n, _ := c.Count(); n != int64(len(tr.nodes)) {
		t.Fatalf("Count = %d after migration, want %d", n, len(tr.nodes))
	}
	c.Close()
	t.Logf("%d files: migrated in %v (cpu %v), %.0f → %.0f bytes per file", len(tr.nodes), wall.Round(time.Millisecond),
		used.Round(time.Millisecond), float64(before)/float64(len(tr.nodes)), float64(diskBytes(t, path))/float64(len(tr.nodes)))
}
