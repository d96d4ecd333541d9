package crawl

import (
	"cmp"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/georep/georep/master/catalog"
	"github.com/georep/georep/master/changelog"
	"github.com/georep/georep/rpc/beneath"
	"github.com/georep/georep/rpc/eintr"
	"github.com/georep/georep/rpc/gfid"
	"golang.org/x/sys/unix"
)

// DefaultSegment is how many gfids a segment of Stream holds at most.
const DefaultSegment = 20000

// maxScopedDirs bounds the directories Stream hands to one scoped crawl;
// beyond it the pass falls back to Hybrid.
const maxScopedDirs = 4096

// StreamConfig tunes Stream.
type StreamConfig struct {
	Config
	// Segment is the most gfids one emitted Result holds (DefaultSegment
	// when 0).
	Segment int
	// CheckDeletes, when set, says whether a pass may delete n entries on
	// the slave (the max-delete guard): nil when it may. Segments are
	// applied only once the deletes the pass can still make are accepted,
	// and Stream returns its error, having applied nothing, when the
	// pass's bound is refused at the end of the walk.
	CheckDeletes func(n int64) error
	// Progress, when set, is called about every ProgressEvery with the
	// totals so far.
	Progress      func(Stats)
	ProgressEvery time.Duration
}

// Stream is the hybrid crawl in memory that does not grow with the tree.
// It walks the source one directory at a time and compares each with the
// catalog's entries of that directory, never loading the namespace:
//
//   - what needs nothing but the catalog's record of the directory it is in
//     (a new entry at a name the catalog has free, a change of attributes or
//     data of an entry at its one unchanged name) is emitted in segments of
//     at most cfg.Segment gfids, each a Result of its own, in walk order
//     (parents before children), as soon as it fills; emit applies and
//     commits it before the walk goes on, so the next segment is diffed
//     against a catalog that holds it;
//   - what depends on other directories (a name the catalog has and the
//     source lost or gave to another inode, an inode at a new name, a
//     reused inode number) marks its directory; after the walk, the marked
//     directories and their names go to one scoped crawl (Scoped), which
//     pairs renames across directories, removes what is gone with its
//     subtree and creates in the right order: the last Result.
//
// Where the scoped crawl cannot place every entry (ErrIncomplete), or too
// many directories are marked, the last Result is a whole Hybrid crawl
// instead, which holds the namespace in memory: correctness first.
//
// Stream returns the totals of the walk and of every Result emitted.
func Stream(ctx context.Context, cfg StreamConfig, cat *catalog.Catalog, log *slog.Logger, emit func(*Result) error) (Stats, error) {
	start := time.Now()
	if cfg.Segment <= 0 {
		cfg.Segment = DefaultSegment
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = 10 * time.Second
	}
	var err error
	s := &streamer{ctx: ctx, scfg: cfg, cat: cat, emit: emit, multi: map[gfid.GFID]*multiNode{},
		marked: map[gfid.GFID]*markedDir{}, walked: map[catalog.Key]bool{}, pending: map[catalog.Key]gfid.GFID{},
		start: start, lastProgress: start, lost: map[gfid.GFID]int{}, movedIn: map[gfid.GFID]bool{}}
	if s.catCount, err = cat.Count(); err != nil {
		return Stats{}, err
	}
	if s.catCount > 0 {
		s.compared = 1 // the root, never a name
	}
	w, err := newWalker(ctx, cfg.Config, cat, log, &s.walkStats)
	if err != nil {
		return Stats{}, err
	}
	s.w, s.cfg, s.log = w, w.cfg, w.log
	s.seg = s.newSegment()
	s.log.Info("hybrid crawl started", "segment", cfg.Segment)
	err = s.run()
	if werr := s.wait(); err == nil {
		err = werr
	}
	if err != nil {
		s.discardHeld()
		return s.total(start), fmt.Errorf("crawl %s: %w", s.cfg.Source, err)
	}
	t := s.total(start)
	s.log.Info("hybrid crawl done", "dirs", t.Dirs, "files", t.Files, "bytes", t.Bytes, "segments", s.segments,
		"entries", t.Entries, "data", t.Data, "meta", t.Meta, "deletes", t.Deletes, "renames", t.Renames,
		"new", t.New, "vanished", t.Vanished, "skipped", t.Skipped, "marked_dirs", len(s.marked), "duration", t.Duration)
	return t, nil
}

// streamer is the state of one Stream.
type streamer struct {
	ctx  context.Context
	scfg StreamConfig
	cfg  Config
	cat  *catalog.Catalog
	log  *slog.Logger
	emit func(*Result) error
	w    *walker

	walkStats Stats // what the walker counts (vanished, skipped)
	emitted   Stats // the sums of the Results emitted
	dirs      int64
	files     int64
	bytes     int64
	segments  int

	seg *segment
	// multi holds the non-directories with more than one link, found at
	// names the catalog agrees with (or new): decided after the walk.
	multi map[gfid.GFID]*multiNode
	// marked holds the directories whose changes need a scoped crawl.
	marked map[gfid.GFID]*markedDir
	// walked holds the directories listed (a directory moved during the
	// walk is met twice).
	walked map[catalog.Key]bool
	// pending holds the gfids given to new inodes and not yet committed;
	// they are committed before the changelog that names them is written.
	pending     map[catalog.Key]gfid.GFID
	pendingKeys []catalog.Key

	start        time.Time
	lastProgress time.Time
	// The delete guard: what the catalog holds, how many of its names the
	// walk compared, the gfids that lost a name and those found at a new
	// one. lost + not yet compared bounds the deletes this pass can make;
	// segments are held back (spilled to disk) until CheckDeletes accepts
	// that bound.
	catCount     int64
	compared     int64
	lost         map[gfid.GFID]int
	movedIn      map[gfid.GFID]bool
	lostNotMoved int64
	safe         bool
	held         []string // spilled segments, in order

	// inflight is the segment being applied, with its snapshot.
	inflight    chan error
	inflightSeg *segment
	lastSeg     *segment // the segment of the Result being emitted (nil: not a segment)

	// pre is what the catalog held for the inodes of the chunk being
	// examined, read in two sorted passes (prefetch); catGen counts the
	// streamer's steps that may change the catalog (commitPending,
	// emitResult, wait), and pre is believed only while it has not moved.
	pre    prefetched
	catGen uint64
}

// prefetched holds the catalog's identities and nodes of a chunk's inodes,
// as read at generation gen: a key or gfid it holds was looked up (ok false:
// the catalog had none); one it does not hold was not.
type prefetched struct {
	gen   uint64
	ident map[catalog.Key]identHit
	nodes map[gfid.GFID]nodeHit
}

type identHit struct {
	g  gfid.GFID
	ok bool
}

type nodeHit struct {
	n  catalog.Node
	ok bool
}

// segment is the pure changes gathered for one Result.
type segment struct {
	old     map[gfid.GFID]*catalog.Node
	snap    *Snapshot
	context map[gfid.GFID]bool // directories present only for their paths and times
	n       int
}

// multiNode is an inode with several links, gathered over the walk.
type multiNode struct {
	node  *Node // nil until met at a name not marked
	old   *catalog.Node
	at    []walkDir // per name found, its directory
	names []string
	taint bool // one of its names was marked: all of them are
}

// markedDir is a directory handed to the scoped crawl.
type markedDir struct {
	rel   string
	key   catalog.Key
	names map[string]bool
}

// walkDir is a directory of the walk with what the parent's listing said
// of it.
type walkDir struct {
	h      *dirHandle
	rel    string
	node   *Node // as walked, GFID set, Links its current link (none for the root)
	shadow bool  // below a marked directory that is new to the catalog
}

func (s *streamer) newSegment() *segment {
	return &segment{old: map[gfid.GFID]*catalog.Node{}, context: map[gfid.GFID]bool{},
		snap: &Snapshot{source: s.cfg.Source, nodes: map[gfid.GFID]*Node{}, children: map[gfid.GFID]map[string]gfid.GFID{},
			rel: map[gfid.GFID]string{}}}
}

func (s *streamer) total(start time.Time) Stats {
	t := s.emitted
	t.Dirs, t.Files, t.Bytes = s.dirs, s.files, s.bytes
	t.Vanished += s.walkStats.Vanished
	t.Skipped += s.walkStats.Skipped
	t.Duration = time.Since(start)
	return t
}

// run walks the tree, then settles the inodes with several links and the
// marked directories.
func (s *streamer) run() error {
	w := s.w
	rootFd, err := eintr.Value(func() (int, error) {
		return unix.Open(s.cfg.Source, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return fmt.Errorf("open source %s: %w", s.cfg.Source, err)
	}
	defer unix.Close(rootFd)
	st, err := statxAt(rootFd, "", unix.AT_EMPTY_PATH)
	if err != nil {
		return fmt.Errorf("stat source %s: %w", s.cfg.Source, err)
	}
	w.root = w.newInode(&st)
	root := &Node{Node: w.root.node}
	root.GFID = gfid.Root
	if s.cfg.SyncXattrs {
		x, err := userXattrs(rootFd, ".")
		if err != nil && !vanished(err) {
			return fmt.Errorf("xattrs of the source: %w", err)
		}
		root.Xattrs, root.XattrHash = x, hashXattrs(x)
	}
	o, ok, err := s.cat.Node(gfid.Root)
	if err != nil {
		return err
	}
	if !ok || !o.Equal(&root.Node) {
		var op *catalog.Node
		if ok {
			op = &o
		}
		s.addPure(root, op, nil, "")
	}
	s.walked[w.root.key] = true
	s.dirs++
	rh := &dirHandle{in: w.root, dev: devOf(&st), fd: rootFd, top: true}
	stack := []walkDir{{h: rh, rel: ".", node: root}}
	defer w.closeAll()
	for len(stack) > 0 {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if d.h.parent != nil {
			ok, err := w.openDir(d.h)
			d.h.parent.pending--
			if d.h.parent.pending == 0 {
				w.closeDir(d.h.parent)
			}
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
		}
		subs, err := s.listDir(d)
		if err != nil {
			return err
		}
		d.h.pending = len(subs)
		if d.h.pending == 0 {
			w.closeDir(d.h)
		}
		for i := len(subs) - 1; i >= 0; i-- {
			stack = append(stack, subs[i])
		}
		s.progress()
	}
	if err := s.settleMulti(); err != nil {
		return err
	}
	if err := s.flush(); err != nil {
		return err
	}
	if !s.safe && s.scfg.CheckDeletes != nil {
		if err := s.scfg.CheckDeletes(s.worstDeletes()); err != nil {
			s.discardHeld()
			return err
		}
	}
	s.safe = true
	if err := s.release(); err != nil {
		return err
	}
	if err := s.wait(); err != nil {
		return err
	}
	return s.scoped(rootFd)
}

// lose records that g lost a name.
func (s *streamer) lose(g gfid.GFID) {
	if !s.movedIn[g] {
		s.lostNotMoved++
	}
	s.lost[g]++
}

// moveIn records that g is at a name the catalog does not have for it: its
// lost names are renames, not deletes.
func (s *streamer) moveIn(g gfid.GFID) {
	if !s.movedIn[g] {
		s.lostNotMoved -= int64(s.lost[g])
	}
	s.movedIn[g] = true
}

// worstDeletes bounds the deletes the pass can still make: the names lost
// by gfids not found at a new name, and every catalog name not yet
// compared (a lost directory's subtree is never compared). It never grows.
func (s *streamer) worstDeletes() int64 {
	return s.lostNotMoved + max(s.catCount-s.compared, 0)
}

// progress logs the totals every ProgressEvery.
func (s *streamer) progress() {
	now := time.Now()
	if now.Sub(s.lastProgress) < s.scfg.ProgressEvery {
		return
	}
	s.lastProgress = now
	t := s.total(s.start)
	if s.scfg.Progress != nil {
		s.scfg.Progress(t)
	}
}

// listChunk is how many names of a directory Stream examines at a time;
// bigDir the number of catalog entries above which a directory's entries
// are looked up one by one instead of loaded. Variables for the tests.
var (
	listChunk = 10000
	bigDir    = 50000
)

// listDir lists d chunk by chunk, compares it with the catalog's entries of
// d and returns its subdirectories to walk.
func (s *streamer) listDir(d walkDir) ([]walkDir, error) {
	dirG := d.node.GFID
	c := &dirCompare{s: s, dirG: dirG}
	if err := c.load(); err != nil {
		return nil, err
	}
	var subs []walkDir
	err := readNameChunks(d.h.fd, listChunk, func(names []string) error {
		more, err := s.listChunk(d, names, c)
		subs = append(subs, more...)
		return err
	})
	if err != nil {
		if vanished(err) {
			s.walkStats.Vanished++
			return subs, nil
		}
		return nil, fmt.Errorf("list directory %s: %w", s.w.relPath(d.h), err)
	}
	// What the catalog has and the source lost: a delete, or one end of a
	// rename.
	lost, compared, err := c.lost(d.h.fd)
	if err != nil {
		return nil, err
	}
	s.compared += compared
	for _, l := range lost {
		s.mark(d, l.name)
		s.lose(l.g)
	}
	return subs, nil
}

// listChunk examines names of d.
func (s *streamer) listChunk(d walkDir, names []string, c *dirCompare) ([]walkDir, error) {
	w, h := s.w, d.h
	h.in.children = make(map[string]*inode, len(names))
	w.inodes = w.inodes[:0]
	defer func() {
		// Only inodes with several links are kept past their directory.
		for _, in := range w.inodes {
			if in.node.Type == catalog.TypeDir || in.nlink <= 1 {
				delete(w.byKey, in.key)
			}
		}
		h.in.children = nil
	}()
	slices.Sort(names)
	// Every name is looked at first, then the catalog's identities and
	// records of the chunk's inodes are read in one sorted pass each
	// (point lookups cost a new iterator each: half the CPU of a pass
	// that finds nothing to do).
	ins := make([]*inode, len(names))
	for i, name := range names {
		if err := s.ctx.Err(); err != nil {
			return nil, err
		}
		if err := w.entry(h, name); err != nil {
			return nil, err
		}
		ins[i] = h.in.children[name]
	}
	if err := s.prefetch(ins); err != nil {
		return nil, err
	}
	var subs []walkDir
	for i, name := range names {
		if err := s.ctx.Err(); err != nil {
			return subs, err
		}
		in := ins[i]
		if in == nil {
			c.skipped(name) // vanished, or not replicated (mount point, our own files)
			continue
		}
		c.seen(name)
		held, known, err := c.lookup(name)
		if err != nil {
			return subs, err
		}
		sub, err := s.entry(d, name, in, held, known)
		if err != nil {
			return subs, err
		}
		if sub != nil {
			subs = append(subs, *sub)
		}
	}
	return subs, nil
}

// dirCompare holds what the catalog has in one directory: loaded whole when
// small, looked up name by name when big (then the source is asked for the
// catalog's names after the listing).
type dirCompare struct {
	s    *streamer
	dirG gfid.GFID
	had  map[string]gfid.GFID // nil: a big directory
	// small: the names seen; big: the names skipped
	names map[string]bool
}

var errBig = errors.New("big directory")

func (c *dirCompare) load() error {
	c.had = map[string]gfid.GFID{}
	c.names = map[string]bool{}
	err := c.s.cat.ForEachChild(c.dirG, func(name string, g gfid.GFID) error {
		if len(c.had) >= bigDir {
			return errBig
		}
		c.had[name] = g
		return nil
	})
	if errors.Is(err, errBig) {
		c.had = nil
		return nil
	}
	return err
}

func (c *dirCompare) seen(name string) {
	if c.had != nil {
		c.names[name] = true
	}
}

func (c *dirCompare) skipped(name string) {
	if c.had == nil {
		c.names[name] = true
	}
}

func (c *dirCompare) lookup(name string) (gfid.GFID, bool, error) {
	if c.had != nil {
		g, ok := c.had[name]
		return g, ok, nil
	}
	return c.s.cat.Lookup(c.dirG, name)
}

type lostName struct {
	name string
	g    gfid.GFID
}

// lost returns the names the catalog has in the directory (open as fd)
// that the listing did not find, and how many names the catalog has there.
func (c *dirCompare) lost(fd int) (lost []lostName, compared int64, err error) {
	if c.had != nil {
		for name, g := range c.had {
			if !c.names[name] {
				lost = append(lost, lostName{name, g})
			}
		}
		return lost, int64(len(c.had)), nil
	}
	err = c.s.cat.ForEachChild(c.dirG, func(name string, g gfid.GFID) error {
		compared++
		if c.names[name] {
			lost = append(lost, lostName{name, g})
			return nil
		}
		_, err := statxAt(fd, name, 0)
		switch {
		case err == nil:
		case vanished(err):
			lost = append(lost, lostName{name, g})
		default:
			return fmt.Errorf("stat %q: %w", name, err)
		}
		return nil
	})
	return lost, compared, err
}

// readNameChunks reads the names in the directory open as fd and calls fn
// with at most n at a time.
func readNameChunks(fd, n int, fn func([]string) error) error {
	buf := make([]byte, 32<<10)
	names := make([]string, 0, n)
	for {
		var got int
		err := eintr.Retry(func() (err error) {
			got, err = unix.Getdents(fd, buf)
			return err
		})
		if err != nil {
			return err
		}
		if got > 0 {
			_, _, names = unix.ParseDirent(buf[:got], -1, names)
		}
		if len(names) >= n || (got <= 0 && len(names) > 0) {
			if err := fn(names); err != nil {
				return err
			}
			names = make([]string, 0, n)
		}
		if got <= 0 {
			return nil
		}
	}
}

// prefetch reads the catalog's identities of the inodes of ins (nil ones
// are skipped) that gfidOf will ask for, then the node records of the gfids
// known by then, each in one sorted iterator pass, into s.pre.
func (s *streamer) prefetch(ins []*inode) error {
	if s.pre.ident == nil {
		s.pre.ident, s.pre.nodes = map[catalog.Key]identHit{}, map[gfid.GFID]nodeHit{}
	}
	clear(s.pre.ident)
	clear(s.pre.nodes)
	s.pre.gen = s.catGen
	var keys []catalog.Key
	for _, in := range ins {
		if in == nil || !in.node.GFID.IsZero() {
			continue
		}
		if _, ok := s.pending[in.key]; ok {
			continue
		}
		if _, ok := s.pre.ident[in.key]; !ok {
			s.pre.ident[in.key] = identHit{}
			keys = append(keys, in.key)
		}
	}
	gs, oks, err := s.cat.Identities(keys)
	if err != nil {
		return err
	}
	for i, k := range keys {
		s.pre.ident[k] = identHit{gs[i], oks[i]}
	}
	// The gfid gfidOf will give each inode, where it is known now.
	var want []gfid.GFID
	for _, in := range ins {
		if in == nil {
			continue
		}
		g := in.node.GFID
		switch {
		case !g.IsZero():
		case s.cfg.Brick:
			g = in.gfid
		default:
			if pg, ok := s.pending[in.key]; ok {
				g = pg
			} else if hit := s.pre.ident[in.key]; hit.ok {
				g = hit.g
			}
		}
		if g.IsZero() {
			continue // new: gfidOf makes one, which has no record
		}
		if _, ok := s.pre.nodes[g]; !ok {
			s.pre.nodes[g] = nodeHit{}
			want = append(want, g)
		}
	}
	ns, oks, err := s.cat.Nodes(want)
	if err != nil {
		return err
	}
	for i, g := range want {
		s.pre.nodes[g] = nodeHit{ns[i], oks[i]}
	}
	return nil
}

// identity is the catalog's gfid of key: prefetched, or looked up when the
// prefetch did not read it or the catalog may have changed since.
func (s *streamer) identity(key catalog.Key) (gfid.GFID, bool, error) {
	if s.pre.gen == s.catGen {
		if hit, ok := s.pre.ident[key]; ok {
			return hit.g, hit.ok, nil
		}
	}
	return s.cat.Identity(key)
}

// node is the catalog's record of g, as identity.
func (s *streamer) node(g gfid.GFID) (catalog.Node, bool, error) {
	if s.pre.gen == s.catGen {
		if hit, ok := s.pre.nodes[g]; ok {
			return hit.n, hit.ok, nil
		}
	}
	return s.cat.Node(g)
}

// gfidOf returns the gfid of in: the brick's, the catalog's, or a fresh
// one (pending until the next flush commits it; fresh says so: it has no
// record in the catalog).
func (s *streamer) gfidOf(in *inode) (g gfid.GFID, fresh bool, err error) {
	if !in.node.GFID.IsZero() {
		return in.node.GFID, false, nil
	}
	if g, ok := s.pending[in.key]; ok {
		return g, false, nil
	}
	g, ok, err := s.identity(in.key)
	if err != nil {
		return gfid.GFID{}, false, err
	}
	switch {
	case s.cfg.Brick:
		if !ok || g != in.gfid {
			s.pending[in.key] = in.gfid
			s.pendingKeys = append(s.pendingKeys, in.key)
		}
		g = in.gfid
	case !ok:
		g = gfid.New()
		s.pending[in.key] = g
		s.pendingKeys = append(s.pendingKeys, in.key)
		s.emitted.New++
		fresh = true
	}
	in.node.GFID = g
	return g, fresh, nil
}

// entry sorts one name of d: unchanged, pure (into the segment), with
// several links (gathered), or marked. It returns the directory to walk
// when name is one.
func (s *streamer) entry(d walkDir, name string, in *inode, held gfid.GFID, nameKnown bool) (*walkDir, error) {
	g, fresh, err := s.gfidOf(in)
	if err != nil {
		return nil, err
	}
	dirG := d.node.GFID
	link := catalog.Link{Parent: dirG, Name: name}
	var o catalog.Node
	hasOld := false
	if !fresh {
		if o, hasOld, err = s.node(g); err != nil {
			return nil, err
		}
	}
	var op *catalog.Node
	if hasOld {
		op = &o
	}
	isDir := in.node.Type == catalog.TypeDir
	if !isDir {
		s.files++
		if in.node.Type == catalog.TypeReg {
			s.bytes += in.node.Size
		}
	}
	n := &Node{Node: in.node, Xattrs: in.xattrs}
	n.Links = []catalog.Link{link}
	if d.shadow {
		// Under a directory the scoped crawl will walk: only directories
		// the catalog knows (moved in) are compared here.
		if !isDir {
			return nil, nil
		}
		return s.subdir(d, name, in, n, !(hasOld && o.Type == catalog.TypeDir)), nil
	}
	switch {
	case hasOld && o.Type != n.Type && !s.cfg.Brick,
		nameKnown && held != g,
		hasOld && !slices.Contains(o.Links, link),
		!hasOld && nameKnown,
		s.inSegment(g) && (isDir || in.nlink <= 1):
		// A reused inode number; a name that holds another inode; an inode
		// at a new name; an inode met twice (moved during the walk).
		s.mark(d, name)
		switch {
		case hasOld && o.Type != n.Type && !s.cfg.Brick:
			s.lose(g) // the old inode is gone; this one gets a new gfid
		case hasOld && !slices.Contains(o.Links, link):
			s.moveIn(g)
		}
		if nameKnown && held != g {
			s.lose(held)
		}
		if !isDir && (in.nlink > 1 || (hasOld && len(o.Links) > 1)) {
			m := s.multi[g]
			if m == nil {
				m = &multiNode{}
				s.multi[g] = m
			}
			m.taint = true
		}
		if isDir && hasOld && o.Type == catalog.TypeDir {
			break // known to the catalog: walk it, its entries are its own
		}
		if isDir {
			// The scoped crawl walks it whole, but stops at directories
			// the catalog knows: those below it are compared here.
			return s.subdir(d, name, in, n, true), nil
		}
		return nil, nil
	case !isDir && (in.nlink > 1 || (hasOld && len(o.Links) > 1)):
		m := s.multi[g]
		if m == nil {
			m = &multiNode{}
			s.multi[g] = m
		}
		if m.node == nil {
			m.node, m.old = n, op
			n.Links = nil
		}
		m.node.Links = append(m.node.Links, link)
		m.at = append(m.at, walkDir{h: d.h, rel: d.rel, node: d.node})
		m.names = append(m.names, name)
		return nil, nil
	case !hasOld || !o.Equal(&n.Node):
		if err := s.addPure(n, op, d.node, d.rel); err != nil {
			return nil, err
		}
	}
	if !isDir {
		return nil, nil
	}
	return s.subdir(d, name, in, n, false), nil
}

// subdir returns the directory name of d to walk (nil when it was walked
// already: it moved during the walk). A shadow directory is one the scoped
// crawl will walk.
func (s *streamer) subdir(d walkDir, name string, in *inode, n *Node, shadow bool) *walkDir {
	s.dirs++
	if s.walked[in.key] {
		s.walkStats.Skipped++
		return nil
	}
	s.walked[in.key] = true
	return &walkDir{h: &dirHandle{parent: d.h, name: name, in: in, dev: d.h.dev, fd: -1}, rel: filepath.Join(d.rel, name), node: n, shadow: shadow}
}

// mark hands name in d to the scoped crawl.
func (s *streamer) mark(d walkDir, name string) {
	m := s.marked[d.node.GFID]
	if m == nil {
		m = &markedDir{rel: d.rel, key: d.h.in.key, names: map[string]bool{}}
		s.marked[d.node.GFID] = m
	}
	m.names[name] = false
}

// addPure adds n to the segment (old is its catalog record, nil for a new
// gfid), with dir, the directory it is in, for its path and times; it
// flushes a full segment first.
func (s *streamer) addPure(n *Node, old *catalog.Node, dir *Node, rel string) error {
	if s.seg.n >= s.scfg.Segment {
		if err := s.flush(); err != nil {
			return err
		}
	}
	seg := s.seg
	if dir != nil {
		s.addContext(dir, rel)
	}
	if seg.context[n.GFID] {
		delete(seg.context, n.GFID) // in order already
	} else {
		seg.snap.order = append(seg.snap.order, n.GFID)
	}
	seg.snap.nodes[n.GFID] = n
	if old != nil {
		seg.old[n.GFID] = old
	} else {
		delete(seg.old, n.GFID)
	}
	seg.n++
	return nil
}

// addContext adds dir, the directory of an entry of the segment, for its
// path and so that its times are set again after the entries made in it.
// It is not committed.
func (s *streamer) addContext(dir *Node, rel string) {
	seg := s.seg
	if _, ok := seg.snap.nodes[dir.GFID]; !ok {
		ctx := *dir
		ctxOld := ctx.Node
		seg.snap.nodes[dir.GFID] = &ctx
		seg.old[dir.GFID] = &ctxOld
		seg.context[dir.GFID] = true
		seg.snap.order = append(seg.snap.order, dir.GFID)
	}
	seg.snap.rel[dir.GFID] = rel
}

// settleMulti decides the inodes with several links: those whose names the
// catalog agrees with, or all new at free names, are pure; the others were
// marked where they changed.
func (s *streamer) settleMulti() error {
	for g, m := range s.multi {
		if m.node == nil {
			continue // met only at marked names
		}
		if m.taint {
			for i, d := range m.at {
				s.mark(d, m.names[i])
			}
			continue
		}
		if m.old != nil {
			if !sameLinks(m.old.Links, m.node.Links) {
				continue // a lost name: marked where the catalog has it
			}
			if m.old.Equal(&m.node.Node) {
				continue
			}
		}
		if err := s.addPure(m.node, m.old, m.at[0].node, m.at[0].rel); err != nil {
			return err
		}
		for _, d := range m.at[1:] {
			s.addContext(d.node, d.rel)
		}
		delete(s.multi, g)
	}
	return nil
}

func sameLinks(a, b []catalog.Link) bool {
	if len(a) != len(b) {
		return false
	}
	x := (&catalog.Node{Links: a})
	y := (&catalog.Node{Links: b})
	return x.Equal(y)
}

// commitPending commits the gfids given to new inodes so far.
func (s *streamer) commitPending() error {
	s.catGen++
	if len(s.pendingKeys) == 0 {
		return nil
	}
	gfids := make([]gfid.GFID, len(s.pendingKeys))
	for i, k := range s.pendingKeys {
		gfids[i] = s.pending[k]
	}
	if _, err := s.cat.Bind(s.pendingKeys, gfids); err != nil {
		return err
	}
	clear(s.pending)
	s.pendingKeys = s.pendingKeys[:0]
	return nil
}

// flush diffs the segment with its catalog records, writes its changelog
// and emits it.
func (s *streamer) flush() error {
	seg := s.seg
	if seg.n == 0 {
		return nil
	}
	s.seg, s.lastSeg = s.newSegment(), seg
	defer func() { s.lastSeg = nil }()
	if err := s.commitPending(); err != nil {
		return err
	}
	p := diff(seg.old, seg.snap, &s.cfg, nil, nil)
	if len(p.deleted) > 0 {
		return fmt.Errorf("crawl: a segment would delete %d gfids (a bug: segments only add and change)", len(p.deleted))
	}
	res := &Result{Records: p.records, Snapshot: seg.snap}
	for _, g := range p.changed {
		if !seg.context[g] {
			res.changed = append(res.changed, g)
		}
	}
	st := &res.Stats
	st.Entries, st.Data, st.DataBytes, st.Meta, st.Deletes, st.Renames = p.stats.Entries, p.stats.Data, p.stats.DataBytes, p.stats.Meta, p.stats.Deletes, p.stats.Renames
	return s.emitResult(res)
}

// emitResult writes res's changelog and hands it to emit; a Result with
// changed records but no operation is committed directly.
func (s *streamer) emitResult(res *Result) error {
	s.catGen++
	s.segments++
	st := res.Stats
	e := &s.emitted
	e.Entries += st.Entries
	e.Data += st.Data
	e.DataBytes += st.DataBytes
	e.Meta += st.Meta
	e.Deletes += st.Deletes
	e.Renames += st.Renames
	if len(res.Records) == 0 {
		if len(res.changed) == 0 && len(res.deleted) == 0 {
			return nil
		}
		return res.Commit(s.cat, nil, nil)
	}
	if res.Changelog == "" {
		var err error
		if res.Changelog, err = changelog.WriteFile(s.cfg.ChangelogDir, ChangelogPrefix, res.Records); err != nil {
			return fmt.Errorf("crawl: %w", err)
		}
	}
	if !s.safe {
		if s.scfg.CheckDeletes == nil || s.cfg.IgnoreDeletes || s.scfg.CheckDeletes(s.worstDeletes()) == nil {
			s.safe = true
		}
	}
	if !s.safe {
		return s.hold(res)
	}
	if err := s.release(); err != nil {
		return err
	}
	return s.emitAsync(res)
}

// emitAsync hands res to emit in the background, after the Result before
// it is done: the walk goes on with the next segment while this one is
// applied. A pure segment does not depend on the one before it being
// committed (its directories are in it as context); what comes after the
// walk waits for every segment (wait).
func (s *streamer) emitAsync(res *Result) error {
	if err := s.wait(); err != nil {
		return err
	}
	done := make(chan error, 1)
	s.inflight, s.inflightSeg = done, s.lastSeg
	go func() { done <- s.emit(res) }()
	return nil
}

// wait waits for the segment in flight.
func (s *streamer) wait() error {
	s.catGen++
	if s.inflight == nil {
		return nil
	}
	err := <-s.inflight
	s.inflight, s.inflightSeg = nil, nil
	return err
}

// inSegment reports whether g is already in the segment being gathered or
// the one in flight, other than as context: met again, it moved during the
// walk.
func (s *streamer) inSegment(g gfid.GFID) bool {
	if n := s.seg.snap.nodes[g]; n != nil && !s.seg.context[g] {
		return true
	}
	if f := s.inflightSeg; f != nil && f.snap.nodes[g] != nil && !f.context[g] {
		return true
	}
	return false
}

// spilled is a held segment on disk.
type spilled struct {
	Changelog string
	Nodes     []*Node
	Order     []gfid.GFID
	Rel       map[gfid.GFID]string
	Changed   []gfid.GFID
	Stats     Stats
}

// hold spills res to disk beside its changelog, until the deletes the pass
// can make are accepted.
func (s *streamer) hold(res *Result) error {
	sp := spilled{Changelog: res.Changelog, Order: res.Snapshot.order, Rel: res.Snapshot.rel, Changed: res.changed, Stats: res.Stats}
	for _, g := range res.Snapshot.order {
		sp.Nodes = append(sp.Nodes, res.Snapshot.nodes[g])
	}
	path := res.Changelog + ".segment"
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("crawl: hold a segment: %w", err)
	}
	err = gob.NewEncoder(f).Encode(&sp)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("crawl: hold a segment: %w", err)
	}
	s.held = append(s.held, path)
	return nil
}

// release emits the held segments, in order.
func (s *streamer) release() error {
	for len(s.held) > 0 {
		path := s.held[0]
		s.held = s.held[1:]
		res, err := s.unspill(path)
		os.Remove(path)
		if err != nil {
			return err
		}
		if err := s.emitAsync(res); err != nil {
			return err
		}
	}
	return nil
}

func (s *streamer) unspill(path string) (*Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("crawl: a held segment: %w", err)
	}
	defer f.Close()
	var sp spilled
	if err := gob.NewDecoder(f).Decode(&sp); err != nil {
		return nil, fmt.Errorf("crawl: a held segment %s: %w", path, err)
	}
	recs, err := readRecords(sp.Changelog)
	if err != nil {
		return nil, err
	}
	snap := &Snapshot{source: s.cfg.Source, nodes: make(map[gfid.GFID]*Node, len(sp.Nodes)), order: sp.Order, rel: sp.Rel,
		children: map[gfid.GFID]map[string]gfid.GFID{}}
	for _, n := range sp.Nodes {
		snap.nodes[n.GFID] = n
	}
	return &Result{Changelog: sp.Changelog, Records: recs, Snapshot: snap, Stats: sp.Stats, changed: sp.Changed}, nil
}

func readRecords(path string) ([]changelog.Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("crawl: a held segment's changelog: %w", err)
	}
	defer f.Close()
	return changelog.Parse(f, path)
}

// discardHeld removes the held segments and their changelogs: the pass is
// refused.
func (s *streamer) discardHeld() {
	for _, path := range s.held {
		os.Remove(strings.TrimSuffix(path, ".segment"))
		os.Remove(path)
	}
	s.held = nil
}

// scoped hands the marked directories to one scoped crawl, or falls back
// to Hybrid.
func (s *streamer) scoped(rootFd int) error {
	if len(s.marked) == 0 {
		return nil
	}
	if err := s.commitPending(); err != nil {
		return err
	}
	if len(s.marked) > maxScopedDirs {
		return s.fallback(fmt.Sprintf("%d directories changed in ways that depend on each other", len(s.marked)))
	}
	dirs := make([]Dir, 0, len(s.marked))
	defer func() {
		for _, d := range dirs {
			unix.Close(d.Fd)
		}
	}()
	for g, m := range s.marked {
		fd, err := beneath.Open(rootFd, m.rel, unix.O_RDONLY|unix.O_DIRECTORY)
		if err == nil {
			st, serr := statxAt(fd, "", unix.AT_EMPTY_PATH)
			if serr != nil || keyOf(&st) != m.key {
				unix.Close(fd)
				err = cmp.Or(serr, errors.New("another directory is there now"))
			}
		}
		if err != nil {
			return s.fallback(fmt.Sprintf("directory %q (%s) moved during the crawl: %v", m.rel, g, err))
		}
		dirs = append(dirs, Dir{Fd: fd, Rel: m.rel, Names: m.names})
	}
	slices.SortFunc(dirs, func(a, b Dir) int { return strings.Compare(a.Rel, b.Rel) })
	cfg := s.cfg
	cfg.Walked = true
	res, err := Scoped(s.ctx, cfg, s.cat, dirs, s.log)
	if errors.Is(err, ErrIncomplete) {
		return s.fallback(err.Error())
	}
	if err != nil {
		return err
	}
	s.emitted.New += res.Stats.New
	return s.emitResult(res)
}

// fallback ends the pass with a whole Hybrid crawl.
func (s *streamer) fallback(why string) error {
	s.log.Warn("hybrid crawl: the changes left need the whole namespace in memory", "why", why)
	res, err := Hybrid(s.ctx, s.cfg, s.cat, s.log)
	if err != nil {
		return err
	}
	s.emitted.New += res.Stats.New
	return s.emitResult(res)
}
