// Package crawl is the hybrid crawl of a plain-directory source: it walks
// the tree, gives every inode its gfid through the catalog, diffs the tree
// with the namespace as last synced and writes one changelog of ordered
// records that take the slave from that state to the tree (gsyncd's xsync
// crawl, master.py GMasterXsyncMixin, but it also propagates deletes and
// renames). The ordering is specified in ARCHITECTURE.md, "Changelogs
// written by the hybrid crawl".
//
// It also owns the scoped crawl (Scoped): only the names a change journal
// (master/journal) or a brick's changelog reported are re-examined and
// diffed with the catalog, into the same records (gsyncd's changelog crawl,
// master.py GMasterChangelogMixin, which replays the records instead).
package crawl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/georep/georep/master/catalog"
	"github.com/georep/georep/master/changelog"
	"github.com/georep/georep/rpc/gfid"
	"golang.org/x/sys/unix"
)

// ChangelogPrefix names the changelogs Hybrid writes: XSYNC-CHANGELOG.<unix-nanos>.
const ChangelogPrefix = "XSYNC-CHANGELOG"

// ReservedName is the top-level name under which the slave keeps its own
// state (gfid index, park); a source entry of that name is not replicated.
const ReservedName = ".georep"

// Config configures one hybrid crawl.
type Config struct {
	// Source is the directory to replicate.
	Source string
	// ChangelogDir receives the changelog (<work-dir>/xsync); it is created
	// if missing.
	ChangelogDir string
	// IgnoreDeletes keeps on the slave what the source deleted (gsyncd's
	// ignore-deletes): no UNLINK or RMDIR except where a new entry needs the
	// name. The catalog forgets the deleted gfids.
	IgnoreDeletes bool
	// SyncXattrs records user.* xattrs and SETXATTR when they change.
	SyncXattrs bool
	// Brick makes the source a GlusterFS brick: every inode's gfid is its
	// trusted.gfid (recorded in the catalog, never assigned), GlusterFS's
	// own top-level directories (.glusterfs, .trashcan) and DHT link files
	// are not replicated, and an inode without a gfid yet (its creation
	// still in progress) is skipped: its changelog record brings it later.
	Brick bool
	// Walked tells the scoped crawl that the names it is given come from a
	// walk of the whole tree (Stream), not from a journal that reports
	// writes: a change of ctime alone then ships data, as in Hybrid.
	Walked bool
	// WritesRecorded tells the scoped crawl that its names come with every
	// write of a file's data marked (a GlusterFS brick's changelog has a D
	// record for each, and the read marks decide which force a ship): a
	// change of ctime alone is then no sign of a write (a rename, a link,
	// an unlink of another name, a setattr or an xattr all change it), and
	// ships no data. Size and mtime still do, and so does the catalog's
	// impossible ctime of data not shipped yet.
	WritesRecorded bool
	// ParkPrefix starts the names under which this crawl's renames park
	// inodes on the slave (the park directory holds <prefix><gfid>): the
	// replica set's, on a GlusterFS volume, so that a worker that starts a
	// session empties only what its own set parked, never an entry another
	// set's worker has parked in the middle of a rename.
	ParkPrefix string
}

// Validate checks cfg.
func (c *Config) Validate() error {
	if c.Source == "" {
		return errors.New("crawl: source not set")
	}
	if c.ChangelogDir == "" {
		return errors.New("crawl: changelog dir not set")
	}
	return nil
}

// Stats counts what one crawl saw and wrote.
type Stats struct {
	Dirs      int64 // directories crawled, the root included
	Files     int64 // non-directories crawled (inodes, not names)
	Bytes     int64 // sum of the sizes of crawled regular files
	Entries   int64 // E records
	Data      int64 // D records
	DataBytes int64 // sum of the sizes of the files with a D record
	Meta      int64 // M records
	Deletes   int64 // UNLINK and RMDIR records
	Renames   int64 // gfids parked and renamed
	New       int64 // gfids assigned by this crawl
	Vanished  int64 // entries that disappeared while crawled
	Skipped   int64 // mount points, unsupported types, directories met twice
	Duration  time.Duration
}

// Result is one crawl's outcome. Its records are applied by the caller, who
// then records progress with Commit.
type Result struct {
	// Changelog is the path of the changelog written, "" when there were no records.
	Changelog string
	Records   []changelog.Record
	Snapshot  *Snapshot
	Stats     Stats

	changed []gfid.GFID
	deleted []gfid.GFID
}

// newWalker checks cfg and prepares a walk of its source, which it makes
// absolute; our own files inside the source (changelogs, catalog) are
// skipped.
func newWalker(ctx context.Context, cfg Config, cat *catalog.Catalog, log *slog.Logger, stats *Stats) (*walker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	src, err := filepath.Abs(cfg.Source)
	if err != nil {
		return nil, fmt.Errorf("crawl: source: %w", err)
	}
	cfg.Source = src
	if err := os.MkdirAll(cfg.ChangelogDir, 0o700); err != nil {
		return nil, fmt.Errorf("crawl: changelog dir: %w", err)
	}
	w := &walker{ctx: ctx, cfg: cfg, log: log.With("source", src), byKey: map[catalog.Key]*inode{}, skip: map[[2]uint64]bool{}, stats: stats}
	for _, p := range []string{cfg.ChangelogDir, cat.Path()} {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err == nil {
			w.skip[[2]uint64{st.Dev, st.Ino}] = true
		}
	}
	return w, nil
}

// Hybrid crawls cfg.Source once. It must not run concurrently with another
// crawl or a Commit on the same catalog. Entries that vanish while crawled
// are skipped; any other error reading the source fails the crawl (a
// directory that cannot be read must not look empty).
func Hybrid(ctx context.Context, cfg Config, cat *catalog.Catalog, log *slog.Logger) (*Result, error) {
	start := time.Now()
	res := &Result{}
	w, err := newWalker(ctx, cfg, cat, log, &res.Stats)
	if err != nil {
		return nil, err
	}
	src, log := w.cfg.Source, w.log
	log.Info("hybrid crawl started")
	if err := w.walk(); err != nil {
		return nil, fmt.Errorf("crawl %s: %w", src, err)
	}

	old := map[gfid.GFID]*catalog.Node{}
	if err := cat.ForEachNode(func(n catalog.Node) error { old[n.GFID] = &n; return nil }); err != nil {
		return nil, fmt.Errorf("crawl: load catalog: %w", err)
	}

	// Identity: every inode gets its gfid, committed before any changelog.
	var live []*inode
	for _, in := range w.inodes {
		if in == w.root || (in.node.Type != catalog.TypeUnknown && len(in.links) > 0) {
			live = append(live, in)
		}
	}
	gfids, fresh, err := w.identify(cat, live[1:])
	if err != nil {
		return nil, fmt.Errorf("crawl: %w", err)
	}
	res.Stats.New = int64(fresh)
	w.root.node.GFID = gfid.Root
	for i, in := range live[1:] {
		g := gfids[i]
		if o := old[g]; o != nil && o.Type != in.node.Type && !cfg.Brick {
			// The inode number was reused (no birth time): a new inode.
			if g, err = cat.Reassign(in.key); err != nil {
				return nil, fmt.Errorf("crawl: %w", err)
			}
			res.Stats.New++
		}
		in.node.GFID = g
	}

	snap := &Snapshot{source: src, nodes: make(map[gfid.GFID]*Node, len(live)), children: map[gfid.GFID]map[string]gfid.GFID{}}
	for _, in := range live {
		n := &Node{Node: in.node, Xattrs: in.xattrs}
		for _, l := range in.links {
			n.Links = append(n.Links, catalog.Link{Parent: l.parent.node.GFID, Name: l.name})
		}
		snap.nodes[n.GFID] = n
		snap.order = append(snap.order, n.GFID)
		if in.children != nil {
			kids := make(map[string]gfid.GFID, len(in.children))
			for name, c := range in.children {
				kids[name] = c.node.GFID
			}
			snap.children[n.GFID] = kids
		}
		if n.Type == catalog.TypeDir {
			res.Stats.Dirs++
		} else {
			res.Stats.Files++
			if n.Type == catalog.TypeReg {
				res.Stats.Bytes += n.Size
			}
		}
	}

	p := diff(old, snap, &cfg, nil, nil)
	res.Snapshot, res.Records, res.changed, res.deleted = snap, p.records, p.changed, p.deleted
	s := &res.Stats
	s.Entries, s.Data, s.DataBytes, s.Meta, s.Deletes, s.Renames = p.stats.Entries, p.stats.Data, p.stats.DataBytes, p.stats.Meta, p.stats.Deletes, p.stats.Renames

	// Identities assigned by an earlier crawl that never got synced, whose
	// inode is gone: forget them with the deleted gfids.
	err = cat.ForEachIdentity(func(_ catalog.Key, g gfid.GFID) error {
		if _, ok := snap.nodes[g]; !ok && old[g] == nil {
			res.deleted = append(res.deleted, g)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("crawl: %w", err)
	}

	if len(res.Records) > 0 {
		if res.Changelog, err = changelog.WriteFile(cfg.ChangelogDir, ChangelogPrefix, res.Records); err != nil {
			return nil, fmt.Errorf("crawl: %w", err)
		}
	}
	s.Duration = time.Since(start)
	log.Info("hybrid crawl done", "changelog", res.Changelog, "dirs", s.Dirs, "files", s.Files, "bytes", s.Bytes,
		"entries", s.Entries, "data", s.Data, "meta", s.Meta, "deletes", s.Deletes, "renames", s.Renames,
		"new", s.New, "vanished", s.Vanished, "skipped", s.Skipped, "duration", s.Duration)
	return res, nil
}

// Commit records the snapshot as the synced state of every gfid not in
// failed: changed gfids get their crawled record, deleted ones are
// forgotten. A failed gfid keeps its old synced record (or stays unsynced),
// so the next crawl produces its operations again. A gfid in staleData had
// its entry and meta ops applied but its data not shipped: its record is
// committed (the slave has its names) with a ctime no inode has, so the next
// crawl ships its data again.
func (r *Result) Commit(cat *catalog.Catalog, failed, staleData map[gfid.GFID]bool) error {
	nodes := make([]catalog.Node, 0, len(r.changed))
	for _, g := range r.changed {
		if failed[g] {
			continue
		}
		n := r.Snapshot.nodes[g].Node
		if staleData[g] {
			n.CtimeNs = -1
		}
		nodes = append(nodes, n)
	}
	deleted := make([]gfid.GFID, 0, len(r.deleted))
	for _, g := range r.deleted {
		if !failed[g] {
			deleted = append(deleted, g)
		}
	}
	return cat.Commit(nodes, deleted)
}

// CommitEntries records that the entry ops of the records were applied
// (gsyncd's entry stime, kept per gfid): every gfid an entry record names
// gets its new names, with times no inode has so that its metadata and data
// are still redone; deleted gfids are forgotten. A crash before Commit then
// replays the metadata and data, not the entry ops.
func (r *Result) CommitEntries(cat *catalog.Catalog, failed map[gfid.GFID]bool) error {
	named := map[gfid.GFID]bool{}
	for _, rec := range r.Records {
		if rec.Kind == changelog.Entry {
			named[rec.GFID] = true
		}
	}
	var nodes []catalog.Node
	for _, g := range r.changed {
		if failed[g] || !named[g] {
			continue
		}
		n := r.Snapshot.nodes[g].Node
		n.MtimeNs, n.CtimeNs = -1, -1
		nodes = append(nodes, n)
	}
	var deleted []gfid.GFID
	for _, g := range r.deleted {
		if named[g] && !failed[g] {
			deleted = append(deleted, g)
		}
	}
	if len(nodes) == 0 && len(deleted) == 0 {
		return nil
	}
	return cat.Commit(nodes, deleted)
}
