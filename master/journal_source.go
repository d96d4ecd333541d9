package master

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/master/journal"
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

// journalSource is the change source of a plain directory: the records
// of its fanotify journal. The journal exists only while the master runs,
// so it has no history to replay: the first pass is a hybrid crawl, and a
// lost event stream (queue overflow, a journal error, a directory the
// journal cannot place) sends the worker back to one, so nothing is missed.
type journalSource struct {
	w       *worker
	lj      *liveJournal
	nextCur journal.Cursor // the cursor past the batch last returned
}

func (w *worker) journalSource(lj *liveJournal) *journalSource { return &journalSource{w: w, lj: lj} }

func (s *journalSource) open(ctx context.Context) (bool, error) {
	if st, err := s.w.wd.loadStime(); err == nil && !st.Data.IsZero() {
		s.w.log.Info("history crawl not possible: the change journal starts with this run; a hybrid crawl covers the time since stime",
			"stime", st.Data.Format(time.RFC3339Nano), "journal_start", s.lj.started.Format(time.RFC3339Nano))
	}
	return s.w.needFull, nil // a new worker needs a hybrid crawl
}

// check restarts the producer when it stopped; a journal that cannot
// restart gives way to the periodic crawl.
func (s *journalSource) check(ctx context.Context) error {
	err := s.lj.stopped()
	if err == nil || ctx.Err() != nil {
		return nil
	}
	s.w.log.Error("change journal stopped; restarting it, then a hybrid crawl", "err", err)
	s.lj.prod.Close()
	if err := s.lj.start(ctx, s.w.wd.dir); err != nil {
		s.w.log.Error("cannot restart the change journal: falling back to a hybrid crawl every change-interval", "err", err)
		return err
	}
	return errNeedFull
}

// beforeFull skips the records written so far: the crawl covers them.
func (s *journalSource) beforeFull() error { return s.lj.skipToEnd() }

func (s *journalSource) fullDone(time.Time) {}

func (s *journalSource) next(context.Context) (changes, error) {
	recs, next, err := s.lj.read(s.w.cfg.ChangelogBatchSize)
	if err != nil {
		s.w.log.Error("reading the change journal failed; crawling the whole tree", "err", err)
		return changes{}, fmt.Errorf("%w: %v", errNeedFull, err)
	}
	s.nextCur = next
	return changes{empty: len(recs) == 0, gather: func(ds *dirSet) error { return s.w.journalDirs(ds, s.lj, recs) }}, nil
}

// wait waits for the journal's signal, then settleTime for the rest of
// the burst.
func (s *journalSource) wait(ctx context.Context, wake <-chan struct{}) {
	timer := time.NewTimer(s.w.changeInterval())
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-wake:
	case <-s.lj.prod.Notify():
		time.Sleep(settleTime)
	case <-s.lj.prod.Done():
	case <-timer.C:
	}
}

func (s *journalSource) consumed() { s.lj.consumed(s.nextCur) }

func (s *journalSource) lost(reason error) {
	s.w.log.Info("the change journal cannot place every change; crawling the whole tree", "reason", reason)
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
