package master

import (
	"context"
	"fmt"
	"strings"

	"github.com/georep/georep/master/crawl"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// emptyPark removes whatever a crashed run of this worker's replica set
// left in the slave's park directory: the names with its park prefix (and,
// when its source is the whole namespace, unprefixed ones an older master
// left); the other sets' workers, on any node, may be in the middle of a
// rename through the park. Those gfids are then missing from their names
// on the slave; verify notices and the next pass recreates them.
func (w *worker) emptyPark(ctx context.Context) (int, error) {
	all, err := w.slave.Entries(ctx, gfid.Park)
	if err != nil {
		return 0, err
	}
	prefix := w.parkPrefix()
	var ents []ops.DirEntry
	for _, e := range all {
		_, perr := gfid.Parse(e.Name)
		if strings.HasPrefix(e.Name, prefix) || (perr == nil && !w.partial) {
			ents = append(ents, e)
		}
	}
	for _, e := range ents {
		if _, err := w.slave.Purge(ctx, gfid.Park, e.Name, gfid.GFID{}); err != nil {
			return 0, err
		}
	}
	if len(ents) > 0 {
		w.log.Info("emptied the slave's park left by an interrupted run", "entries", len(ents))
	}
	return len(ents), nil
}

// verify compares every directory of the catalog with the slave's
// listing, once per session, after a pass committed what it applied:
// names the master does not have are purged (unless ignore-deletes), names
// that hold another inode are purged, and names the slave lacks are
// forgotten in the catalog so that the next pass recreates them. It
// returns how many differences it found. This is what makes the hybrid
// crawl heal a replica damaged, restored or half-written behind the
// catalog's back, and what propagates deletes the catalog never saw.
//
// The slave lists the whole tree in one stream when it can (Walk: one
// round trip, whatever the depth); the directories of the catalog are then
// compared as their listings arrive, parents first, and those of the
// slave's tree that the catalog does not have there are skipped (their
// names are judged in their parents'). Otherwise, and for any directory the
// walk did not list, it walks the catalog depth first with up to
// verifyInFlight Entries calls in flight (a listing starts as soon as one
// ends, a directory's subdirectories as soon as it is listed). Never the
// whole namespace in memory (the catalog, not a crawl's snapshot, is the
// synced state it checks).
//
// A worker whose source holds only part of the namespace (a brick of a
// volume distributed over several bricks) purges nothing: a name it lacks
// may be another brick's.
func (w *worker) verify(ctx context.Context) (int, error) {
	v, err := w.compare(ctx)
	if err != nil {
		return v.found, err
	}
	return v.found, v.finish(ctx)
}

// compare is verify's comparison, without acting on what it found: every
// directory of the catalog against the slave's listing.
func (w *worker) compare(ctx context.Context) (*verifier, error) {
	v := &verifier{w: w}
	stack := []gfid.GFID{gfid.Root}
	if wk, ok := w.slave.(walker); ok {
		left, walked, err := v.walk(ctx, wk)
		if err != nil {
			return v, err
		}
		if walked {
			stack = left
		}
	}
	return v, v.list(ctx, stack)
}

// earlyVerify is verify's comparison run while the first pass of a session
// crawls, instead of after it: on a pass that finds nothing to do, the
// slave's listing and the crawl's walk overlap (ARCHITECTURE.md, "Verify").
// Its verdicts hold only when nothing changed on either side while it ran:
// the pass applied nothing (the first change it emits abandons it) and the
// catalog committed nothing from before it started to after it ended
// (Catalog.Writes). Otherwise verify runs after the pass, as it always
// did.
type earlyVerify struct {
	cancel context.CancelFunc
	done   chan struct{}
	writes uint64 // the catalog's Writes before it started
	v      *verifier
	err    error
}

// startEarlyVerify compares in the background once the session (opening
// beside the crawl) is open.
func (w *worker) startEarlyVerify(ctx context.Context, open *opening) *earlyVerify {
	ctx, cancel := context.WithCancel(ctx)
	e := &earlyVerify{cancel: cancel, done: make(chan struct{}), writes: w.cat.Writes()}
	go func() {
		defer close(e.done)
		select {
		case <-open.done:
		case <-ctx.Done():
			e.err = ctx.Err()
			return
		}
		if open.err != nil {
			e.err = open.err
			return
		}
		e.v, e.err = w.compare(ctx)
	}()
	return e
}

// abandon stops the comparison: the pass is about to change the slave.
func (e *earlyVerify) abandon() {
	if e != nil {
		e.cancel()
	}
}

// stop abandons the comparison and waits for it to end.
func (e *earlyVerify) stop() {
	if e != nil {
		e.cancel()
		<-e.done
	}
}

// take waits for the comparison and returns it when it holds for the pass
// that ran beside it (changed: the pass applied something); nil when
// verify must compare now.
func (e *earlyVerify) take(changed bool, writes func() uint64) *verifier {
	if e == nil {
		return nil
	}
	if changed {
		e.cancel()
	}
	<-e.done
	if changed || e.err != nil || e.v == nil || writes() != e.writes {
		return nil
	}
	return e.v
}

// walker is a slave that lists a whole tree in one stream: the session
// client when the slave has Walk (ok false: it has not).
type walker interface {
	walk(ctx context.Context, dir gfid.GFID, fn func(dir gfid.GFID, ents []ops.DirEntry, err error) error) (ok bool, err error)
}

// walk compares the directories of the catalog as the slave's walk lists
// them and returns those the catalog has that the walk did not list (a
// directory the slave listed once under another name first); walked is
// false when the slave cannot walk.
func (v *verifier) walk(ctx context.Context, wk walker) (left []gfid.GFID, walked bool, err error) {
	expect := map[gfid.GFID]bool{gfid.Root: true} // listed as the catalog has them, not judged yet
	walked, err = wk.walk(ctx, gfid.Root, func(dir gfid.GFID, ents []ops.DirEntry, lerr error) error {
		if !expect[dir] {
			return nil // not the catalog's there: its name is judged in its parent
		}
		delete(expect, dir)
		r := v.judge(dir, ents, lerr)
		if r.err != nil {
			return r.err
		}
		v.add(r)
		for _, g := range r.subdirs {
			expect[g] = true
		}
		return nil
	})
	if err != nil || !walked {
		return nil, walked, err
	}
	for g := range expect {
		left = append(left, g)
	}
	return left, true, nil
}

// list compares the directories of stack and everything beneath them,
// listing up to verifyInFlight of them at a time.
func (v *verifier) list(ctx context.Context, stack []gfid.GFID) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan dirVerdict, verifyInFlight)
	inFlight := 0
	var err error
	for (len(stack) > 0 && err == nil) || inFlight > 0 {
		for len(stack) > 0 && inFlight < verifyInFlight && err == nil {
			dir := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			inFlight++
			go func() {
				ents, err := v.w.slave.Entries(ctx, dir)
				results <- v.judge(dir, ents, err)
			}()
		}
		r := <-results
		inFlight--
		switch {
		case err != nil:
			continue // draining what is in flight
		case r.err != nil:
			err = r.err
			cancel()
			continue
		}
		v.add(r)
		stack = append(stack, r.subdirs...)
	}
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// verifyInFlight is how many directories verify lists at once with
// Entries.
const verifyInFlight = 64

// verifier is the state of one verify.
type verifier struct {
	w      *worker
	found  int
	unsync []gfid.GFID
	purges []purge
	listed int64 // entries the slave holds in the directories listed
}

type purge struct {
	dir  gfid.GFID
	name string
	gfid gfid.GFID // what the slave holds there (zero: an inode without one)
}

// dirVerdict is what verify found in one directory, with its
// subdirectories that the slave holds as the catalog does.
type dirVerdict struct {
	found   int
	unsync  []gfid.GFID
	purges  []purge
	listed  int64
	subdirs []gfid.GFID
	err     error
}

// add takes in the verdict of one directory.
func (v *verifier) add(r dirVerdict) {
	v.found += r.found
	v.unsync = append(v.unsync, r.unsync...)
	v.purges = append(v.purges, r.purges...)
	v.listed += r.listed
}

// judge compares one directory with the slave's listing of it, ents, or
// the error the listing failed with.
func (v *verifier) judge(dir gfid.GFID, ents []ops.DirEntry, err error) (r dirVerdict) {
	w := v.w
	if slaveDirGone(err) {
		// Missing, or its name on the slave holds something else (a
		// directory swapped for a symlink behind georep's back: the
		// slave will not follow it). Its name in the parent is purged
		// and the directory recreated with its content.
		w.log.Info("a directory is missing on the slave or its name holds something else; it will be recreated", "gfid", dir, "err", err)
		r.unsync = append(r.unsync, dir)
		r.found++
		return r
	}
	if err != nil {
		r.err = err
		return r
	}
	r.listed = int64(len(ents))
	want := map[string]gfid.GFID{}
	if err := w.cat.ForEachChild(dir, func(name string, g gfid.GFID) error { want[name] = g; return nil }); err != nil {
		r.err = err
		return r
	}
	have := make(map[string]bool, len(ents))
	for _, e := range ents {
		name := e.Name
		have[name] = true
		g, mine := want[name]
		switch {
		case mine && e.GFID == g:
			if e.Type == ops.TypeDir {
				r.subdirs = append(r.subdirs, g)
			}
			continue
		case mine:
			r.unsync = append(r.unsync, g)
			if w.partial {
				r.found++
				continue // the create's EEXIST resolution purges it
			}
		case w.cfg.IgnoreDeletes, w.partial:
			continue
		}
		r.found++
		r.purges = append(r.purges, purge{dir, name, e.GFID})
	}
	for name, g := range want {
		if !have[name] {
			r.unsync = append(r.unsync, g)
			r.found++
		}
	}
	return r
}

// finish purges what verify found, within the max-delete guard, sets the
// times of the directories it purged in, and unsyncs what the slave lacks.
func (v *verifier) finish(ctx context.Context) error {
	w := v.w
	if err := w.guardDeletes("verify", int64(len(v.purges)), v.listed); err != nil {
		return err
	}
	purgedIn := map[gfid.GFID]bool{}
	for _, p := range v.purges {
		w.log.Info("purging a name on the slave that the master does not have there", "pargfid", p.dir, "name", fmt.Sprintf("%q", p.name), "slave_gfid", gfidText(p.gfid))
		if _, err := w.slave.Purge(ctx, p.dir, p.name, gfid.GFID{}); err != nil {
			return err
		}
		purgedIn[p.dir] = true
	}
	// A purge changed the directory's mtime on the slave: set it again.
	if len(purgedIn) > 0 {
		var metas []ops.Meta
		var metaGFID []gfid.GFID
		for dir := range purgedIn {
			n, ok, err := w.cat.Node(dir)
			if err != nil {
				return err
			}
			if ok {
				m := w.metaOp(dir, crawl.Node{Node: n})
				m.SetXattrs, m.Xattrs = false, nil // the catalog keeps only their digest
				metas = append(metas, m)
				metaGFID = append(metaGFID, dir)
			}
		}
		out := &outcome{failed: map[gfid.GFID]string{}}
		if err := w.applyMetas(ctx, metas, metaGFID, out); err != nil {
			return err
		}
		if len(out.failed) > 0 {
			return fmt.Errorf("verify: resetting the metadata of directories it purged in: %s", summarize(out.failed))
		}
	}
	if len(v.unsync) > 0 {
		n, err := w.cat.Unsync(v.unsync)
		if err != nil {
			return err
		}
		w.log.Info("the slave lacks entries the catalog had recorded; they will be recreated", "gfids", n)
	}
	return nil
}

// drifted says whether the failure queue holds a failure of the slave's
// replica itself (ESTALE: a name there no longer holds what georep put
// there, such as a directory swapped for a symlink), which only verify
// repairs.
func (w *worker) drifted() bool {
	for _, f := range w.failures.list() {
		if f.Side == sideSlave && f.Errno == "ESTALE" {
			return true
		}
	}
	return false
}

// gfidText is g as the slave sends it: "" for the zero gfid (an inode that
// carries none).
func gfidText(g gfid.GFID) string {
	if g.IsZero() {
		return ""
	}
	return g.String()
}
