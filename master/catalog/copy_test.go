package catalog

import (
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/georep/georep/rpc/gfid"
)

// treeHash is the contents of every file under path (a file or a directory).
func treeHash(t *testing.T, path string) map[string][32]byte {
	t.Helper()
	m := map[string][32]byte{}
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		m[p] = sha256.Sum256(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestCopy: the dry run's copy of a catalog is the same catalog, and making
// and using it leaves the original byte for byte as it was, a schema-1 file
// included (migrated in the copy only).
func TestCopy(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "catalog.db")
	c := open(t, src)
	tr := makeTree(3, 1000, 6)
	tr.identify(t, c)
	if err := c.Commit(tr.nodes, nil); err != nil {
		t.Fatal(err)
	}
	want := dump(t, c)
	c.Close()
	before := treeHash(t, src)

	dst := filepath.Join(t.TempDir(), "catalog.db")
	if err := Copy(src, dst); err != nil {
		t.Fatal(err)
	}
	c = open(t, dst)
	if got := dump(t, c); !reflect.DeepEqual(got, want) {
		t.Fatal("the copy holds another catalog")
	}
	tr.identify(t, c) // the dry run's crawl writes to its copy
	if err := c.Commit(nil, []gfid.GFID{tr.nodes[5].GFID}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if after := treeHash(t, src); !reflect.DeepEqual(after, before) {
		t.Fatal("copying changed the original")
	}

	// A schema-1 catalog.
	v1, wantV1 := v1Catalog(t)
	before = treeHash(t, v1)
	dst = filepath.Join(t.TempDir(), "catalog.db")
	if err := Copy(v1, dst); err != nil {
		t.Fatal(err)
	}
	c = open(t, dst)
	checkContents(t, c, wantV1)
	c.Close()
	if after := treeHash(t, v1); !reflect.DeepEqual(after, before) {
		t.Fatal("copying changed the schema-1 original")
	}

	// No catalog yet.
	if err := Copy(filepath.Join(dir, "none.db"), filepath.Join(t.TempDir(), "x.db")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Copy of nothing: %v, want ErrNotExist", err)
	}
}
