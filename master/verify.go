package master

import (
	"context"
	"fmt"

	"github.com/georep/georep/master/catalog"
	"github.com/georep/georep/master/crawl"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// emptyPark removes whatever a crashed run left in the slave's park
// directory. Those gfids are then missing from their names on the slave;
// verify notices and the next pass recreates them.
func (w *worker) emptyPark(ctx context.Context) (int, error) {
	ents, err := w.slave.Entries(ctx, gfid.Park)
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		if _, err := w.slave.Purge(ctx, gfid.Park, e.Name, gfid.GFID{}); err != nil {
			return 0, err
		}
	}
	if len(ents) > 0 {
		w.log.Info("emptied the slave's park left by an interrupted run", "entries", len(ents))
	}
	return len(ents), nil
}

// verify compares every directory of the snapshot with the slave's listing,
// once per session: names the master does not have are purged (unless
// ignore-deletes), names that hold another inode are purged, and names the
// slave lacks are forgotten in the catalog so that the next pass recreates
// them. It returns how many differences it found. This is what makes the
// hybrid crawl heal a replica damaged, restored or half-written behind the
// catalog's back, and what propagates deletes the catalog never saw.
//
// A worker whose source holds only part of the namespace (a brick of a
// volume distributed over several bricks) purges nothing: a name it lacks
// may be another brick's.
func (w *worker) verify(ctx context.Context, snap *crawl.Snapshot) (int, error) {
	found := 0
	var unsync []gfid.GFID
	type purge struct {
		dir  gfid.GFID
		name string
		gfid gfid.GFID // what the slave holds there (zero: an inode without one)
	}
	var purges []purge
	var listed int64 // entries the slave holds in the directories listed
	for _, dir := range snap.GFIDs() {
		n, ok := snap.Lookup(dir)
		if !ok || n.Type != catalog.TypeDir {
			continue
		}
		ents, err := w.slave.Entries(ctx, dir)
		if slaveDirGone(err) {
			// Missing, or its name on the slave holds something else (a
			// directory swapped for a symlink behind georep's back: the
			// slave will not follow it). Its name in the parent is
			// purged below and the directory recreated with its content.
			w.log.Info("a directory is missing on the slave or its name holds something else; it will be recreated", "gfid", dir, "err", err)
			unsync = append(unsync, dir)
			found++
			continue
		}
		if err != nil {
			return found, err
		}
		listed += int64(len(ents))
		want := snap.Children(dir)
		have := make(map[string]bool, len(ents))
		for _, e := range ents {
			name := e.Name
			have[name] = true
			g, mine := want[name]
			switch {
			case mine && e.GFID == g:
				continue
			case mine:
				unsync = append(unsync, g)
				if w.partial {
					found++
					continue // the create's EEXIST resolution purges it
				}
			case w.cfg.IgnoreDeletes, w.partial:
				continue
			}
			found++
			purges = append(purges, purge{dir, name, e.GFID})
		}
		for name, g := range want {
			if !have[name] {
				unsync = append(unsync, g)
				found++
			}
		}
	}
	if err := w.guardDeletes("verify", int64(len(purges)), listed); err != nil {
		return found, err
	}
	purgedIn := map[gfid.GFID]bool{}
	for _, p := range purges {
		w.log.Info("purging a name on the slave that the master does not have there", "pargfid", p.dir, "name", fmt.Sprintf("%q", p.name), "slave_gfid", gfidText(p.gfid))
		if _, err := w.slave.Purge(ctx, p.dir, p.name, gfid.GFID{}); err != nil {
			return found, err
		}
		purgedIn[p.dir] = true
	}
	// A purge changed the directory's mtime on the slave: set it again.
	if len(purgedIn) > 0 {
		var metas []ops.Meta
		var metaGFID []gfid.GFID
		for dir := range purgedIn {
			if n, ok := snap.Lookup(dir); ok {
				metas = append(metas, w.metaOp(dir, n))
				metaGFID = append(metaGFID, dir)
			}
		}
		out := &outcome{failed: map[gfid.GFID]string{}}
		if err := w.applyMetas(ctx, metas, metaGFID, out); err != nil {
			return found, err
		}
		if len(out.failed) > 0 {
			return found, fmt.Errorf("verify: resetting the metadata of directories it purged in: %s", summarize(out.failed))
		}
	}
	if len(unsync) > 0 {
		n, err := w.cat.Unsync(unsync)
		if err != nil {
			return found, err
		}
		w.log.Info("the slave lacks entries the catalog had recorded; they will be recreated", "gfids", n)
	}
	return found, nil
}

// drifted says whether the failure queue holds a failure of the slave's
// replica itself (ESTALE: a name there no longer holds what georep put
// there, such as a directory swapped for a symlink), which only verify
// repairs.
func (w *worker) drifted() bool {
	for _, f := range w.failures.list() {
		if f.Side == sideSlave && f.Errno == "ESTALE" {
			return true
		}
	}
	return false
}

// gfidText is g as the slave sends it: "" for the zero gfid (an inode that
// carries none).
func gfidText(g gfid.GFID) string {
	if g.IsZero() {
		return ""
	}
	return g.String()
}
