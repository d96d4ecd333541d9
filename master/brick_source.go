package master

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/georep/georep/master/changelog"
	"github.com/georep/georep/master/glusterfs"
)

// brickSource is the change source of a brick worker, gsyncd's crawl
// chaining: history from stime through the brick's changelogs when they
// cover it, else a hybrid crawl; then the changelogs as they roll over, and
// the records of the one the brick is writing as soon as they are written
// (gsyncd waits for the rollover). A gap (changelog turned off for a while,
// changelogs lost) or a change the changelogs cannot place sends the worker
// back to a hybrid crawl.
type brickSource struct {
	w *worker
	b *brickState
	// The batch last returned by next: the rolled changelogs taken, the
	// epoch of the last, what was read of the current one; idleTo, when
	// nothing is pending, the last rollover (zero: none to follow).
	files  []string
	epoch  time.Time
	cur    *currentRead
	idleTo time.Time
}

func (w *worker) brickSource() *brickSource { return &brickSource{w: w, b: w.brick} }

// open opens the session (the slave's volume id, part of the brick's stime
// key, is known once it is open) and decides where to start (chainStart).
func (s *brickSource) open(ctx context.Context) (bool, error) {
	s.w.needFull = true
	if err := s.w.connect(ctx); err != nil {
		return true, err
	}
	return !s.w.chainStart(), nil
}

func (s *brickSource) check(context.Context) error { return nil }

func (s *brickSource) beforeFull() error { return nil }

// fullDone: the changelogs rolled over after the crawl started hold
// everything it may have missed.
func (s *brickSource) fullDone(start time.Time) { s.b.startAt(start) }

func (s *brickSource) next(ctx context.Context) (changes, error) {
	w, b := s.w, s.b
	// The last rollover, read before the listing: when nothing is
	// pending, every change up to it is applied, even if no changelog was
	// written since (an idle volume's rollovers are empty and leave no
	// file), so stime can follow it.
	lastRoll, _, rollErr := glusterfs.LastRollover(b.path)
	// A changelog replaced by another of the same second lost its
	// records: the changelogs no longer tell everything that changed.
	if ep, lost, err := b.replacedChangelog(); err != nil {
		w.log.Error("reading the brick's changelog index failed; crawling the whole brick", "err", err)
		return changes{}, fmt.Errorf("%w: %v", errNeedFull, err)
	} else if lost {
		w.log.Warn("a brick changelog was replaced by another rolled over in the same second, and its records with it; crawling the whole brick",
			"changelog", fmt.Sprintf("CHANGELOG.%d", ep))
		return changes{}, fmt.Errorf("%w: changelog CHANGELOG.%d replaced by a later rollover of the same second", errNeedFull, ep)
	}
	files, err := b.pending()
	if err != nil {
		w.log.Error("reading the brick's changelogs failed; crawling the whole brick", "err", err)
		return changes{}, fmt.Errorf("%w: %v", errNeedFull, err)
	}
	files, counts, recs, epoch, perr := w.readBrickChangelogs(files)
	var cur *currentRead
	if perr == nil && len(recs) < w.cfg.ChangelogBatchSize {
		cur, perr = b.readCurrent()
	}
	if perr != nil {
		// A malformed changelog: say which, and crawl the brick instead
		// (nothing is skipped); the crawl moves past it.
		w.log.Error("brick changelog unreadable; crawling the whole brick instead", "err", perr)
		return changes{}, fmt.Errorf("%w: %v", errNeedFull, perr)
	}
	if cur != nil {
		recs = append(recs, cur.recs...)
	}
	force, err := b.marks.forced(files, counts, recs)
	if err != nil {
		return changes{}, err
	}
	if w.log.Enabled(ctx, slog.LevelDebug) {
		for _, f := range files {
			w.log.Debug("brick changelog taken", "changelog", filepath.Base(f))
		}
		if cur != nil {
			w.log.Debug("brick current changelog read", "ino", cur.ino, "records", cur.n, "new", len(cur.recs), "applied_ino", b.curIno, "applied", b.curRecs)
		}
		logRecords(ctx, w.log, "brick record", "", recs)
	}
	idleTo := time.Time{}
	if len(files) == 0 && (cur == nil || len(cur.recs) == 0) && rollErr == nil && lastRoll.After(b.lastEpoch) {
		idleTo = lastRoll
	}
	if len(files) == 0 {
		epoch = b.lastEpoch // the current changelog, or the failure queue, only
		if idleTo.After(epoch) {
			epoch = idleTo
		}
	}
	s.files, s.epoch, s.cur, s.idleTo = files, epoch, cur, idleTo
	// stime: everything before the batch's last second is applied
	// (another changelog of that second may roll over later).
	return changes{empty: len(recs) == 0, stimeAt: epoch.Add(-time.Second),
		gather: func(ds *dirSet) error { return w.brickDirs(ds, recs, force) }}, nil
}

// wait moves stime along the empty rollovers of an idle brick, then waits
// for the current changelog to change. With failures queued, or data left
// to ship again, stime stays where the last pass left it, as it does after
// a pass that leaves them: it may pass only what the slave has.
func (s *brickSource) wait(ctx context.Context, wake <-chan struct{}) {
	if s.idleTo.After(s.b.idleStime) && !s.w.owesSlave() {
		if err := s.w.advance(ctx, s.idleTo.Add(-time.Second)); err != nil {
			s.w.log.Debug("advancing stime while idle", "err", err)
		} else {
			s.b.idleStime = s.idleTo
		}
	}
	s.b.waitChange(ctx, wake, s.w.changeInterval())
}

func (s *brickSource) consumed() {
	if len(s.files) > 0 {
		s.b.applied(s.files, s.epoch)
	}
	s.b.consumed(s.cur)
}

func (s *brickSource) lost(reason error) {
	s.w.log.Info("the changelogs cannot place every change; crawling the whole brick", "reason", reason)
}

// chainStart decides where a brick worker starts: from stime through the
// brick's changelog history when it covers the time since (history),
// else with a hybrid crawl. stime is the later of the work dir's and the
// brick's (a session moved from gsyncd keeps its place), or the replica
// set's as the slave's lease holds it (another node's worker was Active).
func (w *worker) chainStart() (history bool) {
	b := w.brick
	st, _ := w.wd.loadStime()
	bt, ok, err := glusterfs.Stime(b.path, b.volumeID, w.client.slaveVolume())
	switch {
	case err != nil:
		w.log.Warn("reading the brick's stime", "brick", b.path, "err", err)
	case ok && bt.After(st.Data):
		st.Data = bt
	}
	// The replica set's stime, as the slave's lease holds it: where the
	// set's last Active worker, on whichever node, got to.
	if t := w.client.replicaSetStime(); t.After(st.Data) {
		w.log.Info("starting from the replica set's stime recorded on the slave", "stime", t.Format(time.RFC3339Nano))
		st.Data = t
	}
	if st.Data.IsZero() {
		w.log.Info("no stime: a hybrid crawl of the brick starts the session", "brick", b.path)
		return false
	}
	if _, err := glusterfs.History(b.path, st.Data, time.Now()); err != nil {
		w.log.Info("history crawl not possible: a hybrid crawl covers the time since stime", "stime", st.Data.Format(time.RFC3339), "reason", err)
		return false
	}
	w.log.Info("history crawl from stime through the brick's changelogs", "stime", st.Data.Format(time.RFC3339))
	b.startAt(st.Data)
	return true
}

// readBrickChangelogs parses changelogs in order until changelog-batch-size
// records are gathered. It returns the files taken, how many records each
// holds, their records and the epoch of the last one.
func (w *worker) readBrickChangelogs(files []string) (taken []string, counts []int, recs []changelog.Record, epoch time.Time, err error) {
	for _, p := range files {
		if len(taken) > 0 && len(recs) >= w.cfg.ChangelogBatchSize {
			break
		}
		e, err := glusterfs.ChangelogEpoch(p)
		if err != nil {
			return nil, nil, nil, time.Time{}, err
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, nil, nil, time.Time{}, fmt.Errorf("open brick changelog: %w", err)
		}
		rs, err := changelog.ParseBrick(f, p)
		f.Close()
		if err != nil {
			return nil, nil, nil, time.Time{}, err
		}
		// Records applied while it was the current changelog are
		// applied again, now that the brick is done with them: the brick
		// records an entry op as it starts it, and a file's data once per
		// changelog however often it is written, so what an early read
		// saw may not be the end of it.
		recs, taken, counts, epoch = append(recs, rs...), append(taken, p), append(counts, len(rs)), e
	}
	return taken, counts, recs, epoch, nil
}
