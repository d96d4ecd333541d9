package master

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/georep/georep/master/catalog"
	"github.com/georep/georep/master/changelog"
	"github.com/georep/georep/master/crawl"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
	"golang.org/x/sys/unix"
)

// outcome is what processing one changelog achieved.
type outcome struct {
	entries, metas, deletes int
	files                   int
	bytes                   int64
	// failed maps each gfid that could not be brought up to date to why,
	// causes to what classifies it (its errno, side and op).
	failed map[gfid.GFID]string
	causes map[gfid.GFID]cause
	// dataFailed holds the gfids whose entry and meta ops were applied but
	// whose data was not shipped; dataWhy says why, dataCauses classifies.
	dataFailed map[gfid.GFID]bool
	dataWhy    map[gfid.GFID]string
	dataCauses map[gfid.GFID]cause
	// named holds every gfid a record of the changelog names.
	named map[gfid.GFID]bool
	// resolving holds the gfids whose entry ops the slave refused and the
	// resolution rounds retry: their data waits for the outcome (a purge
	// may replace the inode it would have been written to). purged holds
	// the gfids whose names the rounds purged on the slave.
	resolving, purged map[gfid.GFID]bool
	// dataRead holds, for a brick worker, the read mark of each file whose
	// data was handed to the sync jobs (readMarks.observe, taken before).
	dataRead map[gfid.GFID]int64
}

// fail records the first failure of g, classified by c.
func (o *outcome) fail(g gfid.GFID, c cause, format string, args ...any) {
	if _, ok := o.failed[g]; !ok {
		o.failed[g] = fmt.Sprintf(format, args...)
		if o.causes == nil {
			o.causes = map[gfid.GFID]cause{}
		}
		o.causes[g] = c
	}
}

// failData records that the data of g was not shipped, why and its cause.
func (o *outcome) failData(g gfid.GFID, why string, c cause) {
	o.dataFailed[g] = true
	o.dataWhy[g] = why
	if o.dataCauses == nil {
		o.dataCauses = map[gfid.GFID]cause{}
	}
	o.dataCauses[g] = c
}

// processChangelog applies one changelog: parse → stat each gfid on the
// master → EntryOps (ordered, batched) → MetaOps → data through the sync
// jobs. The caller advances stime only when nothing failed. entriesDone,
// when not nil, is called once every entry op has been applied (or has
// failed), before the metadata: the caller records it so that a replay
// after a crash skips them (gsyncd's entry stime).
func (w *worker) processChangelog(ctx context.Context, path string, snap *crawl.Snapshot, entriesDone func(failed map[gfid.GFID]string) error) (*outcome, error) {
	recs, err := readChangelog(path)
	if err != nil {
		return nil, err
	}
	if w.log.Enabled(ctx, slog.LevelDebug) {
		logRecords(ctx, w.log, "changelog record", filepath.Base(path), recs)
	}
	out := newOutcome(recs)
	plan := planChangelog(recs, snap, w.entryOp, out)
	ship := w.newDataShipper(plan, snap, out)
	w.prog.Store(ship.prog)
	defer w.prog.Store(nil)

	// The metas go behind the entry ops, in the same pipeline: computed
	// now, nothing has failed yet. Many of them (a first sync) are
	// computed while the entry ops go, and follow them in a pipeline of
	// their own: on a brick each is a stat through the aux-gfid mount, and
	// thousands of those ahead of the first entry op kept the slave idle
	// for seconds; one more round trip is nothing beside that.
	var metas []ops.Meta
	var metaGFID []gfid.GFID
	var metasReady chan struct{}
	if len(plan.touched) >= asyncMetas {
		metasReady = make(chan struct{})
		go func() {
			defer close(metasReady)
			metas, metaGFID = w.touchedMetas(plan, snap, out)
		}()
	} else {
		metas, metaGFID = w.touchedMetas(plan, snap, out)
	}
	t0 := time.Now()
	ship.prog.report(ctx, w.log, len(plan.entries), len(ship.queue), t0)
	defer ship.prog.stop()
	ship.launch(ctx, 0)
	var tEntries time.Duration
	failed, metaFails, err := w.sendOps(ctx, plan.entries, plan.opGFID, out, metas, func(applied int) {
		ship.prog.entries.Store(int64(applied))
		ship.launch(ctx, applied)
		if applied == len(plan.entries) {
			tEntries = time.Since(t0)
		}
	})
	if metasReady != nil {
		<-metasReady
		if err == nil && len(failed) == 0 {
			// After every entry op, as in the one pipeline.
			_, metaFails, err = w.sendOps(ctx, nil, nil, out, metas, nil)
		}
	}
	if err == nil {
		err = w.resolveEntries(ctx, plan.entries, plan.opGFID, failed, out, snap)
	}
	ship.resolved(ctx, len(plan.entries))
	if err == nil {
		w.countEntryOps(plan.entries)
	}
	if err == nil && entriesDone != nil {
		err = entriesDone(out.failed)
	}
	if err != nil {
		ship.collect()
		return nil, err
	}
	out.entries = len(plan.entries)

	t1 := t0.Add(tEntries)
	if len(failed) > 0 {
		// The entry failures were resolved, or recorded, after the metas
		// went: the rounds may have purged and created, and a gfid whose
		// op failed gets none. Set them again as they stand now.
		t1 = time.Now()
		metas, metaGFID = w.touchedMetas(plan, snap, out)
		err = w.applyMetas(ctx, metas, metaGFID, out)
	} else {
		for _, f := range metaFails {
			w.metaFailed(metas, metaGFID, f, out)
		}
	}
	tMeta := time.Since(t1)
	ship.collect()
	if err == nil && w.brick != nil {
		err = w.shippedMeta(ctx, plan.data, ship.writtenWhole, snap, out)
	}
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	out.metas = len(metas)
	out.files = ship.files
	level := slog.LevelInfo
	if w.stats.CrawlStatus == "Changelog" {
		level = slog.LevelDebug // a live pass per change: too many for info
	}
	w.log.Log(ctx, level, "changelog processed", "changelog", filepath.Base(path), "entries", len(plan.entries), "entry_ops_time", tEntries,
		"metas", len(metas), "meta_ops_time", tMeta, "files", ship.files, "small_files", ship.smallFiles, "streamed_files", ship.streamed.Load(), "bytes", out.bytes, "total_time", time.Since(t0),
		"failures", len(out.failed))
	return out, nil
}

// logRecords logs each record of a changelog at debug level, one line
// each: what a pass did, to analyse a replica that did not converge (the
// changelogs themselves are removed once processed).
func logRecords(ctx context.Context, log *slog.Logger, msg, file string, recs []changelog.Record) {
	for _, r := range recs {
		log.Log(ctx, slog.LevelDebug, msg, "changelog", file, "record", r.String())
	}
}

// readChangelog parses the changelog file at path.
func readChangelog(path string) ([]changelog.Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open changelog: %w", err)
	}
	recs, err := changelog.Parse(f, path)
	f.Close()
	return recs, err
}

// newOutcome is the empty outcome of a changelog of recs.
func newOutcome(recs []changelog.Record) *outcome {
	out := &outcome{failed: map[gfid.GFID]string{}, causes: map[gfid.GFID]cause{},
		dataFailed: map[gfid.GFID]bool{}, dataWhy: map[gfid.GFID]string{}, dataCauses: map[gfid.GFID]cause{},
		named: make(map[gfid.GFID]bool, len(recs)), resolving: map[gfid.GFID]bool{}, purged: map[gfid.GFID]bool{}}
	for _, r := range recs {
		out.named[r.GFID] = true
	}
	return out
}

// changelogPlan is what one changelog asks of the slave.
type changelogPlan struct {
	// entries are the entry ops, in the changelog's order; opGFID[i] is
	// the gfid entries[i] is for.
	entries []ops.Entry
	opGFID  []gfid.GFID
	// touched holds the gfids whose metadata to send (the park excluded).
	touched map[gfid.GFID]bool
	// data holds the gfids of the D records, in order.
	data []gfid.GFID
}

// planChangelog sorts the records into entry ops (converted by entryOp,
// which drops those whose gfid vanished on the master), the gfids whose
// metadata to send and those whose data to ship; it counts the deletes in
// out.
func planChangelog(recs []changelog.Record, snap *crawl.Snapshot, entryOp func(changelog.Record, *crawl.Snapshot) (ops.Entry, bool), out *outcome) changelogPlan {
	p := changelogPlan{touched: map[gfid.GFID]bool{}}
	for _, r := range recs {
		switch r.Kind {
		case changelog.Entry:
			e, ok := entryOp(r, snap)
			if !ok {
				continue // vanished on the master since the changelog was written
			}
			p.entries = append(p.entries, e)
			p.opGFID = append(p.opGFID, r.GFID)
			switch r.Fop {
			case changelog.Unlink, changelog.Rmdir:
				out.deletes++
			default:
				p.touched[r.GFID] = true
			}
			p.touched[r.Parent] = true
			if r.Fop == changelog.Rename {
				p.touched[r.NewParent] = true
			}
		case changelog.Meta:
			p.touched[r.GFID] = true
		case changelog.Data:
			p.data = append(p.data, r.GFID)
		}
	}
	delete(p.touched, gfid.Park)
	return p
}

// xattrsSynced reports whether the regular file g, as crawled (n), has the
// user.* xattrs the catalog's record of it says the slave holds: a record
// of a complete sync (not one committed with impossible times, whose meta
// and data were still to come), of a regular file, with the same digest.
func (w *worker) xattrsSynced(g gfid.GFID, n crawl.Node) bool {
	o, ok, err := w.cat.Node(g)
	return err == nil && ok && o.Type == catalog.TypeReg && o.MtimeNs >= 0 && o.CtimeNs >= 0 &&
		bytes.Equal(o.XattrHash, n.XattrHash)
}

// asyncMetas is how many gfids a changelog touches from which its metas
// are computed beside its entry ops (processChangelog).
const asyncMetas = 512

// touchedMetas returns the meta ops of everything the plan touched, from
// the master's stat, but those whose ops failed and, unless sync-xattrs,
// the files whose data is shipped (rsync and WriteFiles set their mode,
// owner and times); metaGFID[i] is the gfid of metas[i].
func (w *worker) touchedMetas(plan changelogPlan, snap *crawl.Snapshot, out *outcome) (metas []ops.Meta, metaGFID []gfid.GFID) {
	shipped := make(map[gfid.GFID]bool, len(plan.data))
	for _, g := range plan.data {
		shipped[g] = true
	}
	// In a first sync into an empty slave, an inode this changelog creates
	// is new there: it has no user.* xattr for a meta op to remove.
	var created map[gfid.GFID]bool
	if w.cfg.SyncXattrs && w.fresh && w.freshGen == w.sessionGen && w.sessionOpen() {
		created = map[gfid.GFID]bool{}
		for i, e := range plan.entries {
			if e.Op == ops.OpCreate {
				created[plan.opGFID[i]] = true
			}
		}
	}
	for g := range plan.touched {
		if _, bad := out.failed[g]; bad {
			continue
		}
		if shipped[g] && !w.cfg.SyncXattrs {
			continue // rsync and WriteFiles set mode, owner and times of the files they ship
		}
		n, ok := snap.Lookup(g)
		if !ok {
			continue
		}
		if shipped[g] && created[g] && n.Type == catalog.TypeReg && len(n.Xattrs) == 0 {
			// Nor has it any to get: what the data sets (mode, owner,
			// times) is all its metadata.
			continue
		}
		if shipped[g] && w.cfg.SyncXattrs && n.Type == catalog.TypeReg && w.xattrsSynced(g, n) {
			// Its xattrs are those the slave has (the catalog's complete
			// record): what the data sets is all that may have changed,
			// as without sync-xattrs.
			continue
		}
		metas = append(metas, w.metaOp(g, n))
		metaGFID = append(metaGFID, g)
	}
	return metas, metaGFID
}

// shippedMeta sets, once their data is shipped, the metadata of the
// regular files a brick worker shipped with rsync: rsync read them on the
// brick, whose inode's times are not the volume's (see metaOp). WriteFiles
// carried the volume's already (whole).
func (w *worker) shippedMeta(ctx context.Context, data []gfid.GFID, whole map[gfid.GFID]bool, snap *crawl.Snapshot, out *outcome) error {
	var metas []ops.Meta
	var metaGFID []gfid.GFID
	for _, g := range data {
		n, ok := snap.Lookup(g)
		if !ok || n.Type != catalog.TypeReg || out.dataFailed[g] || whole[g] {
			continue
		}
		if _, bad := out.failed[g]; bad {
			continue
		}
		metas = append(metas, w.metaOp(g, n))
		metaGFID = append(metaGFID, g)
	}
	return w.applyMetas(ctx, metas, metaGFID, out)
}

// entryOp converts an entry record into the slave's entry op, completing it
// from the master's stat (device numbers, symlink targets). ok is false when
// the gfid no longer exists on the master and the op makes no sense any more.
func (w *worker) entryOp(r changelog.Record, snap *crawl.Snapshot) (ops.Entry, bool) {
	e := ops.Entry{GFID: r.GFID, Parent: r.Parent, Name: r.Name,
		Mode: r.Mode, UID: r.UID, GID: r.GID}
	n, exists := snap.Lookup(r.GFID)
	switch r.Fop {
	case changelog.Create:
		e.Op = ops.OpCreate
	case changelog.Mkdir:
		e.Op = ops.OpMkdir
	case changelog.Mknod:
		e.Op = ops.OpMknod
		if !exists {
			return ops.Entry{}, false
		}
		e.Rdev = n.Rdev
	case changelog.Symlink:
		e.Op = ops.OpSymlink
		if !exists {
			return ops.Entry{}, false
		}
		e.Target = n.Target
		e.Mode, e.UID, e.GID = n.Mode, n.UID, n.GID
	case changelog.Link:
		e.Op = ops.OpLink
	case changelog.Rename:
		e.Op = ops.OpRename
		e.NewParent = r.NewParent
		e.NewName = r.NewName
	case changelog.Unlink:
		e.Op = ops.OpUnlink
	case changelog.Rmdir:
		e.Op = ops.OpRmdir
	default:
		return ops.Entry{}, false
	}
	if exists && (r.Fop == changelog.Create || r.Fop == changelog.Mkdir || r.Fop == changelog.Mknod) {
		e.Mode, e.UID, e.GID = n.Mode, n.UID, n.GID
	}
	return e, true
}

func (w *worker) metaOp(g gfid.GFID, n crawl.Node) ops.Meta {
	if w.brick != nil && w.brick.auxMount != "" {
		// GlusterFS keeps the volume's times apart from the brick inode's
		// (the utime translator's trusted.glusterfs.mdata), and DHT merges
		// a directory's from every brick: the volume's view is the truth.
		// But a regular file's mode is the brick's: DHT hides setgid and
		// sticky together (its mark of a file being migrated).
		var st unix.Stat_t
		if err := unix.Lstat(w.brick.dataPath(g), &st); err == nil && catalog.TypeOfMode(st.Mode) == n.Type {
			if n.Type != catalog.TypeReg {
				n.Mode = st.Mode
			}
			n.UID, n.GID = st.Uid, st.Gid
			n.MtimeNs = st.Mtim.Nano()
		}
	}
	mtime := time.Unix(n.MtimeNs/1e9, n.MtimeNs%1e9)
	m := ops.Meta{
		GFID:    g,
		SetMode: n.Type != catalog.TypeSymlink, Mode: n.Mode & 0o7777,
		SetOwner: true, UID: n.UID, GID: n.GID,
		Mtime: &mtime,
	}
	if w.cfg.SyncXattrs && (n.Type == catalog.TypeReg || n.Type == catalog.TypeDir) {
		m.SetXattrs = true
		m.Xattrs = make(map[string][]byte, len(n.Xattrs))
		for name, v := range n.Xattrs {
			m.Xattrs[name] = v
		}
	}
	return m
}

// inBatches sends items in calls of at most batch items and hands every
// failure the slave reports to onFail with the item's index in items; done,
// when not nil, gets the number of items sent after each call.
func inBatches[T any](ctx context.Context, batch int, items []T,
	call func(context.Context, []T) ([]ops.Failure, error),
	onFail func(int, ops.Failure), done func(int)) error {
	for start := 0; start < len(items); start += batch {
		end := min(start+batch, len(items))
		failures, err := call(ctx, items[start:end])
		if err != nil {
			return err
		}
		for _, f := range failures {
			i := start + f.Index
			if f.Index < 0 || i >= end {
				return fmt.Errorf("slave reported a failure for item %d of a batch of %d", f.Index, end-start)
			}
			onFail(i, f)
		}
		if done != nil {
			done(end)
		}
	}
	return nil
}

// sendOps sends a changelog's entry ops, then metas, in batches through
// one ordered pipeline (runBatches: all of them in one round trip), and
// returns the entry ops the slave refused, for the resolution rounds, and
// the metas' failures (indexed in metas). applied, when not nil, is called
// after each batch of entry ops with the number of entry ops applied so
// far.
func (w *worker) sendOps(ctx context.Context, entries []ops.Entry, opGFID []gfid.GFID, out *outcome, metas []ops.Meta, applied func(int)) (failed []*entryFailure, metaFails []ops.Failure, err error) {
	batches := batchesOf(w.batch, entries, metas, w.pipelines())
	done := 0 // entry ops, then metas, answered
	err = w.runBatches(ctx, batches, func(k int, fs []ops.Failure) {
		b := batches[k]
		for _, f := range fs {
			if b.metas != nil {
				f.Index += done - len(entries)
				metaFails = append(metaFails, f)
				continue
			}
			i := done + f.Index
			failed = append(failed, &entryFailure{i: i, f: f})
			if out.resolving != nil {
				out.resolving[opGFID[i]] = true
			}
		}
		done += b.len()
		if b.entries != nil && applied != nil {
			applied(done)
		}
	})
	return failed, metaFails, err
}

// applyMetas sends metas in batches through one ordered pipeline and
// records their failures in out.
func (w *worker) applyMetas(ctx context.Context, metas []ops.Meta, metaGFID []gfid.GFID, out *outcome) error {
	_, fails, err := w.sendOps(ctx, nil, nil, out, metas, nil)
	for _, f := range fails {
		w.metaFailed(metas, metaGFID, f, out)
	}
	return err
}

// metaFailed records the failure f of metas[f.Index].
func (w *worker) metaFailed(metas []ops.Meta, metaGFID []gfid.GFID, f ops.Failure, out *outcome) {
	w.log.Warn("meta op failed", "gfid", metas[f.Index].GFID.String(), "errno", errnoName(f.Errno), "err", f.Message)
	out.fail(metaGFID[f.Index], cause{errno: f.Errno, side: sideSlave, kind: kindMeta}, "meta: %s", f.Message)
}

// progress logs how far a long changelog has got, every progressEvery, so
// that a first sync of a large tree is never silent.
type progress struct {
	entries, files atomic.Int64
	bytes          atomic.Int64 // of the files shipped
	// What the changelog holds, set before the progress is published.
	start                                time.Time
	entriesTotal, filesTotal, bytesTotal int64
	done                                 chan struct{}
	wg                                   sync.WaitGroup
}

var progressEvery = 10 * time.Second // a variable for tests

func (p *progress) report(ctx context.Context, log *slog.Logger, entries, files int, start time.Time) {
	p.done = make(chan struct{})
	p.wg.Go(func() {
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-p.done:
				return
			case <-t.C:
			}
			e, f := p.entries.Load(), p.files.Load()
			elapsed := time.Since(start)
			attrs := []any{"entries_done", e, "entries", entries, "files_done", f, "files", files, "elapsed", elapsed.Round(time.Second)}
			if f > 0 && int(f) < files {
				rate := float64(f) / elapsed.Seconds()
				attrs = append(attrs, "files_per_s", int(rate), "eta", (time.Duration(float64(int64(files)-f)/rate) * time.Second).Round(time.Second))
			}
			log.Info("progress", attrs...)
		}
	})
}

func (p *progress) stop() {
	if p.done != nil {
		close(p.done)
		p.wg.Wait()
	}
}
