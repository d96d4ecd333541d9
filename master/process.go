package master

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/georep/georep/master/catalog"
	"github.com/georep/georep/master/changelog"
	"github.com/georep/georep/master/crawl"
	"github.com/georep/georep/master/syncer"
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
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open changelog: %w", err)
	}
	recs, err := changelog.Parse(f, path)
	f.Close()
	if err != nil {
		return nil, err
	}
	out := &outcome{failed: map[gfid.GFID]string{}, causes: map[gfid.GFID]cause{},
		dataFailed: map[gfid.GFID]bool{}, dataWhy: map[gfid.GFID]string{}, dataCauses: map[gfid.GFID]cause{},
		named: make(map[gfid.GFID]bool, len(recs)), resolving: map[gfid.GFID]bool{}, purged: map[gfid.GFID]bool{}}
	for _, r := range recs {
		out.named[r.GFID] = true
	}

	// Entry ops, in order.
	var entries []ops.Entry
	var opGFID []gfid.GFID
	touched := map[gfid.GFID]bool{} // gfids whose metadata to send
	var data []gfid.GFID
	for _, r := range recs {
		switch r.Kind {
		case changelog.Entry:
			e, ok := w.entryOp(r, snap)
			if !ok {
				continue // vanished on the master since the changelog was written
			}
			entries = append(entries, e)
			opGFID = append(opGFID, r.GFID)
			switch r.Fop {
			case changelog.Unlink, changelog.Rmdir:
				out.deletes++
			default:
				touched[r.GFID] = true
			}
			touched[r.Parent] = true
			if r.Fop == changelog.Rename {
				touched[r.NewParent] = true
			}
		case changelog.Meta:
			touched[r.GFID] = true
		case changelog.Data:
			data = append(data, r.GFID)
		}
	}
	delete(touched, gfid.Park)

	// Data items, each ready once the last entry op naming its gfid is
	// applied: the sync jobs start on the first batches while the slave
	// applies the next ones. Files up to small-file-size go whole through
	// WriteFiles instead of rsync (not with sync-acls: rsync ships the ACLs).
	type pending struct {
		item  syncer.Item
		size  int64
		ready int // entry ops that must be applied first
	}
	lastOp := make(map[gfid.GFID]int, len(opGFID))
	for i, g := range opGFID {
		lastOp[g] = i + 1
	}
	smallMax := w.cfg.SmallFileSize
	if w.cfg.SyncACLs {
		smallMax = 0
	}
	var queue []pending
	sizeOf := make(map[gfid.GFID]int64, len(data)) // for the progress and the rates
	for _, g := range data {
		n, ok := snap.Lookup(g)
		if !ok || n.Type != catalog.TypeReg {
			continue
		}
		p, ok := snap.Path(g)
		if !ok {
			continue
		}
		queue = append(queue, pending{syncer.Item{GFID: g, Path: p}, n.Size, lastOp[g]})
		sizeOf[g] = n.Size
		out.bytes += n.Size
	}
	slices.SortStableFunc(queue, func(a, b pending) int { return a.ready - b.ready })
	// Every goroutine launched sends exactly one result, and each carries at
	// least one item.
	results := make(chan map[gfid.GFID]error, len(queue)+1)
	writers := make(chan struct{}, max(1, w.cfg.SyncJobs)) // WriteFiles calls in flight
	launched, files, smallFiles := 0, 0, 0
	prog := &progress{start: time.Now(), entriesTotal: int64(len(entries)), filesTotal: int64(len(queue)), bytesTotal: out.bytes}
	w.prog.Store(prog)
	defer w.prog.Store(nil)
	var deferred []pending
	launchedData := map[gfid.GFID]bool{}
	var writtenMu sync.Mutex
	writtenWhole := map[gfid.GFID]bool{} // shipped by WriteFiles, metadata included
	launch := func(applied int) {
		var items []syncer.Item
		var small smallBatcher
		for ; len(queue) > 0 && queue[0].ready <= applied; queue = queue[1:] {
			q := queue[0]
			if _, bad := out.failed[q.item.GFID]; bad {
				continue
			}
			if out.resolving[q.item.GFID] {
				deferred = append(deferred, q)
				continue
			}
			launchedData[q.item.GFID] = true
			files++
			if smallMax > 0 && q.size <= smallMax {
				small.add(q.item, q.size, w.batch)
				smallFiles++
				continue
			}
			items = append(items, q.item)
		}
		if len(items) > 0 {
			launched++
			go func() {
				r := w.data.Sync(ctx, items)
				prog.files.Add(int64(len(items)))
				w.shipped(prog, items, r, sizeOf)
				results <- r
			}()
		}
		for _, b := range small.done() {
			launched++
			go func() {
				r := w.writeSmall(ctx, b, smallMax, writers, func(g gfid.GFID) {
					writtenMu.Lock()
					writtenWhole[g] = true
					writtenMu.Unlock()
				})
				prog.files.Add(int64(len(b)))
				w.shipped(prog, b, r, sizeOf)
				results <- r
			}()
		}
	}

	t0 := time.Now()
	prog.report(ctx, w.log, len(entries), len(queue), t0)
	defer prog.stop()
	launch(0)
	err = w.applyEntries(ctx, entries, opGFID, out, snap, func(applied int) {
		prog.entries.Store(int64(applied))
		launch(applied)
	})
	// The resolution rounds are over: the data that waited for them goes,
	// and data already written to an inode the rounds purged goes again at
	// the next pass.
	queue, out.resolving = append(deferred, queue...), nil
	for g := range out.purged {
		if launchedData[g] {
			out.failData(g, "the slave's inode was replaced while its entry conflicts were resolved; shipped again", cause{kind: kindData})
		}
	}
	launch(len(entries))
	tEntries := time.Since(t0)
	collect := func() {
		for ; launched > 0; launched-- {
			reasons := map[string]int{}
			for g, err := range <-results {
				out.failData(g, err.Error(), dataCause(err))
				reasons[err.Error()]++
			}
			for why, n := range reasons {
				w.log.Warn("data not shipped", "files", n, "err", why)
			}
		}
	}
	if err == nil {
		w.countEntryOps(entries)
	}
	if err == nil && entriesDone != nil {
		err = entriesDone(out.failed)
	}
	if err != nil {
		collect()
		return nil, err
	}
	out.entries = len(entries)

	// Metadata of everything touched, from the master's stat.
	var metas []ops.Meta
	var metaGFID []gfid.GFID
	shipped := make(map[gfid.GFID]bool, len(data))
	for _, g := range data {
		shipped[g] = true
	}
	for g := range touched {
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
		metas = append(metas, w.metaOp(g, n))
		metaGFID = append(metaGFID, g)
	}
	t1 := time.Now()
	err = w.applyMetas(ctx, metas, metaGFID, out)
	tMeta := time.Since(t1)
	collect()
	if err == nil && w.brick != nil {
		err = w.shippedMeta(ctx, data, writtenWhole, snap, out)
	}
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	out.metas = len(metas)
	out.files = files
	level := slog.LevelInfo
	if w.stats.CrawlStatus == "Changelog" {
		level = slog.LevelDebug // a live pass per change: too many for info
	}
	w.log.Log(ctx, level, "changelog processed", "changelog", filepath.Base(path), "entries", len(entries), "entry_ops_time", tEntries,
		"metas", len(metas), "meta_ops_time", tMeta, "files", files, "small_files", smallFiles, "bytes", out.bytes, "total_time", time.Since(t0),
		"failures", len(out.failed))
	return out, nil
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

func (w *worker) applyMetas(ctx context.Context, metas []ops.Meta, metaGFID []gfid.GFID, out *outcome) error {
	return inBatches(ctx, w.batch, metas, w.slave.MetaOps, func(i int, f ops.Failure) {
		w.log.Warn("meta op failed", "gfid", metas[i].GFID.String(), "errno", errnoName(f.Errno), "err", f.Message)
		out.fail(metaGFID[i], cause{errno: f.Errno, side: sideSlave, kind: kindMeta}, "meta: %s", f.Message)
	}, nil)
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
