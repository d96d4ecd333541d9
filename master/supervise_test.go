package master

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/georep/georep/rpc/backoff"
)

// fastSupervision makes supervise's waits short for the test.
func fastSupervision(t *testing.T) {
	t.Helper()
	bo, check, passive := restartBackoff, brickCheckEvery, passiveCheckEvery
	restartBackoff = backoff.Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond}
	brickCheckEvery, passiveCheckEvery = time.Millisecond, time.Millisecond
	t.Cleanup(func() { restartBackoff, brickCheckEvery, passiveCheckEvery = bo, check, passive })
}

// seen is a worker's state and reason as something it calls saw them.
func seen(w *worker) string {
	st := w.wd.stats()
	return st.WorkerStatus + ": " + st.LastError
}

// failingLoop is a worker loop that fails, then panics, then runs until
// ctx is done; it records the state each run starts in.
type failingLoop struct {
	w      *worker
	cancel context.CancelFunc
	starts []string
}

func (l *failingLoop) run(ctx context.Context) error {
	l.starts = append(l.starts, seen(l.w))
	switch len(l.starts) {
	case 1:
		return errors.New("boom")
	case 2:
		panic("bang")
	}
	l.cancel()
	<-ctx.Done()
	return nil
}

func (l *failingLoop) check(t *testing.T, wantStart string) {
	t.Helper()
	if len(l.starts) != 3 {
		t.Fatalf("%d runs, want 3: %q", len(l.starts), l.starts)
	}
	for i, why := range []string{"boom", "worker panicked: bang"} {
		if s := l.starts[i+1]; !strings.HasPrefix(s, wantStart+": "+why) {
			t.Errorf("run %d started as %q, want %q after the failure", i+2, s, wantStart+": "+why)
		}
	}
}

func TestRestartingRestartsWithBackoff(t *testing.T) {
	fastSupervision(t)
	_, ws := testMonitor(t, DefaultConfig(), "w")
	w := ws[0]
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	l := &failingLoop{w: w, cancel: cancel}
	if err := w.restarting(ctx, l.run); err != nil {
		t.Fatal(err)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("timed out")
	}
	// A plain worker stays Faulty, with its reason, until a pass runs.
	l.check(t, stateFaulty)
	if !w.entry.exited.Load() {
		t.Error("the worker is not marked exited")
	}
}

func TestSuperviseRestartsWithBackoff(t *testing.T) {
	fastSupervision(t)
	_, ws := testMonitor(t, DefaultConfig(), "w")
	w := ws[0]
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	l := &failingLoop{w: w, cancel: cancel}
	online := func(context.Context) (bool, error) { return true, nil }
	w.supervise(ctx, &fakeLease{}, l.run, online)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("timed out")
	}
	// A brick worker is Active again once it holds the lock; the reason
	// of its fall stays.
	l.check(t, stateActive)
}

func TestSuperviseStepsDown(t *testing.T) {
	fastSupervision(t)
	_, ws := testMonitor(t, DefaultConfig(), "w")
	w := ws[0]
	lock := &fakeLease{}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	// The brick is online for the first two looks (becoming Active, the
	// first check while Active), offline for the next two, then online.
	var looks []string
	released := false
	online := func(context.Context) (bool, error) {
		looks = append(looks, seen(w))
		if len(looks) == 4 {
			// Stepped down: another brick of the set could take the lease.
			released = !lock.held
		}
		return len(looks) <= 2 || len(looks) > 4, nil
	}
	var stopped []error
	run := func(ctx context.Context) error {
		if len(stopped) == 1 {
			cancel() // Active again: done
		}
		<-ctx.Done()
		stopped = append(stopped, ctx.Err())
		return nil
	}
	w.supervise(ctx, lock, run, online)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("timed out: looks %q", looks)
	}
	if len(stopped) != 2 {
		t.Fatalf("%d runs, want 2 (stopped when the brick went offline, then Active again)", len(stopped))
	}
	if !released {
		t.Error("the replica set's lock was not released on stepping down")
	}
	want := []string{stateActive + ": ", stateFaulty + ": brick offline", statePassive + ": brick offline"}
	if !containsInOrder(looks, want) {
		t.Errorf("the brick's looks saw %q, want %q in order", looks, want)
	}
}

// containsInOrder reports whether want occur in got in that order.
func containsInOrder(got, want []string) bool {
	for _, s := range got {
		if len(want) > 0 && s == want[0] {
			want = want[1:]
		}
	}
	return len(want) == 0
}

// fakeLease is a replica set's lease held by one worker.
type fakeLease struct {
	held   bool
	others int // acquisitions refused: another worker holds it
}

func (l *fakeLease) acquire(context.Context) error {
	if l.others > 0 {
		l.others--
		return &leaseHeldError{set: "0", worker: "other"}
	}
	l.held = true
	return nil
}

func (l *fakeLease) release(context.Context, string) { l.held = false }

// A worker whose set's lease another worker holds waits Passive, saying
// so, and becomes Active once it has it; a worker that loses it while
// Active (the slave gave it to another after a partition) goes back to
// Passive, not Faulty, and waits for it again.
func TestSupervisePassiveWhileLeaseHeld(t *testing.T) {
	fastSupervision(t)
	_, ws := testMonitor(t, DefaultConfig(), "w")
	w := ws[0]
	lease := &fakeLease{others: 3}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var starts []string
	run := func(ctx context.Context) error {
		starts = append(starts, seen(w))
		if len(starts) == 1 {
			lease.held, lease.others = false, 2
			return fmt.Errorf("pass: %w", &leaseHeldError{set: "0", worker: "m2:/b1"})
		}
		cancel()
		<-ctx.Done()
		return nil
	}
	var looks []string
	online := func(context.Context) (bool, error) {
		looks = append(looks, seen(w))
		return true, nil
	}
	w.supervise(ctx, lease, run, online)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("timed out")
	}
	if len(starts) != 2 {
		t.Fatalf("%d runs, want 2: %q", len(starts), starts)
	}
	passive := 0
	for _, s := range looks {
		if strings.HasPrefix(s, statePassive+": another brick of the replica set is Active: replica set 0 is held by worker other") {
			passive++
		}
	}
	if passive < 2 {
		t.Errorf("looks %q: not Passive while the lease was held, before and after the first run", looks)
	}
	for _, s := range looks {
		if strings.HasPrefix(s, stateFaulty) {
			t.Errorf("Faulty on losing the lease: %q", s)
		}
	}
}
