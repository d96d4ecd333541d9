package catalog

import (
	"slices"
	"testing"

	"github.com/georep/georep/rpc/gfid"
)

// contents is everything a catalog says through its API: the testdata's
// expectations (testdata/v1/contents.json) and what a migration must keep.
type contents struct {
	Identities []identity
	Nodes      []Node
	// Names holds the synced entries of the root and of every directory node.
	Names map[gfid.GFID]map[string]gfid.GFID
	Count int64
}

type identity struct {
	Key  Key
	GFID gfid.GFID
}

func dump(t testing.TB, c *Catalog) *contents {
	t.Helper()
	d := &contents{Names: map[gfid.GFID]map[string]gfid.GFID{}}
	err := c.ForEachIdentity(func(k Key, g gfid.GFID) error {
		d.Identities = append(d.Identities, identity{k, g})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	dirs := []gfid.GFID{gfid.Root}
	err = c.ForEachNode(func(n Node) error {
		d.Nodes = append(d.Nodes, n)
		if n.Type == TypeDir && n.GFID != gfid.Root {
			dirs = append(dirs, n.GFID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range dirs {
		kids, err := c.Children(dir)
		if err != nil {
			t.Fatal(err)
		}
		var streamed []string
		if err := c.ForEachChild(dir, func(name string, g gfid.GFID) error {
			if kids[name] != g {
				t.Errorf("ForEachChild(%v) gives %q → %v, Children %v", dir, name, g, kids[name])
			}
			streamed = append(streamed, name)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(streamed) != len(kids) || !slices.IsSorted(streamed) {
			t.Errorf("ForEachChild(%v) gives %q, Children %v", dir, streamed, kids)
		}
		for name, g := range kids {
			if got, ok, err := c.Lookup(dir, name); err != nil || !ok || got != g {
				t.Errorf("Lookup(%v, %q) = %v %v %v, Children says %v", dir, name, got, ok, err, g)
			}
		}
		if len(kids) > 0 {
			d.Names[dir] = kids
		}
	}
	for _, id := range d.Identities {
		if g, ok, err := c.Identity(id.Key); err != nil || !ok || g != id.GFID {
			t.Errorf("Identity(%v) = %v %v %v, ForEachIdentity says %v", id.Key, g, ok, err, id.GFID)
		}
	}
	for _, n := range d.Nodes {
		if got, ok, err := c.Node(n.GFID); err != nil || !ok || !got.Equal(&n) {
			t.Errorf("Node(%v) = %+v %v %v, ForEachNode says %+v", n.GFID, got, ok, err, n)
		}
	}
	var err2 error
	if d.Count, err2 = c.Count(); err2 != nil {
		t.Fatal(err2)
	}
	return d
}
