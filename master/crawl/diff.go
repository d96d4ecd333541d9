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
func diff(old map[gfid.GFID]*catalog.Node, snap *Snapshot, cfg *Config, forceData, noCtime map[gfid.GFID]bool) *plan {
	ignoreDeletes, syncXattrs := cfg.IgnoreDeletes, cfg.SyncXattrs
	d := &differ{p: &plan{}, t: newOldTree(old), old: old, snap: snap, parkPrefix: cfg.ParkPrefix,
		parked: map[gfid.GFID]catalog.Link{}, direct: map[gfid.GFID]bool{}, oldNames: map[gfid.GFID]map[string]bool{},
		added:  map[gfid.GFID][]catalog.Link{},
		needed: map[catalog.Link]bool{}, touched: map[gfid.GFID]bool{}}
	d.classify()
	if ignoreDeletes {
		d.keepOnlyInTheWay()
	}
	d.park()    // 1
	d.remove()  // 2
	d.mkdirs()  // 3
	d.unpark()  // 4
	d.creates() // 5
	d.p.stats.Entries = int64(len(d.p.records))
	d.meta(syncXattrs)         // 6
	d.data(forceData, noCtime) // 6
	for _, g := range snap.order {
		if o := old[g]; o == nil || !o.Equal(&snap.nodes[g].Node) {
			d.p.changed = append(d.p.changed, g)
		}
	}
	return d.p
}

// differ is the state of one diff, step by step.
type differ struct {
	p    *plan
	t    *oldTree
	old  map[gfid.GFID]*catalog.Node
	snap *Snapshot
	// parkPrefix starts the names of what this worker parks.
	parkPrefix string

	oldOrder []gfid.GFID                   // the old gfids but the root, by old path
	parked   map[gfid.GFID]catalog.Link    // gfid → the old link it is parked from
	direct   map[gfid.GFID]bool            // parked gfids renamed straight to their new name instead
	oldNames map[gfid.GFID]map[string]bool // memo of the names a directory held (takenInOld)
	added    map[gfid.GFID][]catalog.Link  // new links
	drops    []gfidLink                    // old links to remove (other than parked ones)
	needed   map[catalog.Link]bool         // links that some gfid takes
	touched  map[gfid.GFID]bool            // directories whose entries change
}

func (d *differ) rec(r changelog.Record) { d.p.records = append(d.p.records, r) }

func entryRecord(g gfid.GFID, fop changelog.Fop, l catalog.Link) changelog.Record {
	return changelog.Record{Kind: changelog.Entry, GFID: g, Fop: fop, Parent: l.Parent, Name: l.Name}
}

// classify classifies every link change: new links, and old links parked
// (the first removed link of a gfid that gains one) or dropped.
func (d *differ) classify() {
	old, snap := d.old, d.snap
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
				d.added[g] = append(d.added[g], l)
				d.needed[l] = true
			}
		}
	}
	d.oldOrder = make([]gfid.GFID, 0, len(old))
	for g := range old {
		if g != gfid.Root {
			d.oldOrder = append(d.oldOrder, g)
		}
	}
	slices.SortFunc(d.oldOrder, func(a, b gfid.GFID) int {
		return cmp.Or(strings.Compare(d.t.path(a), d.t.path(b)), bytes.Compare(a[:], b[:]))
	})
	for _, g := range d.oldOrder {
		o := old[g]
		var newSet map[catalog.Link]bool
		n := snap.nodes[g]
		if n != nil {
			newSet = linkSet(n.Links)
		} else {
			d.p.deleted = append(d.p.deleted, g)
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
		if len(d.added[g]) > 0 {
			d.parked[g] = removed[0]
			removed = removed[1:]
		}
		for _, l := range removed {
			d.drops = append(d.drops, gfidLink{g, l})
		}
	}
}

// keepOnlyInTheWay is IgnoreDeletes: only what is in the way of a new name
// goes, and with a directory everything still in it.
func (d *differ) keepOnlyInTheWay() {
	isPark := func(x gfidLink) bool { pl, ok := d.parked[x.g]; return ok && pl == x.l }
	keep := map[gfidLink]bool{}
	var queue []gfidLink
	for _, dr := range d.drops {
		if d.needed[dr.l] {
			keep[dr] = true
			queue = append(queue, dr)
		}
	}
	for len(queue) > 0 {
		dr := queue[0]
		queue = queue[1:]
		if o := d.old[dr.g]; o == nil || o.Type != catalog.TypeDir {
			continue
		}
		for _, c := range d.t.children[dr.g] {
			if !keep[c] && !isPark(c) {
				keep[c] = true
				queue = append(queue, c)
			}
		}
	}
	d.drops = slices.DeleteFunc(d.drops, func(dr gfidLink) bool { return !keep[dr] })
}

// park parks every gfid that changes name, but renames a non-directory
// straight to its new name when nothing can be in the way (renameDirect):
// one rename instead of two.
func (d *differ) park() {
	for _, g := range d.oldOrder {
		if l, ok := d.parked[g]; ok {
			r := entryRecord(g, changelog.Rename, l)
			if d.renameDirect(g) {
				to := d.added[g][0]
				r.NewParent, r.NewName = to.Parent, to.Name
				d.direct[g] = true
				d.touched[to.Parent] = true
			} else {
				r.NewParent, r.NewName = gfid.Park, d.parkPrefix+g.String()
			}
			d.rec(r)
			d.touched[l.Parent] = true
			d.p.stats.Renames++
		}
	}
}

// renameDirect reports whether parked gfid g may be renamed to its first
// new name in step 1, before anything is removed or created: it is not a
// directory (a directory moved under a former child, or two swapped, need
// the park), its new name's directory already exists (not made in step
// 3), and no name the catalog last synced is that new name, so nothing
// there is replaced: neither an inode that moves away later in this pass
// (a chain or a swap of names) nor one step 2 removes.
func (d *differ) renameDirect(g gfid.GFID) bool {
	o := d.old[g]
	if o == nil || o.Type == catalog.TypeDir {
		return false
	}
	to := d.added[g][0]
	if to.Parent == gfid.Park || to.Parent != gfid.Root && d.old[to.Parent] == nil {
		return false
	}
	return !d.takenInOld(to)
}

// takenInOld reports whether some gfid held l when the catalog last synced.
func (d *differ) takenInOld(l catalog.Link) bool {
	names, ok := d.oldNames[l.Parent]
	if !ok {
		names = map[string]bool{}
		for _, c := range d.t.children[l.Parent] {
			names[c.l.Name] = true
		}
		d.oldNames[l.Parent] = names
	}
	return names[l.Name]
}

// remove unlinks non-directories, then removes directories deepest first.
func (d *differ) remove() {
	var rmdirs []gfidLink
	for _, dr := range d.drops {
		d.touched[dr.l.Parent] = true
		if o := d.old[dr.g]; o.Type == catalog.TypeDir {
			rmdirs = append(rmdirs, dr)
			continue
		}
		d.rec(entryRecord(dr.g, changelog.Unlink, dr.l))
		d.p.stats.Deletes++
	}
	slices.SortStableFunc(rmdirs, func(a, b gfidLink) int { return cmp.Compare(d.t.depth(b.l), d.t.depth(a.l)) })
	for _, dr := range rmdirs {
		d.rec(entryRecord(dr.g, changelog.Rmdir, dr.l))
		d.p.stats.Deletes++
	}
}

// mkdirs creates the new directories, parents first (snapshot order is
// depth first).
func (d *differ) mkdirs() {
	for _, g := range d.snap.order {
		n := d.snap.nodes[g]
		if g == gfid.Root || d.old[g] != nil || n.Type != catalog.TypeDir {
			continue
		}
		r := entryRecord(g, changelog.Mkdir, n.Links[0])
		r.Mode, r.UID, r.GID = n.Mode, n.UID, n.GID
		d.rec(r)
		d.touched[n.Links[0].Parent] = true
	}
}

// unpark renames the parked gfids to their new names, then links their
// further new names.
func (d *differ) unpark() {
	for _, g := range d.snap.order {
		if _, ok := d.parked[g]; !ok {
			continue
		}
		ls := d.added[g]
		if !d.direct[g] {
			d.rec(changelog.Record{Kind: changelog.Entry, GFID: g, Fop: changelog.Rename,
				Parent: gfid.Park, Name: d.parkPrefix + g.String(), NewParent: ls[0].Parent, NewName: ls[0].Name})
		}
		for _, l := range ls[1:] {
			d.rec(entryRecord(g, changelog.Link, l))
		}
		for _, l := range ls {
			d.touched[l.Parent] = true
		}
	}
}

// creates creates the new non-directories and links the new names of
// existing ones.
func (d *differ) creates() {
	for _, g := range d.snap.order {
		n := d.snap.nodes[g]
		if g == gfid.Root || n.Type == catalog.TypeDir {
			continue
		}
		if _, ok := d.parked[g]; ok {
			continue
		}
		ls := d.added[g]
		if len(ls) == 0 {
			continue
		}
		if d.old[g] == nil {
			var r changelog.Record
			switch n.Type {
			case catalog.TypeReg:
				r = entryRecord(g, changelog.Create, ls[0])
				r.Mode, r.UID, r.GID = n.Mode, n.UID, n.GID
			case catalog.TypeSymlink:
				r = entryRecord(g, changelog.Symlink, ls[0])
			default:
				r = entryRecord(g, changelog.Mknod, ls[0])
				r.Mode, r.UID, r.GID = n.Mode, n.UID, n.GID
			}
			d.rec(r)
			ls = ls[1:]
		}
		for _, l := range ls {
			d.rec(entryRecord(g, changelog.Link, l))
		}
		for _, l := range d.added[g] {
			d.touched[l.Parent] = true
		}
	}
}

// meta writes the metadata records: xattrs (with syncXattrs), then
// attributes.
func (d *differ) meta(syncXattrs bool) {
	for _, g := range d.snap.order {
		n := d.snap.nodes[g]
		o := d.old[g]
		if syncXattrs && ((o == nil && n.XattrHash != nil) || (o != nil && !bytes.Equal(o.XattrHash, n.XattrHash))) {
			d.rec(changelog.Record{Kind: changelog.Meta, GFID: g, Fop: changelog.Setxattr})
			d.p.stats.Meta++
		}
		var setattr bool
		if o == nil {
			// CREATE carries mode and owner and data sync the mtime of a
			// regular file; everything else needs its attributes set.
			setattr = n.Type != catalog.TypeReg
		} else {
			setattr = o.Mode != n.Mode || o.UID != n.UID || o.GID != n.GID || o.MtimeNs != n.MtimeNs || d.touched[g]
		}
		if setattr {
			d.rec(changelog.Record{Kind: changelog.Meta, GFID: g, Fop: changelog.Setattr})
			d.p.stats.Meta++
		}
	}
}

// data writes a D record for every regular file whose data may have
// changed.
func (d *differ) data(forceData, noCtime map[gfid.GFID]bool) {
	for _, g := range d.snap.order {
		n := d.snap.nodes[g]
		if n.Type != catalog.TypeReg {
			continue
		}
		if o := d.old[g]; o == nil || o.Size != n.Size || o.MtimeNs != n.MtimeNs || (o.CtimeNs != n.CtimeNs && (!noCtime[g] || o.CtimeNs < 0)) || forceData[g] {
			d.rec(changelog.Record{Kind: changelog.Data, GFID: g})
			d.p.stats.Data++
			d.p.stats.DataBytes += n.Size
		}
	}
}

func linkSet(ls []catalog.Link) map[catalog.Link]bool {
	m := make(map[catalog.Link]bool, len(ls))
	for _, l := range ls {
		m[l] = true
	}
	return m
}
