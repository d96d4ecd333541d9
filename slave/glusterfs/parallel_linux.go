package glusterfs

import (
	"context"
	"errors"
	"slices"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
	"github.com/georep/georep/slave/apply"
)

// parallelOps is how many operations of one call run at once where they
// cannot depend on each other. Each is a few round trips through FUSE to
// the bricks, which wait far longer than they compute: serial, an initial
// sync of small files ran at a few hundred operations a second.
const parallelOps = 8

// rlock is lock for operations that may run side by side: ones on distinct
// gfids that change no names other operations of the call look up.
func (v *Volume) rlock() error {
	v.mu.RLock()
	if v.closed {
		v.mu.RUnlock()
		return apply.Errorf(unix.EBADF, "slave volume is closed")
	}
	return nil
}

// applyParallel applies operations i in lo..hi-1 side by side, at most
// parallelOps at a time, each under rlock, and returns their failures in
// index order. The caller guarantees they are independent.
func (v *Volume) applyParallel(ctx context.Context, lo, hi int, do func(i int) error, what func(i int) string) []ops.Failure {
	var (
		mu    sync.Mutex
		fails []ops.Failure
		wg    sync.WaitGroup
	)
	next := make(chan int)
	for range min(parallelOps, hi-lo) {
		wg.Go(func() {
			for i := range next {
				var err error
				if cerr := ctx.Err(); cerr != nil {
					err = apply.Errorf(unix.ECANCELED, "not applied: %v", cerr)
				} else if err = v.rlock(); err == nil {
					err = do(i)
					v.mu.RUnlock()
				}
				if err != nil {
					f := v.failure(i, err, what)
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
func (v *Volume) failure(i int, err error, what func(i int) string) ops.Failure {
	f := ops.Failure{Index: i, Errno: apply.ErrnoOf(err), Message: what(i) + ": " + err.Error()}
	var oe *apply.Error
	if errors.As(err, &oe) {
		f.Existing = oe.Existing
	}
	v.log.Debug("slave volume op failed", "index", i, "errno", int(f.Errno), "err", f.Message)
	return f
}

// distinct reports whether the n keys are all different.
func distinct(n int, key func(i int) gfid.GFID) bool {
	seen := make(map[gfid.GFID]bool, n)
	for i := range n {
		k := key(i)
		if seen[k] {
			return false
		}
		seen[k] = true
	}
	return true
}

// independentRuns splits entries into runs: a run of two or more creates of
// non-directories (CREATE, MKNOD, SYMLINK) with distinct gfids and distinct
// names may be applied side by side (none looks up what another makes);
// anything else is a run of one, applied in order.
func independentRuns(entries []ops.Entry) [][2]int {
	var runs [][2]int
	for i := 0; i < len(entries); {
		j := i
		gfids := map[gfid.GFID]bool{}
		names := map[[2]string]bool{}
		for j < len(entries) {
			e := entries[j]
			key := [2]string{e.Parent.String(), e.Name}
			if (e.Op != ops.OpCreate && e.Op != ops.OpMknod && e.Op != ops.OpSymlink) || gfids[e.GFID] || names[key] {
				break
			}
			gfids[e.GFID], names[key] = true, true
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
