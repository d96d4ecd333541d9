package master

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/georep/georep/master/catalog"
	"github.com/georep/georep/master/crawl"
	"github.com/georep/georep/master/syncer"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// pendingData is a file whose data waits for entry ops to be applied.
type pendingData struct {
	item  syncer.Item
	size  int64
	ready int // entry ops that must be applied first (up to its create)
}

// dataShipper hands a changelog's file data to the sync jobs, each file as
// soon as the entry op creating its gfid is applied: the sync jobs start
// on the first batches while the slave applies the next ones. Files up to
// small-file-size go whole through WriteFiles instead of rsync (with
// sync-acls, those without an ACL, to a slave that clears the one its file
// has; the others go through rsync -A); larger ones the changelog creates
// (new, so empty on the slave) each through a WriteFile stream when the
// slave has one, at most sync-jobs at once (largefiles.go). It is driven by one goroutine
// (processChangelog); the calls it launches report to it through results.
type dataShipper struct {
	w        *worker
	out      *outcome
	smallMax int64
	queue    []pendingData       // by ready
	deferred []pendingData       // waiting for the resolution rounds
	sizeOf   map[gfid.GFID]int64 // for the progress and the rates
	prog     *progress
	// Every goroutine launched sends exactly one result, and each carries
	// at least one item.
	results chan map[gfid.GFID]error
	writers chan struct{} // WriteFiles calls in flight
	streams chan struct{} // WriteFile streams in flight
	// largeMin: new files larger go through WriteFile (canStream).
	largeMin  int64
	canStream bool
	readers   chan struct{} // WriteFiles batches being read
	launched  int
	// files and smallFiles count the files handed over, by either path
	// and by WriteFiles.
	files, smallFiles int
	streamed          atomic.Int64 // files WriteFile wrote
	launchedData      map[gfid.GFID]bool
	// fresh holds the files this changelog creates in a first sync into
	// an empty slave (pass): new there, without an ACL to clear.
	fresh        map[gfid.GFID]bool
	writtenMu    sync.Mutex
	writtenWhole map[gfid.GFID]bool // shipped by WriteFiles, metadata included
}

// newDataShipper queues the plan's regular files that the snapshot still
// places, counts their bytes in out and publishes nothing yet: the caller
// stores ship.prog. A file waits for the op that creates it; one the
// changelog only renames or links (the slave has its inode) goes at once:
// data is written by gfid, through the slave's gfid index, whatever its
// names (a purge by the resolution rounds is caught in resolved).
func (w *worker) newDataShipper(plan changelogPlan, snap *crawl.Snapshot, out *outcome) *dataShipper {
	lastOp := make(map[gfid.GFID]int, len(plan.opGFID))
	for i, g := range plan.opGFID {
		if isCreate(plan.entries[i].Op) {
			lastOp[g] = i + 1
		}
	}
	s := &dataShipper{w: w, out: out, smallMax: w.cfg.SmallFileSize,
		sizeOf: make(map[gfid.GFID]int64, len(plan.data)), launchedData: map[gfid.GFID]bool{}, writtenWhole: map[gfid.GFID]bool{}}
	if a, ok := w.slave.(aclWriter); w.cfg.SyncACLs && (!ok || !a.writesACL()) {
		s.smallMax = 0 // a slave that cannot clear an ACL: rsync -A ships them all
	}
	if w.cfg.SyncACLs && w.fresh && w.freshGen == w.sessionGen && w.sessionOpen() {
		s.fresh = map[gfid.GFID]bool{}
		for i, e := range plan.entries {
			if e.Op == ops.OpCreate {
				s.fresh[plan.opGFID[i]] = true
			}
		}
	}
	for _, g := range plan.data {
		n, ok := snap.Lookup(g)
		if !ok || n.Type != catalog.TypeReg {
			continue
		}
		p, ok := snap.Path(g)
		if !ok {
			continue
		}
		s.queue = append(s.queue, pendingData{syncer.Item{GFID: g, Path: p}, n.Size, lastOp[g]})
		s.sizeOf[g] = n.Size
		out.bytes += n.Size
	}
	slices.SortStableFunc(s.queue, func(a, b pendingData) int { return a.ready - b.ready })
	s.results = make(chan map[gfid.GFID]error, len(s.queue)+1)
	s.writers = make(chan struct{}, max(1, w.cfg.SyncJobs))
	s.readers = make(chan struct{}, max(1, w.cfg.SyncJobs))
	s.streams = make(chan struct{}, max(1, w.cfg.SyncJobs))
	s.largeMin, s.canStream = w.streams()
	s.prog = &progress{start: time.Now(), entriesTotal: int64(len(plan.entries)), filesTotal: int64(len(s.queue)), bytesTotal: out.bytes}
	return s
}

// launch ships the files ready once applied entry ops are: those whose ops
// failed are skipped, those whose ops are being resolved wait (a purge may
// replace the inode they would be written to).
func (s *dataShipper) launch(ctx context.Context, applied int) {
	w, out := s.w, s.out
	var items []syncer.Item
	var small smallBatcher
	mark := int64(-1)
	if w.brick != nil && len(s.queue) > 0 && s.queue[0].ready <= applied {
		// Before any of this data is read (brick_reads.go).
		mark = w.brick.marks.observe(w.brick.currentChangelog())
		if out.dataRead == nil {
			out.dataRead = map[gfid.GFID]int64{}
		}
	}
	for ; len(s.queue) > 0 && s.queue[0].ready <= applied; s.queue = s.queue[1:] {
		q := s.queue[0]
		if _, bad := out.failed[q.item.GFID]; bad {
			continue
		}
		if out.resolving[q.item.GFID] {
			s.deferred = append(s.deferred, q)
			continue
		}
		s.launchedData[q.item.GFID] = true
		if out.dataRead != nil {
			out.dataRead[q.item.GFID] = mark
		}
		s.files++
		if s.smallMax > 0 && q.size <= s.smallMax {
			small.add(q.item, q.size, w.batch)
			s.smallFiles++
			continue
		}
		if s.canStream && q.ready > 0 && q.size > s.largeMin {
			// Created by this changelog: empty on the slave, unless a
			// replay finds it written (the slave says so, and rsync
			// ships it).
			s.launched++
			go func() {
				r := w.shipLarge(ctx, q.item, s.streams, func(g gfid.GFID) {
					s.streamed.Add(1)
					s.wroteWhole(g)
				})
				s.prog.files.Add(1)
				w.shipped(s.prog, []syncer.Item{q.item}, r, s.sizeOf)
				s.results <- r
			}()
			continue
		}
		items = append(items, q.item)
	}
	if len(items) > 0 {
		s.launched++
		go func() {
			r := w.data.Sync(ctx, items)
			s.prog.files.Add(int64(len(items)))
			w.shipped(s.prog, items, r, s.sizeOf)
			s.results <- r
		}()
	}
	for _, b := range small.done() {
		s.launched++
		go func() {
			r := w.writeSmall(ctx, b, s.smallMax, s.readers, s.writers, s.fresh, s.wroteWhole)
			s.prog.files.Add(int64(len(b)))
			w.shipped(s.prog, b, r, s.sizeOf)
			s.results <- r
		}()
	}
}

// wroteWhole records that g was shipped with its metadata (WriteFiles,
// WriteFile).
func (s *dataShipper) wroteWhole(g gfid.GFID) {
	s.writtenMu.Lock()
	s.writtenWhole[g] = true
	s.writtenMu.Unlock()
}

// resolved is called once the resolution rounds are over, with the number
// of entry ops: the data that waited for them goes, and data already
// written to an inode the rounds purged goes again at the next pass.
func (s *dataShipper) resolved(ctx context.Context, entries int) {
	s.queue, s.out.resolving = append(s.deferred, s.queue...), nil
	for g := range s.out.purged {
		if s.launchedData[g] {
			s.out.failData(g, "the slave's inode was replaced while its entry conflicts were resolved; shipped again", cause{kind: kindData})
		}
	}
	s.launch(ctx, entries)
}

// collect waits for every call launched and records the files they failed.
func (s *dataShipper) collect() {
	for ; s.launched > 0; s.launched-- {
		reasons := map[string]int{}
		for g, err := range <-s.results {
			s.out.failData(g, err.Error(), dataCause(err))
			reasons[err.Error()]++
		}
		for why, n := range reasons {
			s.w.log.Warn("data not shipped", "files", n, "err", why)
		}
	}
}
