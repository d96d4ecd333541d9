package master

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/master/crawl"
	"github.com/georep/georep/rpc/beneath"
)

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
