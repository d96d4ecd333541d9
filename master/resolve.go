package master

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"github.com/georep/georep/master/catalog"
	"github.com/georep/georep/master/crawl"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// maxEntryRounds bounds the rounds of entry failure resolution.
const maxEntryRounds = 5

// entryFailure is an op of a changelog (its index) that the slave refused.
type entryFailure struct {
	i      int
	f      ops.Failure
	enoent int // ENOENT answers so far
	eexist int // EEXIST answers without the gfid holding the name
}

// resolveEntries resolves, in rounds, the failures of the ops sent
// (sendOps) that the master can resolve (gsyncd's
// fix_possible_entry_failures; the master is the source of truth),
// stopping when a round makes no progress. What is left is recorded in
// out.
func (w *worker) resolveEntries(ctx context.Context, entries []ops.Entry, opGFID []gfid.GFID, failed []*entryFailure, out *outcome, snap *crawl.Snapshot) error {
	for round := 1; len(failed) > 0 && round <= maxEntryRounds; round++ {
		var batch []ops.Entry
		var owner []*entryFailure // per op of batch: the failure it retries, nil for a helper op
		var kept []*entryFailure  // failures nothing can be done about
		for _, ef := range failed {
			pre, retry, done := w.fixEntry(ctx, entries[ef.i], ef, snap, out, opGFID[ef.i])
			switch {
			case done:
			case retry == nil:
				kept = append(kept, ef)
			default:
				for _, p := range pre {
					batch, owner = append(batch, p), append(owner, nil)
				}
				entries[ef.i] = *retry
				batch, owner = append(batch, *retry), append(owner, ef)
			}
		}
		if len(batch) == 0 {
			failed = kept
			break
		}
		var again []*entryFailure
		err := inBatches(ctx, w.batch, batch, w.slave.EntryOps, func(i int, f ops.Failure) {
			if ef := owner[i]; ef != nil {
				ef.f = f
				again = append(again, ef)
			}
		}, nil)
		if err != nil {
			return err
		}
		w.log.Info("entry failure resolution", "round", round, "retried", len(failed)-len(kept), "resolved", len(failed)-len(kept)-len(again), "left", len(again)+len(kept))
		progress := len(again) < len(failed)-len(kept)
		for _, ef := range again {
			// A second ENOENT on RENAME or LINK, and a second EEXIST on a
			// create, have remedies of their own.
			kind, errno := entries[ef.i].Op, ef.f.Errno
			if (ef.enoent == 1 && errno == syscall.ENOENT && (kind == ops.OpRename || kind == ops.OpLink)) ||
				(ef.eexist == 1 && errno == syscall.EEXIST && isCreate(kind)) {
				progress = true
			}
		}
		failed = append(kept, again...)
		if !progress {
			break
		}
	}
	w.recordEntryFailures(entries, opGFID, failed, out)
	return nil
}

// recordEntryFailures records the ops the slave still refuses, each
// classified by its errno. An ENOENT under a directory whose own op failed
// permanently in this pass (or under a child of one, and so on down) is
// permanent too: the parent will not be there however often it is retried.
func (w *worker) recordEntryFailures(entries []ops.Entry, opGFID []gfid.GFID, failed []*entryFailure, out *outcome) {
	classes := make([]cause, len(failed))
	permanent := map[gfid.GFID]bool{} // gfids (as sent) that failed permanently
	for i, ef := range failed {
		classes[i] = cause{errno: ef.f.Errno, side: sideSlave, kind: kindEntry, op: entries[ef.i].Op}
		if classify(classes[i]) == classPermanent {
			permanent[entries[ef.i].GFID] = true
		}
	}
	for changed := true; changed; {
		changed = false
		for i, ef := range failed {
			op := entries[ef.i]
			if classes[i].errno != syscall.ENOENT || classes[i].parentPermanent {
				continue
			}
			parent := op.Parent
			if op.Op == ops.OpRename {
				parent = op.NewParent
			}
			if permanent[parent] {
				classes[i].parentPermanent, changed = true, true
				permanent[op.GFID] = true
			}
		}
	}
	for i, ef := range failed {
		op := entries[ef.i]
		w.log.Warn("entry op failed", "op", opName(op.Op), "gfid", op.GFID.String(),
			"pargfid", op.Parent.String(), "name", fmt.Sprintf("%q", op.Name),
			"errno", errnoName(ef.f.Errno), "err", ef.f.Message, "class", classify(classes[i]))
		why := ef.f.Message
		if classes[i].parentPermanent {
			why += " (its parent failed permanently)"
		}
		out.fail(opGFID[ef.i], classes[i], "%s: %s", opName(op.Op), why)
	}
}

// opName is how failure reasons and logs name an entry op
// ("ENTRY_OP_CREATE"): the name they have always used, the protocol enum's,
// kept so that a failure queue and logs read the same across versions.
func opName(o ops.Op) string { return "ENTRY_OP_" + o.String() }

func isCreate(op ops.Op) bool {
	switch op {
	case ops.OpCreate, ops.OpMkdir, ops.OpMknod, ops.OpSymlink:
		return true
	}
	return false
}

// fixEntry decides what to do about one refused op: ops to send first
// (pre), the op to retry, or done when the failure is resolved without a
// retry. retry == nil && !done: nothing the master can do.
//
//   - EEXIST, the name holds another gfid: that entry is not the master's
//     (or no longer at that name): purged, the op retried.
//   - EEXIST on a create, no gfid named: the name is purged (it may hold an
//     inode without a gfid) and the op retried; refused again, the gfid
//     exists under another name: moved here by a RENAME that takes it from
//     wherever it is.
//   - ENOENT on a create: the parent is missing: its directories are
//     created from the master's snapshot first (MKDIR is idempotent).
//   - ENOENT on RENAME or LINK: first as above (the new parent may be
//     missing); if it is refused again, the gfid is missing on the slave: a
//     file is created at the new name (its data follows through the failure
//     queue); a directory is forgotten by the catalog and a hybrid crawl
//     recreates it with everything in it.
//     Parking a gfid the slave does not have is a no-op.
//   - ENOTEMPTY on RMDIR: the slave holds entries the master does not:
//     the directory is purged.
func (w *worker) fixEntry(ctx context.Context, op ops.Entry, ef *entryFailure, snap *crawl.Snapshot, out *outcome, g gfid.GFID) (pre []ops.Entry, retry *ops.Entry, done bool) {
	switch ef.f.Errno {
	case syscall.EEXIST:
		retry = w.fixExists(ctx, op, ef, out)
		return nil, retry, false
	case syscall.ENOENT:
		return w.fixMissing(op, ef, snap, out, g)
	case syscall.ENOTEMPTY:
		retry, done := w.fixNotEmpty(ctx, op)
		return nil, retry, done
	}
	return nil, nil, false
}

// destination is where op puts its gfid: the new parent and name of a
// RENAME, the parent and name of any other op.
func destination(op ops.Entry) (gfid.GFID, string) {
	if op.Op == ops.OpRename {
		return op.NewParent, op.NewName
	}
	return op.Parent, op.Name
}

// fixExists resolves an EEXIST: the op to retry, nil when nothing helps.
func (w *worker) fixExists(ctx context.Context, op ops.Entry, ef *entryFailure, out *outcome) *ops.Entry {
	if ex := ef.f.Existing; !ex.IsZero() && ex != op.GFID {
		parent, name := destination(op)
		if _, err := w.slave.Purge(ctx, parent, name, ex); err != nil {
			w.log.Warn("purging a conflicting name on the slave failed", "pargfid", parent, "name", fmt.Sprintf("%q", name), "err", err)
			return nil
		}
		if out.purged != nil {
			out.purged[ex] = true
		}
		w.log.Info("purged a name the slave held for another inode", "pargfid", parent, "name", fmt.Sprintf("%q", name), "slave_gfid", ex.String(), "gfid", op.GFID.String())
		return &op
	}
	if !isCreate(op.Op) {
		return nil
	}
	ef.eexist++
	if ef.eexist == 1 {
		// The name may hold an inode without a gfid (a slave killed
		// between creating it and marking it): purge it and retry.
		if _, err := w.slave.Purge(ctx, op.Parent, op.Name, gfid.GFID{}); err != nil {
			w.log.Warn("purging a name on the slave failed", "pargfid", op.Parent, "name", fmt.Sprintf("%q", op.Name), "err", err)
			return nil
		}
		return &op
	}
	// Refused again: the gfid exists under another name.
	w.log.Info("moving an entry the slave holds under another name", "gfid", op.GFID.String(), "name", fmt.Sprintf("%q", op.Name))
	return &ops.Entry{Op: ops.OpRename, GFID: op.GFID,
		Parent: op.Parent, Name: op.Name, NewParent: op.Parent, NewName: op.Name}
}

// fixMissing resolves an ENOENT: the parent's directories created first,
// or the gfid recreated at its name.
func (w *worker) fixMissing(op ops.Entry, ef *entryFailure, snap *crawl.Snapshot, out *outcome, g gfid.GFID) (pre []ops.Entry, retry *ops.Entry, done bool) {
	ef.enoent++
	if op.Op == ops.OpRename && op.NewParent == gfid.Park {
		return nil, nil, true // the gfid is nowhere on the slave: nothing to park; leaving the park recreates it
	}
	moves := op.Op == ops.OpRename || op.Op == ops.OpLink
	switch {
	case isCreate(op.Op) || (moves && ef.enoent == 1):
		parent, _ := destination(op)
		chain, ok := mkdirChain(parent, snap)
		if !ok {
			return nil, nil, false
		}
		return chain, &op, false
	case moves:
		e, ok := w.recreate(op, snap, out, g)
		if !ok {
			return nil, nil, false
		}
		return nil, e, false
	}
	return nil, nil, false
}

// recreate returns the op that creates the gfid g, missing on the slave, at
// the name a RENAME or LINK op gives it, from the master's snapshot: a
// file's data follows through the failure queue. A directory is forgotten
// by the catalog instead, and a hybrid crawl recreates it with its content
// (ok false).
func (w *worker) recreate(op ops.Entry, snap *crawl.Snapshot, out *outcome, g gfid.GFID) (*ops.Entry, bool) {
	n, ok := snap.Lookup(g)
	if !ok {
		return nil, false
	}
	parent, name := destination(op)
	e := &ops.Entry{GFID: op.GFID, Parent: parent, Name: name, Mode: n.Mode, UID: n.UID, GID: n.GID}
	switch n.Type {
	case catalog.TypeDir:
		if _, err := w.cat.Unsync([]gfid.GFID{g}); err != nil {
			w.log.Warn("forgetting a directory missing on the slave", "gfid", g, "err", err)
		}
		w.needFull = true
		w.log.Info("a directory is missing on the slave: a hybrid crawl recreates it with its content", "gfid", g)
		return nil, false
	case catalog.TypeReg:
		e.Op = ops.OpCreate
		out.failData(g, "recreated on the slave, data follows", cause{kind: kindData})
	case catalog.TypeSymlink:
		e.Op, e.Target = ops.OpSymlink, n.Target
	default:
		e.Op, e.Rdev = ops.OpMknod, n.Rdev
	}
	w.log.Info("recreating an entry missing on the slave", "gfid", g, "name", fmt.Sprintf("%q", name))
	return e, true
}

// fixNotEmpty resolves an ENOTEMPTY of an RMDIR: the directory, which
// holds entries unknown to the master, is purged (unless ignore-deletes).
// It reports whether the failure is resolved (done), or the op to retry.
//
// On a volume distributed over several bricks the entries are often
// another brick's, whose worker removes them, and the directory's parent,
// at the same moment: the purge then finds the parent gone (NotFound).
// The RMDIR is retried instead of failing: the slave takes a missing
// parent for a directory already removed, and answers again if it is not
// (a failure queued here would have no place, the removed parent's, and
// cost a hybrid crawl of the brick).
func (w *worker) fixNotEmpty(ctx context.Context, op ops.Entry) (retry *ops.Entry, done bool) {
	if op.Op != ops.OpRmdir || w.cfg.IgnoreDeletes {
		return nil, false
	}
	if _, err := w.slave.Purge(ctx, op.Parent, op.Name, op.GFID); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			w.log.Info("the parent of a removed directory is gone on the slave; the RMDIR is retried", "gfid", op.GFID, "name", fmt.Sprintf("%q", op.Name), "pargfid", op.Parent)
			return &op, false
		}
		w.log.Warn("purging a directory the slave holds more in", "gfid", op.GFID, "err", err)
		return nil, false
	}
	w.log.Info("purged a removed directory holding entries unknown to the master", "gfid", op.GFID, "name", fmt.Sprintf("%q", op.Name))
	return nil, true
}

// mkdirChain returns MKDIRs for dir and its ancestors below the root, top
// first, from the master's snapshot; ok is false when the snapshot does not
// place them.
func mkdirChain(dir gfid.GFID, snap *crawl.Snapshot) ([]ops.Entry, bool) {
	var chain []ops.Entry
	for g := dir; g != gfid.Root; {
		n, ok := snap.Lookup(g)
		if !ok || n.Type != catalog.TypeDir || len(n.Links) == 0 || len(chain) > 4096 {
			return nil, false
		}
		l := n.Links[0]
		chain = append([]ops.Entry{{Op: ops.OpMkdir, GFID: g, Parent: l.Parent,
			Name: l.Name, Mode: n.Mode, UID: n.UID, GID: n.GID}}, chain...)
		g = l.Parent
	}
	return chain, true
}
