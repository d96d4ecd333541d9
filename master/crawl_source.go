package master

import (
	"context"
	"time"
)

// crawlSource is the change source of a worker without a change journal
// or changelogs (change-detector xsync, a brick of a volume whose changelog
// is off, a journal that could not restart): a hybrid crawl every
// change-interval, or at once when the worker is woken. Every batch is a
// hybrid crawl, which retries the failure queue too.
type crawlSource struct{ w *worker }

func (w *worker) crawlSource() *crawlSource { return &crawlSource{w: w} }

// open: the first pass is a crawl.
func (s *crawlSource) open(context.Context) (bool, error) { return true, nil }

func (s *crawlSource) check(context.Context) error { return nil }
func (s *crawlSource) beforeFull() error           { return nil }
func (s *crawlSource) fullDone(time.Time)          {}

// next waits change-interval, or until woken, and asks for a crawl. The
// audit takes its steps meanwhile (a wake of its own timer is not a wake
// for a crawl); a step that found something to repair ends the wait.
func (s *crawlSource) next(ctx context.Context) (changes, error) {
	deadline := time.Now().Add(s.w.changeInterval())
	for ctx.Err() == nil && time.Now().Before(deadline) && !s.w.needFull {
		if s.w.auditStep(ctx) {
			continue
		}
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-ctx.Done():
		case <-s.w.wake:
			if !s.w.auditWoke.Swap(false) {
				t.Stop()
				return changes{full: true}, nil
			}
		case <-t.C:
		}
		t.Stop()
	}
	return changes{full: true}, nil
}

// wait is never called: next never returns an empty batch.
func (s *crawlSource) wait(context.Context, <-chan struct{}) {}
func (s *crawlSource) consumed()                             {}
func (s *crawlSource) lost(error)                            {}
