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

// RenameFacts is what the engine learnt of a RENAME before scheduling it,
// for IndependentEntryRuns.
type RenameFacts struct {
	// Known is set when both facts below are certain; a RENAME not Known
	// is a run of one.
	Known bool
	// Dir is set when the gfid renamed is a directory (a run of one: two
	// directory renames side by side could each pass the other's loop
	// check).
	Dir bool
	// Replaces is the gfid the new name holds now, which the rename
	// replaces (zero: none).
	Replaces gfid.GFID
}

// IndependentEntryRuns splits entries into runs [lo, hi) whose entries,
// of any op, may be applied side by side: each run gives the same tree and
// the same failures in any order. An entry joins the run when it shares
// with the run's others no name (old or new), no gfid (its own, or the one
// a RENAME replaces), and neither its gfid nor its parents (old or new) are
// a gfid or a parent of another. A RENAME of a directory, or one whose
// facts are not Known (rename(i) says them), is a run of one. (The
// directories an entry names are reached by gfid, so moving one elsewhere
// in the tree does not change what another entry does in it.)
func IndependentEntryRuns(entries []ops.Entry, rename func(i int) RenameFacts) [][2]int {
	var runs [][2]int
	for i := 0; i < len(entries); {
		j := i
		gfids := map[gfid.GFID]bool{}
		names := map[nameKey]bool{}
		parents := map[gfid.GFID]bool{}
		for j < len(entries) {
			e := entries[j]
			own := []gfid.GFID{e.GFID}
			ps := []gfid.GFID{e.Parent}
			ns := []nameKey{{e.Parent, e.Name}}
			if e.Op == ops.OpRename {
				f := rename(j)
				if !f.Known || f.Dir {
					break
				}
				if !f.Replaces.IsZero() {
					own = append(own, f.Replaces)
				}
				ps = append(ps, e.NewParent)
				ns = append(ns, nameKey{e.NewParent, e.NewName})
			}
			if conflicts(own, ps, ns, gfids, parents, names) {
				break
			}
			for _, g := range own {
				gfids[g] = true
			}
			for _, p := range ps {
				parents[p] = true
			}
			for _, n := range ns {
				names[n] = true
			}
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

// nameKey is a name in a directory.
type nameKey struct {
	parent gfid.GFID
	name   string
}

// conflicts reports whether an entry touching gfids own, in directories ps,
// at names ns, depends on a run that touched gfids, parents and names.
func conflicts(own, ps []gfid.GFID, ns []nameKey, gfids, parents map[gfid.GFID]bool, names map[nameKey]bool) bool {
	for _, g := range own {
		if gfids[g] || parents[g] || slices.Contains(ps, g) {
			return true
		}
	}
	for _, p := range ps {
		if gfids[p] {
			return true
		}
	}
	for _, n := range ns {
		if names[n] {
			return true
		}
	}
	return len(ns) == 2 && ns[0] == ns[1]
}

// renameFacts looks at every RENAME of entries (side by side, under the
// shared lock: lookups only) for IndependentEntryRuns: the type of its
// gfid (Locate: a gfid's type never changes; one the volume does not hold
// yet takes the type a create earlier in the batch gives it) and what its
// new name holds, unless an earlier entry of the batch names that name
// (what it holds then is not known now: not Known).
func (en *Engine) renameFacts(ctx context.Context, entries []ops.Entry) []RenameFacts {
	facts := make([]RenameFacts, len(entries))
	made := map[gfid.GFID]ops.FileType{} // created earlier in the batch
	named := map[nameKey]bool{}          // named by an earlier entry
	var todo []int
	var earlier []ops.FileType
	for i, e := range entries {
		if e.Op == ops.OpRename && en.validateEntry(e) == nil && !named[nameKey{e.NewParent, e.NewName}] {
			todo = append(todo, i)
			earlier = append(earlier, made[e.GFID])
		}
		switch e.Op {
		case ops.OpCreate, ops.OpMkdir, ops.OpMknod, ops.OpSymlink:
			if _, ok := made[e.GFID]; !ok {
				made[e.GFID] = e.Type()
			}
		}
		named[nameKey{e.Parent, e.Name}] = true
		if e.Op == ops.OpRename {
			named[nameKey{e.NewParent, e.NewName}] = true
		}
	}
	if len(todo) == 0 {
		return facts
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(en.cfg.Workers, len(todo)) {
		wg.Go(func() {
			for k := range next {
				if ctx.Err() != nil || en.rlock() != nil {
					continue
				}
				facts[todo[k]] = en.renameFact(entries[todo[k]], earlier[k])
				en.mu.RUnlock()
			}
		})
	}
	for k := range todo {
		next <- k
	}
	close(next)
	wg.Wait()
	return facts
}

// renameFact is renameFacts for one RENAME; made is the type a create
// earlier in the batch gives its gfid (0: none). Any error leaves it not
// Known.
func (en *Engine) renameFact(e ops.Entry, made ops.FileType) RenameFacts {
	in, err := en.b.Locate(e.GFID)
	if err != nil {
		return RenameFacts{}
	}
	typ := in.Type
	switch {
	case in.Stale:
		return RenameFacts{}
	case typ == 0:
		typ = made
	case made != 0 && made != typ:
		return RenameFacts{}
	}
	if typ == 0 {
		return RenameFacts{}
	}
	f := RenameFacts{Dir: typ == ops.TypeDir}
	nfd, err := en.b.OpenDir(e.NewParent)
	if err != nil {
		return RenameFacts{}
	}
	defer CloseFd(nfd)
	ni, err := en.b.Lookup(nfd, e.NewName)
	switch {
	case err != nil:
		return RenameFacts{}
	case !ni.Exists:
	case ni.GFID.IsZero():
		return RenameFacts{} // an inode the backend cannot name
	case ni.GFID != e.GFID:
		f.Replaces = ni.GFID
	}
	f.Known = true
	return f
}
