package apply

import (
	"context"
	"errors"
	"slices"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// batch is one call's operations: do applies operation i, what names it for
// the failure message.
type batch struct {
	do   func(i int) error
	what func(i int) string
}

// begin and end bracket one call for a Batcher backend.
func (en *Engine) begin() {
	if bb, ok := en.b.(Batcher); ok && en.lock() == nil {
		bb.BeginBatch()
		en.mu.Unlock()
	}
}

func (en *Engine) end() {
	if bb, ok := en.b.(Batcher); ok && en.lock() == nil {
		bb.EndBatch()
		en.mu.Unlock()
	}
}

// serial applies operations lo..hi-1 in order, each under the exclusive
// lock. A failed operation does not stop the rest; when ctx is done, the
// rest fail with ECANCELED.
func (en *Engine) serial(ctx context.Context, lo, hi int, b batch) []ops.Failure {
	var fails []ops.Failure
	for i := lo; i < hi; i++ {
		var err error
		if cerr := ctx.Err(); cerr != nil {
			err = Errorf(unix.ECANCELED, "not applied: %v", cerr)
		} else if err = en.lock(); err == nil {
			err = b.do(i)
			en.mu.Unlock()
		}
		if err != nil {
			fails = append(fails, en.failure(i, err, b))
		}
	}
	return fails
}

// parallel applies operations lo..hi-1, which the caller guarantees are
// independent, side by side: at most Config.Workers at a time, each under
// the shared lock. Failures come back in index order.
func (en *Engine) parallel(ctx context.Context, lo, hi int, b batch) []ops.Failure {
	var (
		mu    sync.Mutex
		fails []ops.Failure
		wg    sync.WaitGroup
	)
	next := make(chan int)
	for range min(en.cfg.Workers, hi-lo) {
		wg.Go(func() {
			for i := range next {
				var err error
				if cerr := ctx.Err(); cerr != nil {
					err = Errorf(unix.ECANCELED, "not applied: %v", cerr)
				} else if err = en.rlock(); err == nil {
					err = b.do(i)
					en.mu.RUnlock()
				}
				if err != nil {
					f := en.failure(i, err, b)
					mu.Lock()
					fails = append(fails, f)
					mu.Unlock()
				}
			}
		})
	}
	for i := lo; i < hi; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	slices.SortFunc(fails, func(a, b ops.Failure) int { return a.Index - b.Index })
	return fails
}

// failure describes the failed operation i.
func (en *Engine) failure(i int, err error, b batch) ops.Failure {
	f := ops.Failure{Index: i, Errno: ErrnoOf(err), Message: b.what(i) + ": " + err.Error()}
	var oe *Error
	if errors.As(err, &oe) {
		f.Existing = oe.Existing
	}
	en.log.Debug("replica op failed", "index", i, "errno", int(f.Errno), "err", f.Message)
	return f
}

// perInode applies n operations on one inode each: side by side when the
// inodes are distinct (there is no order to keep), else in order.
func (en *Engine) perInode(ctx context.Context, n int, key func(i int) gfid.GFID, b batch) []ops.Failure {
	en.begin()
	defer en.end()
	seen := make(map[gfid.GFID]bool, n)
	for i := range n {
		if seen[key(i)] {
			return en.serial(ctx, 0, n, b)
		}
		seen[key(i)] = true
	}
	return en.parallel(ctx, 0, n, b)
}

// IndependentRuns splits entries into runs [lo, hi): a run of two or more
// creates of non-directories (CREATE, MKNOD, SYMLINK) with distinct gfids
// and distinct names, none in a parent another creates, may be applied side
// by side (none looks up what another makes); anything else is a run of
// one, applied in order.
func IndependentRuns(entries []ops.Entry) [][2]int {
	var runs [][2]int
	for i := 0; i < len(entries); {
		j := i
		gfids := map[gfid.GFID]bool{}
		names := map[[2]string]bool{}
		parents := map[gfid.GFID]bool{}
		for j < len(entries) {
			e := entries[j]
			key := [2]string{e.Parent.String(), e.Name}
			if (e.Op != ops.OpCreate && e.Op != ops.OpMknod && e.Op != ops.OpSymlink) || gfids[e.GFID] || gfids[e.Parent] || parents[e.GFID] || names[key] {
				break
			}
			gfids[e.GFID], names[key], parents[e.Parent] = true, true, true
			j++
		}
		if j-i < 2 {
			j = i + 1
		}
		runs = append(runs, [2]int{i, j})
		i = j
	}
	return runs
}
