package crawl

import (
	"path/filepath"
	"slices"

	"github.com/georep/georep/master/catalog"
	"github.com/georep/georep/rpc/gfid"
)

// Node is a gfid as crawled: its catalog record plus, when Config.SyncXattrs,
// its user.* xattrs.
type Node struct {
	catalog.Node
	Xattrs map[string][]byte
}

// Snapshot is the source tree as one crawl saw it. It is read-only and safe
// for concurrent readers.
type Snapshot struct {
	source   string
	nodes    map[gfid.GFID]*Node
	children map[gfid.GFID]map[string]gfid.GFID
	order    []gfid.GFID // discovery order: root first, parents before children
	// rel holds, for a scoped crawl, the paths of the directories it was
	// given, as they were opened: fresher than their ancestors' names.
	rel map[gfid.GFID]string
}

// Lookup returns the crawled node of g.
func (s *Snapshot) Lookup(g gfid.GFID) (Node, bool) {
	n, ok := s.nodes[g]
	if !ok {
		return Node{}, false
	}
	return *n, true
}

// Path returns the absolute source path of g's first link (the source
// itself for the root).
func (s *Snapshot) Path(g gfid.GFID) (string, bool) {
	var parts []string
	for g != gfid.Root {
		if r, ok := s.rel[g]; ok {
			slices.Reverse(parts)
			return filepath.Join(append([]string{s.source, r}, parts...)...), true
		}
		n, ok := s.nodes[g]
		if !ok || len(n.Links) == 0 || len(parts) > len(s.nodes) {
			return "", false
		}
		parts = append(parts, n.Links[0].Name)
		g = n.Links[0].Parent
	}
	slices.Reverse(parts)
	return filepath.Join(append([]string{s.source}, parts...)...), true
}

// Children returns the entries of directory dir as crawled (nil if dir is
// not a crawled directory). The map must not be modified.
func (s *Snapshot) Children(dir gfid.GFID) map[string]gfid.GFID { return s.children[dir] }

// GFIDs returns every crawled gfid, root first, parents before children.
func (s *Snapshot) GFIDs() []gfid.GFID { return slices.Clone(s.order) }

// Len returns the number of crawled gfids, the root included.
func (s *Snapshot) Len() int { return len(s.order) }
