package crawl

import (
	"fmt"
	"sort"
	"strings"

	"github.com/georep/georep/master/catalog"
	"github.com/georep/georep/master/changelog"
	"github.com/georep/georep/rpc/gfid"
)

// sim is a slave namespace addressed by gfid, with POSIX rules: creates need
// a free name in an existing directory, rmdir an empty directory, a rename
// never moves a directory beneath itself.
type sim struct {
	names  map[catalog.Link]gfid.GFID
	typ    map[gfid.GFID]catalog.Type
	nlinks map[gfid.GFID]int
	parent map[gfid.GFID]gfid.GFID // directories
	nkids  map[gfid.GFID]int
}

func newSim() *sim {
	s := &sim{names: map[catalog.Link]gfid.GFID{}, typ: map[gfid.GFID]catalog.Type{}, nlinks: map[gfid.GFID]int{},
		parent: map[gfid.GFID]gfid.GFID{}, nkids: map[gfid.GFID]int{}}
	s.typ[gfid.Root] = catalog.TypeDir
	s.typ[gfid.Park] = catalog.TypeDir
	s.parent[gfid.Park] = gfid.Root // .georep/park, not a listed entry
	return s
}

func (s *sim) isDir(g gfid.GFID) bool { return s.typ[g] == catalog.TypeDir }

func (s *sim) add(g gfid.GFID, l catalog.Link) {
	s.names[l] = g
	s.nlinks[g]++
	s.nkids[l.Parent]++
	if s.isDir(g) {
		s.parent[g] = l.Parent
	}
}

func (s *sim) remove(g gfid.GFID, l catalog.Link) {
	delete(s.names, l)
	s.nlinks[g]--
	s.nkids[l.Parent]--
}

func (s *sim) apply(r changelog.Record) error {
	g := r.GFID
	if r.Kind == changelog.Entry && (g == gfid.Root || g == gfid.Park) {
		return fmt.Errorf("entry operation on %v", g)
	}
	if r.Kind != changelog.Entry {
		if _, ok := s.typ[g]; !ok {
			return fmt.Errorf("%c record for missing gfid", r.Kind)
		}
		return nil
	}
	l := catalog.Link{Parent: r.Parent, Name: r.Name}
	needParent := func(l catalog.Link) error {
		if !s.isDir(l.Parent) {
			return fmt.Errorf("parent %v is not an existing directory", l.Parent)
		}
		if h, ok := s.names[l]; ok {
			return fmt.Errorf("name %q taken by %v", l.Name, h)
		}
		return nil
	}
	switch r.Fop {
	case changelog.Create, changelog.Mkdir, changelog.Mknod, changelog.Symlink:
		if _, ok := s.typ[g]; ok {
			return fmt.Errorf("gfid exists")
		}
		if err := needParent(l); err != nil {
			return err
		}
		t := catalog.TypeOfMode(r.Mode)
		switch r.Fop {
		case changelog.Create:
			if t != catalog.TypeReg {
				return fmt.Errorf("CREATE with mode %o", r.Mode)
			}
		case changelog.Mkdir:
			if t != catalog.TypeDir {
				return fmt.Errorf("MKDIR with mode %o", r.Mode)
			}
		case changelog.Symlink:
			t = catalog.TypeSymlink
		case changelog.Mknod:
			if t == catalog.TypeReg || t == catalog.TypeDir || t == catalog.TypeSymlink || t == catalog.TypeUnknown {
				return fmt.Errorf("MKNOD with mode %o", r.Mode)
			}
		}
		s.typ[g] = t
		s.add(g, l)
	case changelog.Link:
		if _, ok := s.typ[g]; !ok || s.isDir(g) {
			return fmt.Errorf("LINK of missing gfid or directory")
		}
		if err := needParent(l); err != nil {
			return err
		}
		s.add(g, l)
	case changelog.Rename:
		if s.names[l] != g {
			return fmt.Errorf("RENAME source %q does not hold the gfid", l.Name)
		}
		nl := catalog.Link{Parent: r.NewParent, Name: r.NewName}
		if err := needParent(nl); err != nil {
			return err
		}
		if s.isDir(g) {
			for x, n := nl.Parent, 0; x != gfid.Root; x, n = s.parent[x], n+1 {
				if x == g || n > len(s.typ) {
					return fmt.Errorf("RENAME of a directory beneath itself")
				}
			}
		}
		s.remove(g, l)
		s.add(g, nl)
	case changelog.Unlink, changelog.Rmdir:
		if s.names[l] != g {
			return fmt.Errorf("%s: name %q does not hold the gfid", r.Fop, l.Name)
		}
		if (r.Fop == changelog.Rmdir) != s.isDir(g) {
			return fmt.Errorf("%s of a %v", r.Fop, s.typ[g])
		}
		if r.Fop == changelog.Rmdir && s.nkids[g] != 0 {
			return fmt.Errorf("RMDIR of a non-empty directory")
		}
		s.remove(g, l)
		if s.nlinks[g] == 0 {
			delete(s.typ, g)
			delete(s.parent, g)
		}
	default:
		return fmt.Errorf("unknown fop %s", r.Fop)
	}
	return nil
}

// diffNames compares the simulated namespace with the snapshot. With
// subset, entries the snapshot lacks are allowed (IgnoreDeletes).
func (s *sim) diffNames(snap *Snapshot, subset bool) string {
	want := map[catalog.Link]gfid.GFID{}
	for _, g := range snap.order {
		n := snap.nodes[g]
		if s.typ[g] != n.Type {
			return fmt.Sprintf("gfid %v: type %v on the slave, %v in the snapshot", g, s.typ[g], n.Type)
		}
		for _, l := range n.Links {
			want[l] = g
		}
	}
	var diffs []string
	for l, g := range want {
		if s.names[l] != g {
			diffs = append(diffs, fmt.Sprintf("missing %v/%q = %v (have %v)", l.Parent, l.Name, g, s.names[l]))
		}
	}
	for l, g := range s.names {
		if l.Parent == gfid.Park {
			diffs = append(diffs, fmt.Sprintf("left in park: %v", g))
		} else if _, ok := want[l]; !ok && !subset {
			diffs = append(diffs, fmt.Sprintf("extra %v/%q = %v", l.Parent, l.Name, g))
		}
	}
	sort.Strings(diffs)
	return strings.Join(diffs, "\n")
}
