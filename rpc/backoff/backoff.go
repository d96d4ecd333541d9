// Package backoff is the one exponential backoff of georep's retry loops:
// a wait that starts at Initial, doubles after each use up to Max, and goes
// back to Initial on Reset (after a success). The master's worker loops and
// the gRPC client's health wait use it. gsyncd's counterpart is the
// monitor's restart delay and syncdutils.py's boolify/Popen retries.
package backoff

import (
	"context"
	"time"
)

// Backoff is a doubling wait. The zero value waits nothing; set Initial
// and Max. It is not safe for concurrent use: each loop owns its own.
type Backoff struct {
	Initial time.Duration // the first wait, and the wait after Reset
	Max     time.Duration // the longest wait

	next    time.Duration
	started bool
}

// Current is the wait the next Wait (or Next) will use.
func (b *Backoff) Current() time.Duration {
	if !b.started {
		return b.Initial
	}
	return b.next
}

// Next returns the current wait and doubles it, up to Max, for next time.
func (b *Backoff) Next() time.Duration {
	d := b.Current()
	b.next, b.started = min(d*2, b.Max), true
	return d
}

// Reset makes the next wait Initial again.
func (b *Backoff) Reset() { b.started = false }

// Wait waits for the current wait (then doubles it, as Next), until ctx is
// done or wake, when not nil, receives. It reports whether ctx is still
// live.
func (b *Backoff) Wait(ctx context.Context, wake <-chan struct{}) bool {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-wake:
	case <-t.C:
	}
	return ctx.Err() == nil
}
