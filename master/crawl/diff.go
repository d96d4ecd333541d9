package crawl

import (
	"bytes"
	"cmp"
	"slices"
	"strings"

	"github.com/georep/georep/master/catalog"
	"github.com/georep/georep/master/changelog"
	"github.com/georep/georep/rpc/gfid"
)

// plan is the outcome of diffing the synced namespace with a snapshot.
type plan struct {
	records []changelog.Record
	changed []gfid.GFID // new or different in the snapshot: to commit
	deleted []gfid.GFID // gone from the source: to forget
	stats   Stats
}

// oldTree is the synced namespace with helpers for ordering removals.
type oldTree struct {
	nodes    map[gfid.GFID]*catalog.Node
	children map[gfid.GFID][]gfidLink // dir → its synced entries
	paths    map[gfid.GFID]string     // memo of sortable paths
}

func newOldTree(nodes map[gfid.GFID]*catalog.Node) *oldTree {
	t := &oldTree{nodes: nodes, children: map[gfid.GFID][]gfidLink{}, paths: map[gfid.GFID]string{}}
	for g, n := range nodes {
		for _, l := range n.Links {
			t.children[l.Parent] = append(t.children[l.Parent], gfidLink{g, l})
		}
	}
	return t
}

// path is the synced path of g's first link, "\x00"-separated so that it
// sorts parents before children; it tolerates a broken (cyclic or dangling)
// catalog.
func (t *oldTree) path(g gfid.GFID) string {
	if p, ok := t.paths[g]; ok {
		return p
	}
	var parts []string
	seen := map[gfid.GFID]bool{}
	for x := g; x != gfid.Root && !seen[x]; {
		seen[x] = true
		n := t.nodes[x]
		if n == nil || len(n.Links) == 0 {
			break
		}
		parts = append(parts, n.Links[0].Name)
		x = n.Links[0].Parent
	}
	slices.Reverse(parts)
	p := strings.Join(parts, "\x00")
	t.paths[g] = p
	return p
}

func (t *oldTree) linkPath(l catalog.Link) string {
	if l.Parent == gfid.Root {
		return l.Name
	}
	return t.path(l.Parent) + "\x00" + l.Name
}

func (t *oldTree) depth(l catalog.Link) int { return strings.Count(t.linkPath(l), "\x00") }

type gfidLink struct {
	g gfid.GFID
	l catalog.Link
}

// diff orders the records that take the slave from old to snap, as
// ARCHITECTURE.md "Changelogs written by the hybrid crawl" specifies. The
// regular files in forceData get a D record even when size and times say
// they did not change (the journal saw them written); those in noCtime get
// none for a change of ctime alone, unless the catalog holds the impossible
// ctime of data not shipped yet.
func diff(old map[gfid.GFID]*catalog.Node, snap *Snapshot, ignoreDeletes, syncXattrs bool, forceData, noCtime map[gfid.GFID]bool) *plan {
	p := &plan{}
	t := newOldTree(old)

	// Classify every link change.
	parked := map[gfid.GFID]catalog.Link{} // gfid → the old link it is parked from
	added := map[gfid.GFID][]catalog.Link{}
	var drops []gfidLink // old links to remove (other than parked ones)
	needed := map[catalog.Link]bool{}
	touched := map[gfid.GFID]bool{} // directories whose entries change
	for _, g := range snap.order {
		if g == gfid.Root {
			continue
		}
		n := snap.nodes[g]
		var oldSet map[catalog.Link]bool
		if o := old[g]; o != nil {
			oldSet = linkSet(o.Links)
		}
		for _, l := range n.Links {
			if !oldSet[l] {
				added[g] = append(added[g], l)
				needed[l] = true
			}
		}
	}
	oldOrder := make([]gfid.GFID, 0, len(old))
	for g := range old {
		if g != gfid.Root {
			oldOrder = append(oldOrder, g)
		}
	}
	slices.SortFunc(oldOrder, func(a, b gfid.GFID) int {
		return cmp.Or(strings.Compare(t.path(a), t.path(b)), bytes.Compare(a[:], b[:]))
	})
	for _, g := range oldOrder {
		o := old[g]
		var newSet map[catalog.Link]bool
		n := snap.nodes[g]
		if n != nil {
			newSet = linkSet(n.Links)
		} else {
			p.deleted = append(p.deleted, g)
		}
		var removed []catalog.Link
		for _, l := range o.Links {
			if !newSet[l] {
				removed = append(removed, l)
			}
		}
		if len(removed) == 0 {
			continue
		}
		if len(added[g]) > 0 {
			parked[g] = removed[0]
			removed = removed[1:]
		}
		for _, l := range removed {
			drops = append(drops, gfidLink{g, l})
		}
	}

	// With IgnoreDeletes only what is in the way of a new name goes, and
	// with a directory everything still in it.
	if ignoreDeletes {
		isPark := func(x gfidLink) bool { pl, ok := parked[x.g]; return ok && pl == x.l }
		keep := map[gfidLink]bool{}
		var queue []gfidLink
		for _, d := range drops {
			if needed[d.l] {
				keep[d] = true
				queue = append(queue, d)
			}
		}
		for len(queue) > 0 {
			d := queue[0]
			queue = queue[1:]
			if o := old[d.g]; o == nil || o.Type != catalog.TypeDir {
				continue
			}
			for _, c := range t.children[d.g] {
				if !keep[c] && !isPark(c) {
					keep[c] = true
					queue = append(queue, c)
				}
			}
		}
		drops = slices.DeleteFunc(drops, func(d gfidLink) bool { return !keep[d] })
	}

	rec := func(r changelog.Record) { p.records = append(p.records, r) }
	entry := func(g gfid.GFID, fop changelog.Fop, l catalog.Link) changelog.Record {
		return changelog.Record{Kind: changelog.Entry, GFID: g, Fop: fop, Parent: l.Parent, Name: l.Name}
	}

	// 1. Park every gfid that changes name.
	parkOrder := make([]gfid.GFID, 0, len(parked))
	for _, g := range oldOrder {
		if l, ok := parked[g]; ok {
			parkOrder = append(parkOrder, g)
			r := entry(g, changelog.Rename, l)
			r.NewParent, r.NewName = gfid.Park, g.String()
			rec(r)
			touched[l.Parent] = true
			p.stats.Renames++
		}
	}

	// 2. Unlink non-directories, then remove directories deepest first.
	var rmdirs []gfidLink
	for _, d := range drops {
		touched[d.l.Parent] = true
		if o := old[d.g]; o.Type == catalog.TypeDir {
			rmdirs = append(rmdirs, d)
			continue
		}
		rec(entry(d.g, changelog.Unlink, d.l))
		p.stats.Deletes++
	}
	slices.SortStableFunc(rmdirs, func(a, b gfidLink) int { return cmp.Compare(t.depth(b.l), t.depth(a.l)) })
	for _, d := range rmdirs {
		rec(entry(d.g, changelog.Rmdir, d.l))
		p.stats.Deletes++
	}

	// 3. New directories, parents first (snapshot order is depth first).
	for _, g := range snap.order {
		n := snap.nodes[g]
		if g == gfid.Root || old[g] != nil || n.Type != catalog.TypeDir {
			continue
		}
		r := entry(g, changelog.Mkdir, n.Links[0])
		r.Mode, r.UID, r.GID = n.Mode, n.UID, n.GID
		rec(r)
		touched[n.Links[0].Parent] = true
	}

	// 4. Parked gfids to their new names, then their further new links.
	for _, g := range snap.order {
		if _, ok := parked[g]; !ok {
			continue
		}
		ls := added[g]
		r := changelog.Record{Kind: changelog.Entry, GFID: g, Fop: changelog.Rename,
			Parent: gfid.Park, Name: g.String(), NewParent: ls[0].Parent, NewName: ls[0].Name}
		rec(r)
		for _, l := range ls[1:] {
			rec(entry(g, changelog.Link, l))
		}
		for _, l := range ls {
			touched[l.Parent] = true
		}
	}

	// 5. New non-directories and new links of existing ones.
	for _, g := range snap.order {
		n := snap.nodes[g]
		if g == gfid.Root || n.Type == catalog.TypeDir {
			continue
		}
		if _, ok := parked[g]; ok {
			continue
		}
		ls := added[g]
		if len(ls) == 0 {
			continue
		}
		if old[g] == nil {
			var r changelog.Record
			switch n.Type {
			case catalog.TypeReg:
				r = entry(g, changelog.Create, ls[0])
				r.Mode, r.UID, r.GID = n.Mode, n.UID, n.GID
			case catalog.TypeSymlink:
				r = entry(g, changelog.Symlink, ls[0])
			default:
				r = entry(g, changelog.Mknod, ls[0])
				r.Mode, r.UID, r.GID = n.Mode, n.UID, n.GID
			}
			rec(r)
			ls = ls[1:]
		}
		for _, l := range ls {
			rec(entry(g, changelog.Link, l))
		}
		for _, l := range added[g] {
			touched[l.Parent] = true
		}
	}
	p.stats.Entries = int64(len(p.records))

	// 6. Metadata, then data.
	for _, g := range snap.order {
		n := snap.nodes[g]
		o := old[g]
		if syncXattrs && ((o == nil && n.XattrHash != nil) || (o != nil && !bytes.Equal(o.XattrHash, n.XattrHash))) {
			rec(changelog.Record{Kind: changelog.Meta, GFID: g, Fop: changelog.Setxattr})
			p.stats.Meta++
		}
		var setattr bool
		if o == nil {
			// CREATE carries mode and owner and data sync the mtime of a
			// regular file; everything else needs its attributes set.
			setattr = n.Type != catalog.TypeReg
		} else {
			setattr = o.Mode != n.Mode || o.UID != n.UID || o.GID != n.GID || o.MtimeNs != n.MtimeNs || touched[g]
		}
		if setattr {
			rec(changelog.Record{Kind: changelog.Meta, GFID: g, Fop: changelog.Setattr})
			p.stats.Meta++
		}
	}
	for _, g := range snap.order {
		n := snap.nodes[g]
		if n.Type != catalog.TypeReg {
			continue
		}
		if o := old[g]; o == nil || o.Size != n.Size || o.MtimeNs != n.MtimeNs || (o.CtimeNs != n.CtimeNs && (!noCtime[g] || o.CtimeNs < 0)) || forceData[g] {
			rec(changelog.Record{Kind: changelog.Data, GFID: g})
			p.stats.Data++
			p.stats.DataBytes += n.Size
		}
	}

	for _, g := range snap.order {
		if o := old[g]; o == nil || !o.Equal(&snap.nodes[g].Node) {
			p.changed = append(p.changed, g)
		}
	}
	return p
}

func linkSet(ls []catalog.Link) map[catalog.Link]bool {
	m := make(map[catalog.Link]bool, len(ls))
	for _, l := range ls {
		m[l] = true
	}
	return m
}
