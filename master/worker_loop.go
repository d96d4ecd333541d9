package master

import (
	"context"
	"errors"
	"time"

	"github.com/georep/georep/rpc/backoff"
)

// changeSource is where the worker loop learns what changed on the source:
// the fanotify journal of a plain directory (journal_source.go), the
// changelogs of a GlusterFS brick (brick_source.go), or nothing but a
// periodic hybrid crawl (crawl_source.go). The loop calls it from its own
// goroutine only; a source may use its worker's fields on that goroutine.
type changeSource interface {
	// open is called before any pass until it succeeds (a failure is a
	// failed pass: the worker backs off and tries again). It returns
	// whether the first pass must be a hybrid crawl; false means the
	// source's history covers the time since stime.
	open(ctx context.Context) (full bool, err error)
	// check runs before every pass. It returns errNeedFull when the source
	// lost track (a hybrid crawl must run), and any other error when it
	// cannot go on at all: the loop then falls back to a periodic crawl.
	check(ctx context.Context) error
	// beforeFull runs before a hybrid crawl; fullDone after one that ran
	// (even leaving failures), started at start.
	beforeFull() error
	fullDone(start time.Time)
	// next returns the next batch of changes. An error means the source
	// cannot say what changed (it has logged why): a hybrid crawl runs.
	next(ctx context.Context) (changes, error)
	// wait waits, idle, until the source may have changes, something is
	// sent on wake, or ctx is done.
	wait(ctx context.Context, wake <-chan struct{})
	// consumed says that the batch last returned by next is applied (the
	// slave reflects it, failures aside).
	consumed()
	// lost says that a pass over the last batch needs a hybrid crawl
	// (reason wraps errNeedFull).
	lost(reason error)
}

// changes is a batch of a change source.
type changes struct {
	// full: the source learns of changes by crawling only; a hybrid crawl
	// is the batch.
	full bool
	// empty: nothing changed (a pass still runs to retry the failure
	// queue, or for a checkpoint).
	empty bool
	// gather names the directories and names to re-examine.
	gather func(*dirSet) error
	// stimeAt is the stime the slave reaches with the batch; zero: the
	// start of the pass.
	stimeAt time.Time
}

// run is the worker's change loop over any change source (gsyncd's crawl
// chaining): a hybrid crawl when one is needed, else a changelog crawl of
// each batch, the failure queue retried every change-interval (or at once
// when asked), and after a failed pass a backoff of 1 s doubling to 1 min.
// A source that cannot go on is replaced by a periodic crawl.
func (w *worker) run(ctx context.Context, src changeSource) error {
	bo := backoff.Backoff{Initial: time.Second, Max: time.Minute}
	lastRetry := time.Now()
	opened := false
	for ctx.Err() == nil {
		if opened {
			if err := src.check(ctx); errors.Is(err, errNeedFull) {
				w.needFull = true
			} else if err != nil {
				src, bo = w.crawlSource(), backoff.Backoff{Initial: time.Second, Max: time.Minute}
				w.needFull = true
			}
		}
		var err error
		switch {
		case !opened:
			var full bool
			if full, err = src.open(ctx); err == nil {
				// Opening is not a pass: the worker's state waits for one.
				opened, w.needFull = true, full
				bo.Reset()
				continue
			}
		case w.needFull:
			if err = src.beforeFull(); err != nil {
				break
			}
			start := time.Now()
			// The pass may ask for another (verify found the slave
			// lacking entries, a directory to recreate with its
			// content): that request stands.
			w.needFull = false
			_, err = w.pass(ctx)
			lastRetry = time.Now()
			w.auditAfterPass(err, w.lastCrawl)
			if ran(err) {
				src.fullDone(start)
			} else {
				w.needFull = true
			}
		default:
			retryNow := w.retryNow.Swap(false)
			retry := (w.failures.len() > 0 || len(w.staleData) > 0) && (retryNow || time.Since(lastRetry) >= w.changeInterval())
			c, nerr := src.next(ctx)
			if nerr != nil {
				w.needFull = true
				continue
			}
			if c.full {
				w.needFull = true
				continue
			}
			if c.empty && !retry && !w.tick.Swap(false) {
				// Nothing to replicate: the audit's turn, one step at
				// a time (the loop looks for changes between steps).
				if !w.auditStep(ctx) {
					src.wait(ctx, w.wake)
				}
				continue
			}
			err = w.scopedPass(ctx, retry, c.stimeAt, c.gather)
			if retry {
				lastRetry = time.Now()
			}
			switch {
			case ran(err):
				src.consumed()
			case errors.Is(err, errNeedFull):
				src.lost(err)
				w.needFull, err = true, nil
			}
		}
		if held := (*leaseHeldError)(nil); errors.As(err, &held) && w.brick != nil {
			// Another worker of the replica set holds its lease: this
			// one is Passive (supervise).
			return err
		}
		if ctx.Err() == nil {
			w.passResult(err)
		}
		w.backoffAfter(ctx, err, &bo)
	}
	return nil
}

// ran reports whether a pass that returned err brought the slave up to
// date, failures in the queue aside.
func ran(err error) bool {
	var partial *partialError
	return err == nil || errors.As(err, &partial)
}

// backoffAfter waits after a failed pass, saying why: 1 s, doubling to
// 1 min; a pass that ran (even one that left failures in the queue) resets
// the wait and does not wait.
func (w *worker) backoffAfter(ctx context.Context, err error, bo *backoff.Backoff) {
	if ran(err) {
		bo.Reset()
		return
	}
	if ctx.Err() != nil {
		return
	}
	w.log.Warn("pass failed; retrying", "err", err, "retry_in", bo.Current())
	bo.Wait(ctx, w.wake) // woken: the operator changed something (max-delete, a retry)
}
