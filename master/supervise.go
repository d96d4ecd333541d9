package master

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

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
// until its brick is online and its session holds the replica set's lease
// on the slave, then runs Active until ctx is done. It steps down (Faulty)
// when its brick goes offline, releasing the lease so that another brick
// of the set, on any node, takes over; it goes back to Passive when the
// slave says another worker holds the lease (it lost it: cut off longer
// than the lease); a worker that fails (an error or a panic) is Faulty and
// restarted with backoff.
func (w *worker) supervise(ctx context.Context, lease setLease, run func(context.Context) error, online func(context.Context) (bool, error)) {
	bo := restartBackoff
	for ctx.Err() == nil {
		if err := w.becomeActive(ctx, lease, online); err != nil {
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
		var runErr error
		tick := time.NewTicker(brickCheckEvery)
	watch:
		for {
			select {
			case err := <-done:
				if err != nil && ctx.Err() == nil {
					why, runErr = err.Error(), err
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
		w.session = false
		if ctx.Err() != nil {
			return
		}
		var held *leaseHeldError
		if errors.As(runErr, &held) {
			// Another worker of the set took the lease while this one
			// could not renew it: it is Active now; this one waits.
			w.log.Warn("worker lost the replica set's lease: Passive", "holder", held.worker, "slave", held.slave, "epoch", held.epoch)
			continue
		}
		lease.release(ctx, why) // another brick of the set may take over at once
		w.setStatus("Faulty", why)
		w.log.Error("worker Faulty: stepping down; another brick of the replica set may take over", "reason", why, "restart_in", bo.Current())
		if !bo.Wait(ctx, nil) {
			return
		}
	}
}

// setLease is a replica set's lease, as a brick worker sees it: acquire
// returns nil once the worker holds it (a *leaseHeldError while another
// worker does), release gives it up.
type setLease interface {
	acquire(ctx context.Context) error
	release(ctx context.Context, why string)
}

// slaveLease is the set's lease on the slave: the worker's session holds
// it.
type slaveLease struct{ w *worker }

func (l slaveLease) acquire(ctx context.Context) error {
	if err := l.w.connect(ctx); err != nil {
		return err
	}
	l.w.log.Info("holding the replica set's lease", "slave", l.w.client.current().addr, "lease_epoch", l.w.client.leaseEpoch)
	return nil
}

func (l slaveLease) release(ctx context.Context, why string) { l.w.client.release(ctx, why) }

// becomeActive waits, Passive, until the brick is online and the worker's
// session holds the replica set's lease (asked for every
// passiveCheckEvery: gsyncd's replica-failover-interval).
func (w *worker) becomeActive(ctx context.Context, lease setLease, online func(context.Context) (bool, error)) error {
	for logged := ""; ; {
		why := ""
		if up, err := online(ctx); err == nil && !up {
			why = "brick offline"
		} else if err := lease.acquire(ctx); err == nil {
			return nil
		} else {
			var held *leaseHeldError
			switch {
			case errors.As(err, &held):
				why = "another brick of the replica set is Active: " + held.Error()
			case ctx.Err() != nil:
				return ctx.Err()
			default:
				why = "cannot open a session with the slave: " + err.Error()
			}
		}
		if why != logged {
			w.setStatus("Passive", why)
			w.log.Info("worker Passive", "reason", why)
			logged = why
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(passiveCheckEvery):
		}
	}
}
