package master

import (
	"path/filepath"
	"slices"

	"github.com/georep/georep/master/catalog"
	"github.com/georep/georep/rpc/beneath"
	"github.com/georep/georep/rpc/gfid"
)

// staleDirs adds to ds the names of the files whose data a pass could not
// ship because they had moved, where the catalog now puts them, and
// forgets them: a pass that misses them again puts them back. A file the
// catalog no longer has was deleted; one whose directory cannot be opened
// waits for the next pass.
func (w *worker) staleDirs(ds *dirSet) {
	for g := range w.staleData {
		n, ok, err := w.cat.Node(g)
		if err != nil || !ok {
			delete(w.staleData, g)
			continue
		}
		placed := false
		for _, l := range n.Links {
			dir, ok := catalogPath(w.cat, l.Parent)
			if !ok {
				continue
			}
			fd, err := beneath.OpenDir(w.cfg.Source, dir)
			if err != nil {
				continue
			}
			i, err := ds.add(fd, dir)
			if err != nil {
				continue
			}
			ds.mark(i, l.Name, true)
			placed = true
		}
		if placed {
			delete(w.staleData, g)
		}
	}
}

// catalogPath returns the path of directory g relative to the source, as
// the catalog last recorded it ("." for the root).
func catalogPath(cat *catalog.Catalog, g gfid.GFID) (string, bool) {
	var parts []string
	for g != gfid.Root {
		n, ok, err := cat.Node(g)
		if err != nil || !ok || len(n.Links) == 0 || len(parts) > 4096 {
			return "", false
		}
		parts = append(parts, n.Links[0].Name)
		g = n.Links[0].Parent
	}
	slices.Reverse(parts)
	return filepath.Join(append([]string{"."}, parts...)...), true
}
