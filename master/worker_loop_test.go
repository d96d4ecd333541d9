package master

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// fakeSource is a change source that hands out a script of batches, each
// naming files of the source's root, then nothing. It runs on the loop's
// goroutine, so it may look at the worker; it ends the loop once done says
// so.
type fakeSource struct {
	w       *worker
	src     string
	full    bool // open's answer
	batches []fakeBatch
	done    func(*fakeSource) bool
	cancel  context.CancelFunc

	fulls, applied, losts int
	states                []string // the worker's state at each call of next
}

// fakeBatch writes files in the source's root and names them; err is
// what its gather returns instead.
type fakeBatch struct {
	names []string
	err   error
}

func (s *fakeSource) open(context.Context) (bool, error) { return s.full, nil }
func (s *fakeSource) check(context.Context) error        { return nil }
func (s *fakeSource) beforeFull() error                  { return nil }
func (s *fakeSource) fullDone(time.Time)                 { s.fulls++ }
func (s *fakeSource) consumed()                          { s.applied++ }
func (s *fakeSource) lost(error)                         { s.losts++ }

func (s *fakeSource) next(context.Context) (changes, error) {
	s.states = append(s.states, s.w.stats.WorkerStatus)
	if s.done(s) {
		s.cancel()
	}
	if len(s.batches) == 0 {
		return changes{empty: true, gather: func(*dirSet) error { return nil }}, nil
	}
	b := s.batches[0]
	s.batches = s.batches[1:]
	return changes{gather: func(ds *dirSet) error {
		if b.err != nil {
			select {
			case s.w.wake <- struct{}{}: // the operator steps in: no backoff to sit out
			default:
			}
			return b.err
		}
		fd, err := unix.Open(s.src, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		i, err := ds.add(fd, ".")
		if err != nil {
			return err
		}
		for _, n := range b.names {
			if err := os.WriteFile(filepath.Join(s.src, n), []byte(n), 0o644); err != nil {
				return err
			}
			ds.mark(i, n, true)
		}
		return nil
	}}, nil
}

func (s *fakeSource) wait(ctx context.Context, wake <-chan struct{}) {
	if s.done(s) {
		s.cancel()
	}
	select {
	case <-ctx.Done():
	case <-wake:
	case <-time.After(time.Millisecond):
	}
}

// newLoopWorker is a test worker with what the loop needs: a session open
// (on the fake slave), a failure queue, a monitor for its state.
func newLoopWorker(t *testing.T) *testWorker {
	t.Helper()
	tw := newTestWorker(t)
	tw.cfg.ChangeInterval = 20 * time.Millisecond
	q, err := loadFailures(tw.wd.path("failures"))
	if err != nil {
		t.Fatal(err)
	}
	tw.failures, tw.staleData, tw.wake = q, map[gfid.GFID]bool{}, make(chan struct{}, 1)
	tw.client, tw.session = &slaveClient{}, true
	mon, err := newMonitor(tw.cfg, tw.wd, tw.log)
	if err != nil {
		t.Fatal(err)
	}
	mon.add(tw.worker, "test")
	return tw
}

func TestLoop(t *testing.T) {
	for _, tc := range []struct {
		name    string
		full    bool
		fail    string // "CREATE a": the slave fails it once
		damage  bool   // a and b synced, then a removed from the slave
		batches []fakeBatch
		done    func(*fakeSource) bool
		check   func(t *testing.T, tw *testWorker, s *fakeSource)
	}{{
		name: "needFull runs a hybrid crawl first",
		full: true,
		done: func(s *fakeSource) bool { return s.fulls > 0 },
		check: func(t *testing.T, tw *testWorker, s *fakeSource) {
			assertPaths(t, tw.slave.paths(), "a", "b")
			if s.applied != 0 {
				t.Errorf("%d batches consumed, want none", s.applied)
			}
		},
	}, {
		name:    "then a changelog crawl of each batch",
		full:    true,
		batches: []fakeBatch{{names: []string{"c"}}, {names: []string{"d"}}},
		done:    func(s *fakeSource) bool { return s.applied > 1 },
		check: func(t *testing.T, tw *testWorker, s *fakeSource) {
			assertPaths(t, tw.slave.paths(), "a", "b", "c", "d")
			if s.fulls != 1 {
				t.Errorf("%d hybrid crawls, want 1", s.fulls)
			}
		},
	}, {
		name: "partial failures are retried every change-interval",
		full: true,
		fail: "CREATE a",
		done: func(s *fakeSource) bool { return s.applied > 0 && s.w.failures.len() == 0 },
		check: func(t *testing.T, tw *testWorker, s *fakeSource) {
			assertPaths(t, tw.slave.paths(), "a", "b")
			if len(tw.slave.failOne) != 0 {
				t.Error("the slave never failed CREATE a")
			}
			if s.fulls != 1 {
				t.Errorf("%d hybrid crawls, want 1: the retry is a changelog crawl of the queue's places", s.fulls)
			}
		},
	}, {
		name:    "a guard error holds the worker Faulty until a pass runs",
		full:    true,
		batches: []fakeBatch{{err: &GuardError{Guard: "max-delete", Detail: "test", Proceed: "test"}}, {names: []string{"c"}}},
		done:    func(s *fakeSource) bool { return s.applied > 0 },
		check: func(t *testing.T, tw *testWorker, s *fakeSource) {
			// next sees the state the last pass left: Active after the
			// crawl, Faulty after the guard's refusal, Active after the
			// pass that ran.
			if want := []string{stateActive, stateFaulty, stateActive}; len(s.states) < 3 || fmt.Sprint(s.states[:3]) != fmt.Sprint(want) {
				t.Errorf("states %q, want %q first", s.states[:min(len(s.states), 5)], want)
			}
			if tw.guardHeld || tw.stats.Guard != "" {
				t.Errorf("guard still held: %v %q", tw.guardHeld, tw.stats.Guard)
			}
		},
	}, {
		name:    "errNeedFull sends the worker to a hybrid crawl",
		full:    true,
		batches: []fakeBatch{{err: fmt.Errorf("%w: test", errNeedFull)}},
		done:    func(s *fakeSource) bool { return s.fulls > 1 },
		check: func(t *testing.T, tw *testWorker, s *fakeSource) {
			assertPaths(t, tw.slave.paths(), "a", "b")
			if s.losts != 1 || s.applied != 0 {
				t.Errorf("lost %d, consumed %d: want 1, 0", s.losts, s.applied)
			}
			if tw.stats.WorkerStatus != stateActive {
				t.Errorf("state %q, want Active: a pass that needs a crawl has not failed", tw.stats.WorkerStatus)
			}
		},
	}, {
		name:   "a hybrid crawl whose verify finds the slave lacking an entry is followed by another, which recreates it",
		full:   true,
		damage: true,
		done:   func(s *fakeSource) bool { return s.fulls > 1 },
		check: func(t *testing.T, tw *testWorker, s *fakeSource) {
			assertPaths(t, tw.slave.paths(), "a", "b")
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tw := newLoopWorker(t)
			tw.write(t, "a", "a")
			tw.write(t, "b", "b")
			if tc.damage {
				// Synced, then a removed from the slave behind the
				// catalog's back: only verify finds it.
				tw.crawlAndProcess(t)
				tw.slave.Remove(gfid.Root, "a")
				tw.verified = false
			}
			if tc.fail != "" {
				tw.slave.failOne[tc.fail] = ops.Failure{Errno: syscall.EIO, Message: tc.fail + ": injected"}
			}
			tw.needFull = tc.full
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			s := &fakeSource{w: tw.worker, src: tw.src, full: tc.full, batches: tc.batches, done: tc.done, cancel: cancel}
			if err := tw.run(ctx, s); err != nil {
				t.Fatal(err)
			}
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				t.Fatalf("the loop never got there: %d hybrid crawls, %d batches consumed, %d lost, failures %d",
					s.fulls, s.applied, s.losts, tw.failures.len())
			}
			tc.check(t, tw, s)
		})
	}
}
