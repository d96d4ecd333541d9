package crawl

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/georep/georep/master/catalog"
	"github.com/georep/georep/master/changelog"
	"github.com/georep/georep/rpc/beneath"
	"github.com/georep/georep/rpc/gfid"
	"golang.org/x/sys/unix"
)

// Dir is a directory of the source in which some names changed, as a
// change journal reported them.
type Dir struct {
	// Fd is an open descriptor of the directory (O_RDONLY|O_DIRECTORY),
	// owned by the caller. Using the descriptor, not a path, keeps a
	// directory renamed since the change was reported the same directory.
	Fd int
	// Rel is the directory's path relative to the source ("." for the
	// source) when it was opened: data of the files in it is read there.
	Rel string
	// Names to re-examine, each mapped to whether its content was written
	// (which ships its data even if size and times look unchanged). The
	// name "" stands for the directory itself (its attributes).
	Names map[string]bool
}

// ErrIncomplete is returned by Scoped when the names it was given do not
// tell where some entry belongs (a directory the catalog has never seen,
// reported without its own creation; a catalog without the source's root):
// the caller must fall back to a hybrid crawl.
var ErrIncomplete = errors.New("crawl: the changed names do not place every entry; a hybrid crawl is needed")

// Scoped re-examines only the given names and diffs them with the catalog:
// gsyncd's changelog crawl, for a plain directory whose changes a journal
// reported by directory and name. The cost is proportional to the change:
// the names are statted, directories new to the catalog are walked whole,
// and the catalog is read only for the gfids involved and their ancestors.
// The records and the Result are those of Hybrid, and are committed the
// same way; the Snapshot holds only the gfids involved (no Children).
//
// A name examined and not found has lost its entry; a gfid left without
// any name is deleted (a directory with everything the catalog has below
// it), unless the same batch finds it elsewhere: a rename is reported in
// both directories, so batches that include both ends become renames.
func Scoped(ctx context.Context, cfg Config, cat *catalog.Catalog, dirs []Dir, log *slog.Logger) (*Result, error) {
	start := time.Now()
	res := &Result{}
	w, err := newWalker(ctx, cfg, cat, log, &res.Stats)
	if err != nil {
		return nil, err
	}
	rootSt, err := statxAt(unix.AT_FDCWD, w.cfg.Source, 0)
	if err != nil {
		return nil, fmt.Errorf("crawl: stat source %s: %w", w.cfg.Source, err)
	}
	w.known = func(k catalog.Key) bool {
		g, ok, err := cat.Identity(k)
		if err != nil || !ok {
			return false
		}
		_, ok, err = cat.Node(g)
		return err == nil && ok
	}
	defer w.closeAll()
	sc := &scopedCrawl{w: w, cfg: w.cfg, cat: cat, res: res, log: log, rootKey: keyOf(&rootSt)}
	defer sc.closeOpened()
	for _, step := range []func() error{
		func() error { return sc.examine(dirs) }, // 1. stat the names, walk what is new
		sc.identify,                              // 2. a gfid for every inode found
		sc.involve,                               // 3. the gfids involved, with their names
		sc.snapshot,                              // 4. the snapshot of those, with their ancestors
		sc.plan,                                  // 5. diff with the catalog, write the changelog
	} {
		if err := step(); err != nil {
			return nil, err
		}
	}
	s := &res.Stats
	s.Duration = time.Since(start)
	w.log.Debug("scoped crawl done", "dirs", len(dirs), "changelog", res.Changelog, "entries", s.Entries,
		"data", s.Data, "meta", s.Meta, "deletes", s.Deletes, "renames", s.Renames, "new", s.New, "duration", s.Duration)
	return res, nil
}

// scopedCrawl is the state of one Scoped call, step by step.
type scopedCrawl struct {
	w       *walker
	cfg     Config
	cat     *catalog.Catalog
	res     *Result
	log     *slog.Logger
	rootKey catalog.Key

	// examine
	tops   []probed
	stack  []*dirHandle   // directories new to the catalog, to walk whole
	extra  map[wlink]bool // names examined only as other names of a changed file
	opened []int          // descriptors of the directories of those names
	// identify
	old map[gfid.GFID]*catalog.Node // the catalog's nodes read so far (nil: none)
	// involve
	fresh    map[gfid.GFID]*inode // what was found on the source
	found    map[gfid.GFID][]catalog.Link
	noCtime  map[gfid.GFID]bool
	examined map[catalog.Link]bool
	force    map[gfid.GFID]bool
	involved map[gfid.GFID]bool
	gone     map[gfid.GFID]bool // directories left without a name
	links    map[gfid.GFID][]catalog.Link
	// snapshot
	snap *Snapshot
}

func (sc *scopedCrawl) closeOpened() {
	for _, fd := range sc.opened {
		unix.Close(fd)
	}
}

// examine stats the directories and the names in them, and the other
// names of the files changed there; it walks the directories the catalog
// does not know.
func (sc *scopedCrawl) examine(dirs []Dir) error {
	w := sc.w
	for _, d := range dirs {
		rel := d.Rel
		if rel == "" {
			rel = "."
		}
		h, err := w.topDir(d.Fd, rel, sc.rootKey)
		if err != nil {
			if vanished(err) {
				sc.res.Stats.Vanished++
				continue
			}
			return fmt.Errorf("crawl: %w", err)
		}
		sc.tops = append(sc.tops, probed{h, rel, maps.Clone(d.Names)})
	}
	for _, p := range sc.tops {
		names := make([]string, 0, len(p.names))
		for name := range p.names {
			if name != "" {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		for _, name := range names {
			if err := sc.probe(p, name); err != nil {
				return err
			}
		}
	}
	// A file changed through a name that no longer holds it (chmod or a
	// write through one hardlink, then that name removed or renamed over)
	// was reported under that name only: it is examined at its other
	// names too.
	more, opened, err := w.otherNames(sc.cat, sc.rootKey, &sc.tops)
	sc.opened = opened
	if err != nil {
		return err
	}
	sc.extra = make(map[wlink]bool, len(more))
	for _, m := range more {
		if err := sc.probe(sc.tops[m.top], m.name); err != nil {
			return err
		}
		sc.extra[wlink{sc.tops[m.top].h.in, m.name}] = true
	}
	if err := w.descend(sc.stack); err != nil {
		return fmt.Errorf("crawl: %w", err)
	}
	return nil
}

// probe stats name in p and queues it for a walk when it is a directory
// the catalog does not know.
func (sc *scopedCrawl) probe(p probed, name string) error {
	if err := sc.w.entry(p.h, name); err != nil {
		return fmt.Errorf("crawl: %w", err)
	}
	c := p.h.in.children[name]
	if c != nil && c.node.Type == catalog.TypeDir && c.children == nil && !sc.w.known(c.key) && !sc.isTop(c) {
		c.children = map[string]*inode{}
		sc.stack = append(sc.stack, &dirHandle{parent: p.h, name: name, in: c, dev: p.h.dev, fd: -1})
		p.h.pending++
	}
	return nil
}

// isTop reports whether in is one of the directories the crawl was given.
func (sc *scopedCrawl) isTop(in *inode) bool {
	return slices.ContainsFunc(sc.tops, func(t probed) bool { return t.h.in == in })
}

// identify gives every inode found its gfid; one whose type changed under
// the same key gets a new one (on a plain directory). The catalog must
// hold the source's root.
func (sc *scopedCrawl) identify() error {
	w, cat := sc.w, sc.cat
	var live []*inode
	for _, in := range w.inodes {
		if in.node.Type != catalog.TypeUnknown && in.key != sc.rootKey {
			live = append(live, in)
		}
	}
	gfids, fresh, err := w.identify(cat, live)
	if err != nil {
		return fmt.Errorf("crawl: %w", err)
	}
	sc.res.Stats.New = int64(fresh)
	sc.old = map[gfid.GFID]*catalog.Node{}
	for i, in := range live {
		g := gfids[i]
		o, err := sc.load(g)
		if err != nil {
			return err
		}
		if o != nil && o.Type != in.node.Type && !sc.cfg.Brick {
			if g, err = cat.Reassign(in.key); err != nil {
				return fmt.Errorf("crawl: %w", err)
			}
			sc.res.Stats.New++
			sc.old[g] = nil
		}
		in.node.GFID = g
	}
	if in := w.byKey[sc.rootKey]; in != nil {
		in.node.GFID = gfid.Root
	}
	rootOld, err := sc.load(gfid.Root)
	if err != nil {
		return err
	}
	if rootOld == nil {
		return ErrIncomplete
	}
	return nil
}

// load returns the catalog's node of g (nil: none), read once.
func (sc *scopedCrawl) load(g gfid.GFID) (*catalog.Node, error) {
	if o, ok := sc.old[g]; ok {
		return o, nil
	}
	n, ok, err := sc.cat.Node(g)
	if err != nil {
		return nil, fmt.Errorf("crawl: %w", err)
	}
	var o *catalog.Node
	if ok {
		o = &n
	}
	sc.old[g] = o
	return o, nil
}

// involve finds the gfids involved: those found, and those the catalog
// had at the examined names; a directory left without a name takes
// everything the catalog has below it (orphans).
func (sc *scopedCrawl) involve() error {
	sc.fresh = map[gfid.GFID]*inode{}
	sc.found = map[gfid.GFID][]catalog.Link{}
	// Files found only at the other names of a changed file: unlinking
	// the lost name changed their ctime, which is no sign of a write here
	// (one through the lost name was reported with it). With
	// WritesRecorded, no file's ctime is.
	sc.noCtime = map[gfid.GFID]bool{}
	for _, in := range sc.w.inodes {
		if in.node.Type == catalog.TypeUnknown {
			continue
		}
		sc.fresh[in.node.GFID] = in
		for _, l := range in.links {
			sc.found[in.node.GFID] = append(sc.found[in.node.GFID], catalog.Link{Parent: l.parent.node.GFID, Name: l.name})
		}
		if !sc.cfg.Walked && sc.cfg.WritesRecorded {
			sc.noCtime[in.node.GFID] = true
		} else if !sc.cfg.Walked && len(in.links) > 0 && !slices.ContainsFunc(in.links, func(l wlink) bool { return !sc.extra[l] }) {
			sc.noCtime[in.node.GFID] = true
		}
	}
	sc.examined = map[catalog.Link]bool{}
	sc.force = map[gfid.GFID]bool{}
	sc.involved = map[gfid.GFID]bool{}
	for g := range sc.fresh {
		sc.involved[g] = true
	}
	for _, p := range sc.tops {
		for name, data := range p.names {
			if name == "" {
				continue
			}
			l := catalog.Link{Parent: p.h.in.node.GFID, Name: name}
			sc.examined[l] = true
			if c := p.h.in.children[name]; c != nil && data {
				sc.force[c.node.GFID] = true
			}
			og, ok, err := sc.cat.Lookup(l.Parent, l.Name)
			if err != nil {
				return fmt.Errorf("crawl: %w", err)
			}
			if ok {
				sc.involved[og] = true
			}
		}
	}
	return sc.orphans()
}

// orphans gives every gfid involved its links (found, and the catalog's at
// names not examined), until no directory is newly left without a name;
// the children of such a directory are involved too.
func (sc *scopedCrawl) orphans() error {
	sc.gone = map[gfid.GFID]bool{}
	sc.links = map[gfid.GFID][]catalog.Link{}
	for {
		grew := false
		for g := range sc.involved {
			o, err := sc.load(g)
			if err != nil {
				return err
			}
			ls := slices.Clone(sc.found[g])
			// A directory has one name: found at one, it left the
			// others, examined or not (the two halves of its rename may
			// come in different batches).
			if o != nil && (o.Type != catalog.TypeDir || len(ls) == 0) {
				for _, l := range o.Links {
					if !sc.examined[l] && !sc.gone[l.Parent] && !slices.Contains(ls, l) {
						ls = append(ls, l)
					}
				}
			}
			sc.links[g] = ls
			if len(ls) > 0 || g == gfid.Root || o == nil || o.Type != catalog.TypeDir || sc.gone[g] {
				continue
			}
			sc.gone[g] = true
			grew = true
			kids, err := sc.cat.Children(g)
			if err != nil {
				return fmt.Errorf("crawl: %w", err)
			}
			for _, c := range kids {
				sc.involved[c] = true
			}
		}
		if !grew {
			return nil
		}
	}
}

// snapshot makes the snapshot: the gfids involved that still have a name,
// with their ancestors as the catalog has them (unchanged) so that paths
// and the order of removals are whole.
func (sc *scopedCrawl) snapshot() error {
	snap := &Snapshot{source: sc.cfg.Source, nodes: map[gfid.GFID]*Node{}, children: map[gfid.GFID]map[string]gfid.GFID{}, rel: map[gfid.GFID]string{}}
	sc.snap = snap
	for g := range sc.involved {
		ls := sc.links[g]
		if len(ls) == 0 && g != gfid.Root {
			if in := sc.fresh[g]; in != nil {
				// On the source but placed nowhere: its own creation
				// was not among the names.
				sc.log.Debug("scoped crawl cannot place an entry", "gfid", g)
				return ErrIncomplete
			}
			continue
		}
		var n Node
		if in := sc.fresh[g]; in != nil {
			n = Node{Node: in.node, Xattrs: in.xattrs}
			if in.children != nil && !sc.isTop(in) {
				kids := make(map[string]gfid.GFID, len(in.children))
				for name, c := range in.children {
					kids[name] = c.node.GFID
				}
				snap.children[g] = kids
			}
		} else {
			n = Node{Node: *sc.old[g]}
		}
		n.GFID, n.Links = g, ls
		snap.nodes[g] = &n
	}
	for _, p := range sc.tops {
		if _, ok := snap.nodes[p.h.in.node.GFID]; ok {
			snap.rel[p.h.in.node.GFID] = p.rel
		}
	}
	if err := sc.ancestors(); err != nil {
		return err
	}
	snap.order = snap.depthOrder()
	return nil
}

// ancestors adds the catalog's ancestors of every node of the snapshot,
// and keeps in old only the catalog's nodes (the diff's "before").
func (sc *scopedCrawl) ancestors() error {
	snap := sc.snap
	for g := range sc.involved {
		n := snap.nodes[g]
		if n == nil {
			continue
		}
		for _, l := range n.Links {
			for p := l.Parent; ; {
				if _, ok := snap.nodes[p]; ok || sc.gone[p] {
					break
				}
				o, err := sc.load(p)
				if err != nil {
					return err
				}
				if o == nil {
					return ErrIncomplete // a parent the catalog does not hold
				}
				snap.nodes[p] = &Node{Node: *o}
				if p == gfid.Root || len(o.Links) == 0 {
					break
				}
				p = o.Links[0].Parent
			}
		}
	}
	for g := range sc.old {
		if _, ok := snap.nodes[g]; !ok && sc.old[g] == nil {
			delete(sc.old, g)
		}
	}
	for g, o := range sc.old {
		if o == nil {
			delete(sc.old, g)
		}
	}
	return nil
}

// plan diffs the snapshot with the catalog, counts, and writes the
// changelog.
func (sc *scopedCrawl) plan() error {
	res, snap := sc.res, sc.snap
	p := diff(sc.old, snap, &sc.cfg, sc.force, sc.noCtime)
	res.Snapshot, res.Records, res.changed, res.deleted = snap, p.records, p.changed, p.deleted
	s := &res.Stats
	s.Entries, s.Data, s.DataBytes, s.Meta, s.Deletes, s.Renames = p.stats.Entries, p.stats.Data, p.stats.DataBytes, p.stats.Meta, p.stats.Deletes, p.stats.Renames
	for _, n := range snap.nodes {
		if n.Type == catalog.TypeDir {
			s.Dirs++
		} else {
			s.Files++
		}
	}
	if len(res.Records) > 0 {
		var err error
		if res.Changelog, err = changelog.WriteFile(sc.cfg.ChangelogDir, ChangelogPrefix, res.Records); err != nil {
			return fmt.Errorf("crawl: %w", err)
		}
	}
	return nil
}

// probed is a directory of a scoped crawl with the names it re-examines
// there, each mapped to whether its content was written.
type probed struct {
	h     *dirHandle
	rel   string
	names map[string]bool
}

// topDir makes a directory of a scoped crawl from fd, its open descriptor,
// and rel, its path relative to the source.
func (w *walker) topDir(fd int, rel string, rootKey catalog.Key) (*dirHandle, error) {
	st, err := statxAt(fd, "", unix.AT_EMPTY_PATH)
	if err != nil {
		return nil, fmt.Errorf("stat directory %q: %w", rel, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, fmt.Errorf("%q is not a directory", rel)
	}
	key := keyOf(&st)
	in := w.byKey[key]
	if in == nil {
		var g gfid.GFID
		if w.cfg.Brick {
			if g, err = brickGFID(fd, ""); err != nil {
				return nil, fmt.Errorf("gfid of directory %q: %w", rel, err)
			}
		}
		in = w.newInode(&st)
		in.gfid = g
		w.byKey[key] = in
	}
	if in.children == nil {
		in.children = map[string]*inode{}
	}
	if w.cfg.SyncXattrs && in.xattrs == nil {
		x, err := userXattrs(fd, ".")
		if err != nil && !vanished(err) {
			return nil, fmt.Errorf("xattrs of %q: %w", rel, err)
		}
		in.xattrs, in.node.XattrHash = x, hashXattrs(x)
	}
	return &dirHandle{name: rel, in: in, dev: devOf(&st), fd: fd, top: key == rootKey}, nil
}

// topName is a name to examine in tops[top].
type topName struct {
	top  int
	name string
}

// otherNames finds the non-directories the catalog has at an examined name
// that no longer holds them (removed, renamed over), or in a directory
// removed, and returns their other names as the catalog has them, to be
// examined too: a change made through the lost name (chmod, utime, a
// write, through one hardlink of several) was reported under that name
// only. The directories of those names join
// tops, opened where this crawl places them (where it found them, or under
// a directory it found moved), else where the catalog does; opened holds
// the descriptors it opened, for the caller to close. A directory not
// found there (a move not reported yet) is ErrIncomplete.
func (w *walker) otherNames(cat *catalog.Catalog, rootKey catalog.Key, tops *[]probed) (more []topName, opened []int, err error) {
	s := &otherNameSearch{
		w: w, cat: cat, rootKey: rootKey, tops: tops,
		where: map[gfid.GFID]string{},
		topOf: map[gfid.GFID]int{},
	}
	if err := s.lost(); err != nil {
		return nil, nil, err
	}
	for _, wt := range s.wants {
		if err := s.add(wt); err != nil {
			return s.more, s.opened, err
		}
	}
	return s.more, s.opened, nil
}

// otherNameSearch is the state of otherNames.
type otherNameSearch struct {
	w       *walker
	cat     *catalog.Catalog
	rootKey catalog.Key
	tops    *[]probed
	where   map[gfid.GFID]string // directory → its path as this crawl found it
	topOf   map[gfid.GFID]int    // directory → its index in tops
	wants   []wantedName         // the other names, as the catalog has them
	dirs    map[gfid.GFID]bool   // the directories found, by gfid; nil until needed
	more    []topName
	opened  []int
}

// wantedName is another name of a file changed through a lost name; data
// when the change wrote its content.
type wantedName struct {
	l    catalog.Link
	data bool
}

func (s *otherNameSearch) gfidOf(k catalog.Key) (gfid.GFID, bool, error) {
	if k == s.rootKey {
		return gfid.Root, true, nil
	}
	return s.cat.Identity(k)
}

// lost collects the other names of what the catalog has at the examined
// names of the directories it knows, and notes where this crawl found
// those directories and the directories at the names.
func (s *otherNameSearch) lost() error {
	for i, p := range *s.tops {
		g, ok, err := s.gfidOf(p.h.in.key)
		if err != nil {
			return fmt.Errorf("crawl: %w", err)
		}
		if !ok {
			continue // new to the catalog: it held no names
		}
		s.topOf[g], s.where[g] = i, p.rel
		for name, data := range p.names {
			if name == "" {
				continue
			}
			if err := s.lostAt(p, g, name, data); err != nil {
				return err
			}
		}
	}
	return nil
}

// lostAt collects the other names of what the catalog has at name in p
// (directory g), when the name no longer holds it.
func (s *otherNameSearch) lostAt(p probed, g gfid.GFID, name string, data bool) error {
	var cg gfid.GFID
	var found bool
	if c := p.h.in.children[name]; c != nil {
		var err error
		if cg, found, err = s.gfidOf(c.key); err != nil {
			return fmt.Errorf("crawl: %w", err)
		}
		if found && c.node.Type == catalog.TypeDir {
			s.where[cg] = filepath.Join(p.rel, name)
		}
	}
	og, ok, err := s.cat.Lookup(g, name)
	if err != nil {
		return fmt.Errorf("crawl: %w", err)
	}
	if !ok || (found && cg == og) {
		return nil
	}
	o, ok, err := s.cat.Node(og)
	if err != nil {
		return fmt.Errorf("crawl: %w", err)
	}
	if !ok {
		return nil
	}
	if o.Type == catalog.TypeDir {
		return s.lostDir(og)
	}
	for _, l := range o.Links {
		if l != (catalog.Link{Parent: g, Name: name}) {
			s.wants = append(s.wants, wantedName{l, data})
		}
	}
	return nil
}

// lostDir collects, for directory og lost at an examined name, the names
// outside it of the files in it when it was found nowhere. Moved, it is
// found at its new name too. Found nowhere, it was removed with
// everything in it, and with the changes reported in it (its handle is
// stale): the files in it that have names elsewhere are examined there.
func (s *otherNameSearch) lostDir(og gfid.GFID) error {
	if s.dirs == nil {
		dirs, err := s.foundDirs()
		if err != nil {
			return err
		}
		s.dirs = dirs
	}
	if s.dirs[og] {
		return nil
	}
	ls, err := namesOutside(s.cat, og)
	if err != nil {
		return err
	}
	for _, l := range ls {
		s.wants = append(s.wants, wantedName{l, false})
	}
	return nil
}

// foundDirs returns the gfids of the directories this crawl found.
func (s *otherNameSearch) foundDirs() (map[gfid.GFID]bool, error) {
	m := map[gfid.GFID]bool{}
	for _, in := range s.w.inodes {
		if in.node.Type != catalog.TypeDir {
			continue
		}
		g, ok, err := s.gfidOf(in.key)
		if err != nil {
			return nil, fmt.Errorf("crawl: %w", err)
		}
		if ok {
			m[g] = true
		}
	}
	return m, nil
}

// add queues the wanted name in its directory's entry of tops, opening
// the directory and adding it to tops when it is not there yet; a
// directory removed is skipped.
func (s *otherNameSearch) add(wt wantedName) error {
	name := wt.l.Name
	i, ok := s.topOf[wt.l.Parent]
	if !ok {
		var gone bool
		var err error
		if i, gone, err = s.openTop(wt.l.Parent); err != nil || gone {
			return err
		}
	}
	p := (*s.tops)[i]
	if _, done := p.names[name]; !done {
		s.more = append(s.more, topName{i, name})
	}
	p.names[name] = p.names[name] || wt.data
	return nil
}

// openTop opens directory g where relOf places it and adds it to tops,
// returning its index; gone when it was removed. A directory not there
// is ErrIncomplete.
func (s *otherNameSearch) openTop(g gfid.GFID) (i int, gone bool, err error) {
	w := s.w
	rel, gone, ok := s.relOf(g)
	if gone {
		return 0, true, nil
	}
	if !ok {
		return 0, false, ErrIncomplete
	}
	fd, err := beneath.OpenDir(w.cfg.Source, rel)
	if err != nil {
		if vanished(err) || errors.Is(err, unix.EXDEV) {
			w.log.Debug("scoped crawl cannot find a directory of another name of a changed file", "dir", rel, "err", err)
			return 0, false, ErrIncomplete
		}
		return 0, false, fmt.Errorf("crawl: open directory %q: %w", rel, err)
	}
	s.opened = append(s.opened, fd)
	h, err := w.topDir(fd, rel, s.rootKey)
	if err != nil {
		if vanished(err) {
			return 0, false, ErrIncomplete
		}
		return 0, false, fmt.Errorf("crawl: %w", err)
	}
	if hg, ok, err := s.gfidOf(h.in.key); err != nil || !ok || hg != g {
		// Another directory is there now: the move is not
		// among the names yet.
		w.log.Debug("scoped crawl found another directory where the catalog puts one", "dir", rel)
		return 0, false, ErrIncomplete
	}
	*s.tops = append(*s.tops, probed{h, rel, map[string]bool{}})
	i = len(*s.tops) - 1
	s.topOf[g], s.where[g] = i, rel
	return i, false, nil
}

// relOf places directory g: under the nearest ancestor this crawl
// found, else where the catalog has it. gone reports a directory (or
// an ancestor) examined at its name and not found there nor
// elsewhere: removed, with everything below it.
func (s *otherNameSearch) relOf(g gfid.GFID) (rel string, gone, ok bool) {
	var parts []string
	base := "."
	for g != gfid.Root {
		if r, ok := s.where[g]; ok {
			base = r
			break
		}
		n, ok, err := s.cat.Node(g)
		if err != nil || !ok || len(n.Links) == 0 || len(parts) > 4096 {
			return "", false, false
		}
		l := n.Links[0]
		if i, ok := s.topOf[l.Parent]; ok {
			if _, examined := (*s.tops)[i].names[l.Name]; examined {
				return "", true, true
			}
		}
		parts = append(parts, l.Name)
		g = l.Parent
	}
	slices.Reverse(parts)
	return filepath.Join(append([]string{base}, parts...)...), false, true
}

// namesOutside returns the names, outside the catalog's tree below
// directory dir, of the non-directories in that tree.
func namesOutside(cat *catalog.Catalog, dir gfid.GFID) ([]catalog.Link, error) {
	below := map[gfid.GFID]bool{dir: true}
	var files []gfid.GFID
	for queue := []gfid.GFID{dir}; len(queue) > 0; queue = queue[1:] {
		kids, err := cat.Children(queue[0])
		if err != nil {
			return nil, fmt.Errorf("crawl: %w", err)
		}
		for _, c := range kids {
			n, ok, err := cat.Node(c)
			if err != nil {
				return nil, fmt.Errorf("crawl: %w", err)
			}
			switch {
			case !ok:
			case n.Type == catalog.TypeDir:
				if !below[c] {
					below[c] = true
					queue = append(queue, c)
				}
			case len(n.Links) > 1:
				files = append(files, c)
			}
		}
	}
	var out []catalog.Link
	seen := map[gfid.GFID]bool{}
	for _, g := range files {
		if seen[g] {
			continue
		}
		seen[g] = true
		n, _, err := cat.Node(g)
		if err != nil {
			return nil, fmt.Errorf("crawl: %w", err)
		}
		for _, l := range n.Links {
			if !below[l.Parent] {
				out = append(out, l)
			}
		}
	}
	return out, nil
}

func keyOf(st *unix.Statx_t) catalog.Key {
	k := catalog.Key{Ino: st.Ino}
	if st.Mask&unix.STATX_BTIME != 0 {
		k.BtimeNs = nsOf(st.Btime)
	}
	return k
}

// depthOrder orders the snapshot's gfids parents first: by depth, then by
// path, then by gfid.
func (s *Snapshot) depthOrder() []gfid.GFID {
	type key struct {
		depth int
		path  string
	}
	memo := map[gfid.GFID]key{}
	var keyOf func(g gfid.GFID, budget int) key
	keyOf = func(g gfid.GFID, budget int) key {
		if k, ok := memo[g]; ok {
			return k
		}
		n := s.nodes[g]
		if g == gfid.Root || n == nil || len(n.Links) == 0 || budget == 0 {
			return key{}
		}
		l := n.Links[0]
		pk := keyOf(l.Parent, budget-1)
		k := key{pk.depth + 1, pk.path + "\x00" + l.Name}
		memo[g] = k
		return k
	}
	order := make([]gfid.GFID, 0, len(s.nodes))
	for g := range s.nodes {
		order = append(order, g)
		keyOf(g, len(s.nodes)+1)
	}
	slices.SortFunc(order, func(a, b gfid.GFID) int {
		if a == gfid.Root || b == gfid.Root {
			return cmp.Compare(b2i(b == gfid.Root), b2i(a == gfid.Root))
		}
		ka, kb := memo[a], memo[b]
		return cmp.Or(cmp.Compare(ka.depth, kb.depth), strings.Compare(ka.path, kb.path), bytes.Compare(a[:], b[:]))
	})
	return order
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
