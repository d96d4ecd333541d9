package master

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/backoff"
)

// Supervision of a worker, apart from its change loop (gsyncd's monitor):
// a loop that fails or panics makes the worker Faulty and is restarted with
// backoff; a brick worker is Active only while its brick is online and it
// holds its replica set's lock, Passive while it waits for both, and steps
// down when its brick goes offline.

// restartBackoff is the wait before a failed worker is restarted: 1 s,
// doubling to 1 min (a variable for tests).
var restartBackoff = backoff.Backoff{Initial: time.Second, Max: time.Minute}

// restarting runs the loop of a plain-directory worker until ctx is done;
// a loop that fails or panics makes the worker Faulty, with its reason,
// and is restarted with backoff (what supervise does for brick workers).
func (w *worker) restarting(ctx context.Context, loop func(context.Context) error) error {
	defer w.entry.exited.Store(true)
	bo := restartBackoff
	for {
		err := func() (err error) {
			defer func() {
				if p := recover(); p != nil {
					err = fmt.Errorf("worker panicked: %v\n%s", p, debug.Stack())
				}
			}()
			return loop(ctx)
		}()
		if ctx.Err() != nil {
			return nil
		}
		why := "the worker's loop ended"
		if err != nil {
			why = err.Error()
		}
		w.session = false
		w.setStatus(stateFaulty, why)
		w.log.Error("worker Faulty: restarting", "reason", why, "restart_in", bo.Current())
		if !bo.Wait(ctx, nil) {
			return nil
		}
	}
}

// brickCheckEvery is how often an Active worker checks that its brick's
// process runs, passiveCheckEvery how often a Passive one checks whether
// it can become Active (variables for tests).
var (
	brickCheckEvery   = 5 * time.Second
	passiveCheckEvery = time.Second
)

// supervise is gsyncd's monitor for one brick: the worker waits Passive
// until its brick is online and it holds the replica set's lock, then runs
// Active until ctx is done. It steps down (Faulty) when its brick goes
// offline, letting another brick of the set take over, and comes back
// Passive when the brick is online again; a worker that fails (an error or
// a panic) is Faulty and restarted with backoff.
func (w *worker) supervise(ctx context.Context, lockPath string, run func(context.Context) error, online func(context.Context) (bool, error)) {
	bo := restartBackoff
	for ctx.Err() == nil {
		lock, err := w.becomeActive(ctx, lockPath, online)
		if err != nil {
			if ctx.Err() == nil {
				w.log.Error("worker cannot take the replica set's lock", "err", err)
			}
			return
		}
		w.setStatus("Active", "")
		w.log.Info("worker Active")
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			defer func() {
				if p := recover(); p != nil {
					done <- fmt.Errorf("worker panicked: %v\n%s", p, debug.Stack())
				}
			}()
			done <- run(runCtx)
		}()
		var why string
		tick := time.NewTicker(brickCheckEvery)
	watch:
		for {
			select {
			case err := <-done:
				if err != nil && ctx.Err() == nil {
					why = err.Error()
				}
				break watch
			case <-tick.C:
				up, err := online(ctx)
				if err != nil {
					w.log.Warn("cannot tell whether the brick is online; staying Active", "err", err)
					continue
				}
				if !up {
					why = "brick offline"
					stop()
					<-done
					break watch
				}
			}
		}
		tick.Stop()
		stop()
		lock.Close() // another brick of the set may take over
		if ctx.Err() != nil {
			return
		}
		w.setStatus("Faulty", why)
		w.log.Error("worker Faulty: stepping down; another brick of the replica set may take over", "reason", why, "restart_in", bo.Current())
		if !bo.Wait(ctx, nil) {
			return
		}
	}
}

// becomeActive waits, Passive, until the brick is online and the worker
// holds the replica set's lock, which it returns.
func (w *worker) becomeActive(ctx context.Context, lockPath string, online func(context.Context) (bool, error)) (*os.File, error) {
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for logged := ""; ; {
		why := ""
		if up, err := online(ctx); err == nil && !up {
			why = "brick offline"
		} else if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == nil {
			return f, nil
		} else if errors.Is(err, unix.EWOULDBLOCK) {
			why = "another brick of the replica set is Active"
		} else {
			f.Close()
			return nil, err
		}
		if why != logged {
			w.setStatus("Passive", why)
			w.log.Info("worker Passive", "reason", why)
			logged = why
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(passiveCheckEvery):
		}
	}
}
