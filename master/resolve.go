package master

import (
	"context"
	"fmt"
	"syscall"

	slavev1 "github.com/georep/georep/gen/georep/slave/v1"
	"github.com/georep/georep/master/catalog"
	"github.com/georep/georep/master/crawl"
	"github.com/georep/georep/rpc/gfid"
)

// maxEntryRounds bounds the rounds of entry failure resolution.
const maxEntryRounds = 5

// entryFailure is an op of a changelog (its index) that the slave refused.
type entryFailure struct {
	i      int
	f      *slavev1.EntryFailure
	enoent int // ENOENT answers so far
	eexist int // EEXIST answers without the gfid holding the name
}

// applyEntries sends ops in batches, then resolves the failures the master
// can resolve in rounds (gsyncd's fix_possible_entry_failures; the master is
// the source of truth), stopping when a round makes no progress. What is
// left is recorded in out. applied, when not nil, is called after each
// batch with the number of ops applied so far.
func (w *worker) applyEntries(ctx context.Context, ops []*slavev1.Entry, opGFID []gfid.GFID, out *outcome, snap *crawl.Snapshot, applied func(int)) error {
	var failed []*entryFailure
	err := inBatches(ctx, w.batch, ops, w.slave.EntryOps, func(i int, f *slavev1.EntryFailure) {
		failed = append(failed, &entryFailure{i: i, f: f})
		if out.resolving != nil {
			out.resolving[opGFID[i]] = true
		}
	}, applied)
	if err != nil {
		return err
	}
	for round := 1; len(failed) > 0 && round <= maxEntryRounds; round++ {
		var batch []*slavev1.Entry
		var owner []*entryFailure // per op of batch: the failure it retries, nil for a helper op
		var kept []*entryFailure  // failures nothing can be done about
		for _, ef := range failed {
			pre, retry, done := w.fixEntry(ctx, ops[ef.i], ef, snap, out, opGFID[ef.i])
			switch {
			case done:
			case retry == nil:
				kept = append(kept, ef)
			default:
				for _, p := range pre {
					batch, owner = append(batch, p), append(owner, nil)
				}
				ops[ef.i] = retry
				batch, owner = append(batch, retry), append(owner, ef)
			}
		}
		if len(batch) == 0 {
			failed = kept
			break
		}
		var again []*entryFailure
		err := inBatches(ctx, w.batch, batch, w.slave.EntryOps, func(i int, f *slavev1.EntryFailure) {
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
			kind, errno := ops[ef.i].GetOp(), syscall.Errno(ef.f.GetErrno())
			if (ef.enoent == 1 && errno == syscall.ENOENT && (kind == slavev1.EntryOp_ENTRY_OP_RENAME || kind == slavev1.EntryOp_ENTRY_OP_LINK)) ||
				(ef.eexist == 1 && errno == syscall.EEXIST && isCreate(kind)) {
				progress = true
			}
		}
		failed = append(kept, again...)
		if !progress {
			break
		}
	}
	w.recordEntryFailures(ops, opGFID, failed, out)
	return nil
}

// recordEntryFailures records the ops the slave still refuses, each
// classified by its errno. An ENOENT under a directory whose own op failed
// permanently in this pass (or under a child of one, and so on down) is
// permanent too: the parent will not be there however often it is retried.
func (w *worker) recordEntryFailures(ops []*slavev1.Entry, opGFID []gfid.GFID, failed []*entryFailure, out *outcome) {
	classes := make([]cause, len(failed))
	permanent := map[string]bool{} // gfids (as sent) that failed permanently
	for i, ef := range failed {
		classes[i] = cause{errno: syscall.Errno(ef.f.GetErrno()), side: sideSlave, kind: kindEntry, op: ops[ef.i].GetOp()}
		if classify(classes[i]) == classPermanent {
			permanent[ops[ef.i].GetGfid()] = true
		}
	}
	for changed := true; changed; {
		changed = false
		for i, ef := range failed {
			op := ops[ef.i]
			if classes[i].errno != syscall.ENOENT || classes[i].parentPermanent {
				continue
			}
			parent := op.GetPargfid()
			if op.GetOp() == slavev1.EntryOp_ENTRY_OP_RENAME {
				parent = op.GetNewPargfid()
			}
			if permanent[parent] {
				classes[i].parentPermanent, changed = true, true
				permanent[op.GetGfid()] = true
			}
		}
	}
	for i, ef := range failed {
		op := ops[ef.i]
		w.log.Warn("entry op failed", "op", op.GetOp().String(), "gfid", op.GetGfid(),
			"pargfid", op.GetPargfid(), "name", fmt.Sprintf("%q", op.GetName()),
			"errno", errnoName(ef.f.GetErrno()), "err", ef.f.GetMessage(), "class", classify(classes[i]))
		why := ef.f.GetMessage()
		if classes[i].parentPermanent {
			why += " (its parent failed permanently)"
		}
		out.fail(opGFID[ef.i], classes[i], "%s: %s", op.GetOp(), why)
	}
}

func isCreate(op slavev1.EntryOp) bool {
	switch op {
	case slavev1.EntryOp_ENTRY_OP_CREATE, slavev1.EntryOp_ENTRY_OP_MKDIR, slavev1.EntryOp_ENTRY_OP_MKNOD, slavev1.EntryOp_ENTRY_OP_SYMLINK:
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
func (w *worker) fixEntry(ctx context.Context, op *slavev1.Entry, ef *entryFailure, snap *crawl.Snapshot, out *outcome, g gfid.GFID) (pre []*slavev1.Entry, retry *slavev1.Entry, done bool) {
	f := ef.f
	kind := op.GetOp()
	switch syscall.Errno(f.GetErrno()) {
	case syscall.EEXIST:
		if ex := f.GetExistingGfid(); ex != "" && ex != op.GetGfid() {
			parent, name := op.GetPargfid(), op.GetName()
			if kind == slavev1.EntryOp_ENTRY_OP_RENAME {
				parent, name = op.GetNewPargfid(), op.GetNewName()
			}
			pg, err1 := gfid.Parse(parent)
			only, err2 := gfid.Parse(ex)
			if err1 != nil || err2 != nil {
				return nil, nil, false
			}
			if err := w.slave.Purge(ctx, pg, string(name), only); err != nil {
				w.log.Warn("purging a conflicting name on the slave failed", "pargfid", pg, "name", fmt.Sprintf("%q", name), "err", err)
				return nil, nil, false
			}
			if out.purged != nil {
				out.purged[only] = true
			}
			w.log.Info("purged a name the slave held for another inode", "pargfid", pg, "name", fmt.Sprintf("%q", name), "slave_gfid", ex, "gfid", op.GetGfid())
			return nil, op, false
		}
		if !isCreate(kind) {
			return nil, nil, false
		}
		ef.eexist++
		if ef.eexist == 1 {
			// The name may hold an inode without a gfid (a slave killed
			// between creating it and marking it): purge it and retry.
			pg, err := gfid.Parse(op.GetPargfid())
			if err != nil {
				return nil, nil, false
			}
			if err := w.slave.Purge(ctx, pg, string(op.GetName()), gfid.GFID{}); err != nil {
				w.log.Warn("purging a name on the slave failed", "pargfid", pg, "name", fmt.Sprintf("%q", op.GetName()), "err", err)
				return nil, nil, false
			}
			return nil, op, false
		}
		// Refused again: the gfid exists under another name.
		w.log.Info("moving an entry the slave holds under another name", "gfid", op.GetGfid(), "name", fmt.Sprintf("%q", op.GetName()))
		return nil, &slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_RENAME, Gfid: op.GetGfid(),
			Pargfid: op.GetPargfid(), Name: op.GetName(), NewPargfid: op.GetPargfid(), NewName: op.GetName()}, false
	case syscall.ENOENT:
		ef.enoent++
		if kind == slavev1.EntryOp_ENTRY_OP_RENAME && op.GetNewPargfid() == gfid.Park.String() {
			return nil, nil, true // the gfid is nowhere on the slave: nothing to park; leaving the park recreates it
		}
		parent := op.GetPargfid()
		if kind == slavev1.EntryOp_ENTRY_OP_RENAME {
			parent = op.GetNewPargfid()
		}
		switch {
		case isCreate(kind) || ((kind == slavev1.EntryOp_ENTRY_OP_RENAME || kind == slavev1.EntryOp_ENTRY_OP_LINK) && ef.enoent == 1):
			pg, err := gfid.Parse(parent)
			if err != nil {
				return nil, nil, false
			}
			chain, ok := mkdirChain(pg, snap)
			if !ok {
				return nil, nil, false
			}
			return chain, op, false
		case kind == slavev1.EntryOp_ENTRY_OP_RENAME || kind == slavev1.EntryOp_ENTRY_OP_LINK:
			n, ok := snap.Lookup(g)
			if !ok {
				return nil, nil, false
			}
			name, pargfid := op.GetName(), op.GetPargfid()
			if kind == slavev1.EntryOp_ENTRY_OP_RENAME {
				name, pargfid = op.GetNewName(), op.GetNewPargfid()
			}
			e := &slavev1.Entry{Gfid: op.GetGfid(), Pargfid: pargfid, Name: name, Mode: n.Mode, Uid: n.UID, Gid: n.GID}
			switch n.Type {
			case catalog.TypeDir:
				if _, err := w.cat.Unsync([]gfid.GFID{g}); err != nil {
					w.log.Warn("forgetting a directory missing on the slave", "gfid", g, "err", err)
				}
				w.needFull = true
				w.log.Info("a directory is missing on the slave: a hybrid crawl recreates it with its content", "gfid", g)
				return nil, nil, false
			case catalog.TypeReg:
				e.Op = slavev1.EntryOp_ENTRY_OP_CREATE
				out.failData(g, "recreated on the slave, data follows", cause{kind: kindData})
			case catalog.TypeSymlink:
				e.Op, e.LinkTarget = slavev1.EntryOp_ENTRY_OP_SYMLINK, []byte(n.Target)
			default:
				e.Op, e.Rdev = slavev1.EntryOp_ENTRY_OP_MKNOD, n.Rdev
			}
			w.log.Info("recreating an entry missing on the slave", "gfid", g, "name", fmt.Sprintf("%q", name))
			return nil, e, false
		}
	case syscall.ENOTEMPTY:
		if kind != slavev1.EntryOp_ENTRY_OP_RMDIR || w.cfg.IgnoreDeletes {
			return nil, nil, false
		}
		pg, err1 := gfid.Parse(op.GetPargfid())
		only, err2 := gfid.Parse(op.GetGfid())
		if err1 != nil || err2 != nil {
			return nil, nil, false
		}
		if err := w.slave.Purge(ctx, pg, string(op.GetName()), only); err != nil {
			w.log.Warn("purging a directory the slave holds more in", "gfid", only, "err", err)
			return nil, nil, false
		}
		w.log.Info("purged a removed directory holding entries unknown to the master", "gfid", only, "name", fmt.Sprintf("%q", op.GetName()))
		return nil, nil, true
	}
	return nil, nil, false
}

// mkdirChain returns MKDIRs for dir and its ancestors below the root, top
// first, from the master's snapshot; ok is false when the snapshot does not
// place them.
func mkdirChain(dir gfid.GFID, snap *crawl.Snapshot) ([]*slavev1.Entry, bool) {
	var chain []*slavev1.Entry
	for g := dir; g != gfid.Root; {
		n, ok := snap.Lookup(g)
		if !ok || n.Type != catalog.TypeDir || len(n.Links) == 0 || len(chain) > 4096 {
			return nil, false
		}
		l := n.Links[0]
		chain = append([]*slavev1.Entry{{Op: slavev1.EntryOp_ENTRY_OP_MKDIR, Gfid: g.String(), Pargfid: l.Parent.String(),
			Name: []byte(l.Name), Mode: n.Mode, Uid: n.UID, Gid: n.GID}}, chain...)
		g = l.Parent
	}
	return chain, true
}
