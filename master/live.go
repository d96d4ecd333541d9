package master

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/master/crawl"
	"github.com/georep/georep/master/journal"
	"github.com/georep/georep/rpc/backoff"
	"github.com/georep/georep/rpc/beneath"
)

// settleTime is how long a live pass waits after the journal's first
// signal, so that the two halves of a rename (reported as two events) and
// the rest of a burst land in the same pass.
const settleTime = 15 * time.Millisecond

// liveJournal is the master's side of the change journal: the producer
// (fanotify), the resolver of its directory handles, and the cursor up to
// which the slave has been brought.
type liveJournal struct {
	cfg      Config
	dir      string
	log      *slog.Logger
	prod     *journal.Producer
	resolver *journal.Resolver
	cur      journal.Cursor
	started  time.Time
}

func startJournal(ctx context.Context, cfg Config, wd *workDir, log *slog.Logger) (*liveJournal, error) {
	lj := &liveJournal{cfg: cfg, dir: wd.path("journal"), log: log}
	if err := lj.start(ctx, wd.dir); err != nil {
		return nil, err
	}
	r, err := journal.NewResolver(cfg.Source)
	if err != nil {
		lj.prod.Close()
		return nil, fmt.Errorf("change journal: %w", err)
	}
	lj.resolver = r
	return lj, nil
}

func (lj *liveJournal) start(ctx context.Context, workDir string) error {
	p, err := journal.Start(ctx, journal.Config{Source: lj.cfg.Source, Dir: lj.dir, Rollover: lj.cfg.RolloverTime,
		Exclude: []string{workDir}, Log: lj.log})
	if err != nil {
		return err
	}
	lj.prod, lj.started = p, time.Now()
	lj.cur = journal.Cursor{Gen: p.Generation(), Seq: 1}
	if err := journal.Prune(lj.dir, lj.cur); err != nil {
		lj.log.Warn("pruning old journal generations", "err", err)
	}
	lj.log.Info("change journal started: every change is replicated as it happens", "journal", lj.dir, "generation", p.Generation(), "rollover_time", lj.cfg.RolloverTime)
	return nil
}

func (lj *liveJournal) close() {
	if err := lj.prod.Close(); err != nil {
		lj.log.Warn("change journal", "err", err)
	}
	lj.resolver.Close()
}

// stopped returns why the producer stopped, nil while it runs.
func (lj *liveJournal) stopped() error {
	select {
	case <-lj.prod.Done():
		if err := lj.prod.Err(); err != nil {
			return err
		}
		return errors.New("the change journal stopped")
	default:
		return nil
	}
}

// read returns the next records after the cursor (at most max).
func (lj *liveJournal) read(max int) ([]journal.Record, journal.Cursor, error) {
	return journal.Read(lj.dir, lj.cur, max)
}

// consumed moves the cursor past records the slave now reflects.
func (lj *liveJournal) consumed(next journal.Cursor) {
	rolled := next.Seq != lj.cur.Seq
	lj.cur = next
	if rolled {
		if err := journal.Prune(lj.dir, lj.cur); err != nil {
			lj.log.Warn("pruning consumed journal files", "err", err)
		}
	}
}

// skipToEnd moves the cursor past every record written so far: a hybrid
// crawl that starts now covers them.
func (lj *liveJournal) skipToEnd() error {
	for {
		recs, next, err := journal.Read(lj.dir, lj.cur, 100000)
		if err != nil {
			return fmt.Errorf("change journal: %w", err)
		}
		lj.consumed(next)
		if len(recs) == 0 {
			return nil
		}
	}
}

// live is the daemon with a change journal: gsyncd's crawl chaining. A
// hybrid crawl first (there is no history to replay: the journal of a plain
// directory exists only while the master runs, so it never covers the time
// since stime), then a live pass for every batch of journal records. A lost
// event stream (queue overflow, a journal error, a directory the journal
// cannot place) sends it back to a hybrid crawl, so nothing is missed.
func (w *worker) live(ctx context.Context, lj *liveJournal) error {
	if st, err := w.wd.loadStime(); err == nil && !st.Data.IsZero() {
		w.log.Info("history crawl not possible: the change journal starts with this run; a hybrid crawl covers the time since stime",
			"stime", st.Data.Format(time.RFC3339Nano), "journal_start", lj.started.Format(time.RFC3339Nano))
	}
	bo := backoff.Backoff{Initial: time.Second, Max: time.Minute}
	lastRetry := time.Now()
	timer := time.NewTimer(w.changeInterval())
	defer timer.Stop()
	for ctx.Err() == nil {
		if err := lj.stopped(); err != nil && ctx.Err() == nil {
			w.log.Error("change journal stopped; restarting it, then a hybrid crawl", "err", err)
			lj.prod.Close()
			if err := lj.start(ctx, w.wd.dir); err != nil {
				w.log.Error("cannot restart the change journal: falling back to a hybrid crawl every change-interval", "err", err)
				return w.daemon(ctx)
			}
			w.needFull = true
		}
		var err error
		if w.needFull {
			if err = lj.skipToEnd(); err == nil {
				_, err = w.pass(ctx)
				lastRetry = time.Now()
				var partial *partialError
				if err == nil || errors.As(err, &partial) {
					w.needFull = false
				}
			}
		} else {
			retryNow := w.retryNow.Swap(false)
			retry := (w.failures.len() > 0 || len(w.staleData) > 0) && (retryNow || time.Since(lastRetry) >= w.changeInterval())
			var recs []journal.Record
			var next journal.Cursor
			recs, next, err = lj.read(w.cfg.ChangelogBatchSize)
			if err == nil && len(recs) == 0 && !retry && !w.tick.Swap(false) {
				timer.Reset(w.changeInterval())
				select {
				case <-ctx.Done():
				case <-w.wake:
				case <-lj.prod.Notify():
					time.Sleep(settleTime)
				case <-lj.prod.Done():
				case <-timer.C:
				}
				continue
			}
			if err != nil {
				w.log.Error("reading the change journal failed; crawling the whole tree", "err", err)
				w.needFull = true
				continue
			}
			err = w.livePass(ctx, lj, recs, retry)
			if retry {
				lastRetry = time.Now()
			}
			var partial *partialError
			switch {
			case err == nil || errors.As(err, &partial):
				lj.consumed(next)
			case errors.Is(err, errNeedFull):
				w.log.Info("the change journal cannot place every change; crawling the whole tree", "reason", err)
				w.needFull, err = true, nil
			}
		}
		if ctx.Err() == nil {
			w.passResult(err)
		}
		w.backoffAfter(ctx, err, &bo)
	}
	return nil
}

// backoffAfter waits after a failed pass, saying why: 1 s, doubling to
// 1 min; a pass that ran (even one that left failures in the queue) resets
// the wait and does not wait.
func (w *worker) backoffAfter(ctx context.Context, err error, bo *backoff.Backoff) {
	var partial *partialError
	if err == nil || errors.As(err, &partial) {
		bo.Reset()
		return
	}
	if ctx.Err() != nil {
		return
	}
	w.log.Warn("pass failed; retrying", "err", err, "retry_in", bo.Current())
	bo.Wait(ctx, w.wake) // woken: the operator changed something (max-delete, a retry)
}

// livePass re-examines the names the journal reported (and, with retry,
// those of the failure queue) and brings the slave up to date with them.
func (w *worker) livePass(ctx context.Context, lj *liveJournal, recs []journal.Record, retry bool) error {
	return w.scopedPass(ctx, retry, time.Time{}, func(ds *dirSet) error { return w.journalDirs(ds, lj, recs) })
}

// scopedPass runs one changelog crawl: gather names the directories and
// names to re-examine, the failure queue's are added with retry, and the
// slave is brought up to date with them. stime then advances to stimeAt,
// or to the start of the pass when stimeAt is zero.
func (w *worker) scopedPass(ctx context.Context, retry bool, stimeAt time.Time, gather func(*dirSet) error) (err error) {
	defer w.passDone(&err)
	if err := w.guardSource(); err != nil {
		return err
	}
	if err := w.connect(ctx); err != nil {
		return err
	}
	if w.needFull {
		return errNeedFull
	}
	start := time.Now()
	if stimeAt.IsZero() {
		stimeAt = start
	}
	w.stats.CrawlStatus = "Changelog"
	ds := &dirSet{byIno: map[[2]uint64]int{}}
	defer ds.close()
	if err := gather(ds); err != nil {
		return err
	}
	if retry {
		if err := w.failureDirs(ds); err != nil {
			return err
		}
	}
	w.staleDirs(ds)
	dirs := ds.sorted()
	res, err := crawl.Scoped(ctx, w.crawlConfig(), w.cat, dirs, w.log)
	ds.close()
	if err != nil {
		if errors.Is(err, crawl.ErrIncomplete) {
			return fmt.Errorf("%w: %v", errNeedFull, err)
		}
		return fmt.Errorf("changelog crawl: %w", err)
	}
	if res.Changelog == "" {
		if err := w.settle(nil, retry); err != nil {
			return err
		}
		return w.advance(ctx, stimeAt)
	}
	if err := w.apply(ctx, res, retry); err != nil {
		if w.drifted() {
			// The replica was changed behind georep's back where these
			// ops went: a hybrid crawl's verify finds and repairs it.
			w.log.Warn("the slave's replica was changed behind georep's back; a hybrid crawl verifies and repairs it", "err", err)
			w.needFull = true
		}
		return err
	}
	w.log.Debug("live pass", "dirs", len(dirs), "entries", res.Stats.Entries, "data", res.Stats.Data,
		"meta", res.Stats.Meta, "took", time.Since(start))
	return w.advance(ctx, stimeAt)
}

// dirSet gathers the directories of one changelog crawl, each opened
// once, with the names to re-examine in each.
type dirSet struct {
	fds   []int
	byIno map[[2]uint64]int // (dev, ino) → index in dirs: a handle and a path may name one directory
	dirs  []crawl.Dir
}

// add takes fd (closing it when the directory is already in the set) and
// returns the directory's index.
func (s *dirSet) add(fd int, rel string) (int, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if i, ok := s.byIno[[2]uint64{st.Dev, st.Ino}]; ok {
		unix.Close(fd)
		return i, nil
	}
	s.fds = append(s.fds, fd)
	s.dirs = append(s.dirs, crawl.Dir{Fd: fd, Rel: rel, Names: map[string]bool{}})
	s.byIno[[2]uint64{st.Dev, st.Ino}] = len(s.dirs) - 1
	return len(s.dirs) - 1, nil
}

// mark records name in directory i, data saying its content was written.
func (s *dirSet) mark(i int, name string, data bool) {
	s.dirs[i].Names[name] = s.dirs[i].Names[name] || data
}

// sorted returns the directories, shallowest first.
func (s *dirSet) sorted() []crawl.Dir {
	slices.SortFunc(s.dirs, func(a, b crawl.Dir) int { return len(a.Rel) - len(b.Rel) })
	return s.dirs
}

func (s *dirSet) close() {
	for _, fd := range s.fds {
		unix.Close(fd)
	}
	s.fds = nil
}

// journalDirs opens the directories the records name and gathers the names
// to re-examine in each.
func (w *worker) journalDirs(ds *dirSet, lj *liveJournal, recs []journal.Record) error {
	byKey := map[string]int{} // handle → index in dirs
	for _, r := range recs {
		if r.Kind == journal.Overflow {
			return fmt.Errorf("%w: the kernel's event queue overflowed", errNeedFull)
		}
		k := r.Dir.String()
		i, ok := byKey[k]
		if !ok {
			fd, rel, err := lj.resolver.Open(r.Dir)
			switch {
			case errors.Is(err, journal.ErrStale), errors.Is(err, journal.ErrOutside):
				byKey[k] = -1 // its removal or move is reported in its parent
				continue
			case err != nil:
				return fmt.Errorf("change journal: %w", err)
			}
			if i, err = ds.add(fd, rel); err != nil {
				if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESTALE) {
					byKey[k] = -1
					continue
				}
				return fmt.Errorf("change journal: %w", err)
			}
			byKey[k] = i
		}
		if i < 0 {
			continue
		}
		ds.mark(i, r.Name, r.Kind == journal.Data)
	}
	return nil
}

// failureDirs adds the places of the failure queue's entries.
func (w *worker) failureDirs(ds *dirSet) error {
	for _, f := range w.failures.list() {
		if f.Dir == "" {
			return fmt.Errorf("%w: failure queue holds %s without a place", errNeedFull, f.GFID)
		}
		fd, err := beneath.OpenDir(w.cfg.Source, f.Dir)
		if err != nil {
			return fmt.Errorf("%w: failure queue: directory %q: %v", errNeedFull, f.Dir, err)
		}
		i, err := ds.add(fd, f.Dir)
		if err != nil {
			return fmt.Errorf("%w: failure queue: directory %q: %v", errNeedFull, f.Dir, err)
		}
		ds.mark(i, f.Name, f.Data)
	}
	return nil
}
