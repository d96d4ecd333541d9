package slave

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/georep/georep/slave/lease"
)

func TestSessions(t *testing.T) {
	now := time.Unix(1000, 0)
	s := &sessions{now: func() time.Time { return now }, maxLease: 30 * time.Second}

	o1, err := s.open("vol-a", "host-a", "", "", time.Hour)
	if err != nil || o1.lease != 30*time.Second {
		t.Fatalf("open: %v lease %v", err, o1.lease)
	}
	id1 := o1.id
	ctx1, err := s.check(id1, false, true)
	if err != nil {
		t.Fatalf("check current: %v", err)
	}
	var held *errHeld
	if _, err := s.open("vol-b", "host-b", "", "", 0); !errors.As(err, &held) {
		t.Fatalf("second master volume: err = %v, want errHeld", err)
	}
	// The same master volume takes over (restarted daemon); the old id is dead.
	o2, err := s.open("vol-a", "host-a2", "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	id2 := o2.id
	if _, err := s.check(id1, false, true); err == nil {
		t.Fatal("old session id still accepted after take-over")
	}
	if ctx1.Err() == nil {
		t.Fatal("the old session's context lives on after take-over")
	}
	if _, err := s.check("", false, true); err == nil {
		t.Fatal("empty session id accepted")
	}
	// KeepAlive renews; without renewal the lease runs out and another volume may take over.
	now = now.Add(20 * time.Second)
	if _, err := s.check(id2, true, false); err != nil {
		t.Fatal(err)
	}
	now = now.Add(25 * time.Second)
	if _, err := s.check(id2, false, true); err != nil {
		t.Fatalf("renewed lease expired early: %v", err)
	}
	now = now.Add(10 * time.Second)
	if _, err := s.check(id2, false, true); err == nil {
		t.Fatal("expired session accepted")
	}
	if _, err := s.open("vol-b", "host-b", "", "", 0); err != nil {
		t.Fatalf("other volume after expiry: %v", err)
	}
}

// Workers of different replica sets hold sessions at once; a second worker
// of one set is refused (it stays Passive) until the first releases it or
// stops renewing it, through this slave or another one on the same volume.
func TestSessionsPerReplicaSet(t *testing.T) {
	now := time.Unix(1000, 0)
	root := t.TempDir()
	st1, err := lease.Open(root, "s1")
	if err != nil {
		t.Fatal(err)
	}
	st2, err := lease.Open(root, "s2")
	if err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { return now }
	s1 := &sessions{now: clock, maxLease: 30 * time.Second, leases: st1}
	s2 := &sessions{now: clock, maxLease: 30 * time.Second, leases: st2}

	a0, err := s1.open("vol", "m1", "0", "m1:/b1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if a0.epoch != 1 {
		t.Fatalf("first epoch %d", a0.epoch)
	}
	a1, err := s1.open("vol", "m1", "1", "m1:/b2", 0)
	if err != nil {
		t.Fatalf("another set's worker: %v", err)
	}
	var lh *errLeaseHeld
	if _, err := s1.open("vol", "m2", "0", "m2:/b1", 0); !errors.As(err, &lh) || lh.holder.Worker != "m1:/b1" {
		t.Fatalf("second worker of set 0 through the same slave: %v", err)
	}
	if _, err := s2.open("vol", "m2", "0", "m2:/b1", 0); !errors.As(err, &lh) || lh.holder.Slave != "s1" {
		t.Fatalf("second worker of set 0 through another slave: %v", err)
	}
	// The holder records the set's stime; it reaches the next holder.
	stime := time.Unix(900, 0)
	if err := s1.setStime(a0.id, stime); err != nil {
		t.Fatal(err)
	}
	// The same worker again takes over its own session, lease and epoch.
	a0b, err := s1.open("vol", "m1", "0", "m1:/b1", 0)
	if err != nil || a0b.epoch != 1 {
		t.Fatalf("same worker again: %v epoch %d", err, a0b.epoch)
	}
	// It stops renewing: the watch of slave s1 ends the session and its lease.
	now = now.Add(31 * time.Second)
	s1.mu.Lock()
	s1.expireLocked(now)
	s1.mu.Unlock()
	b0, err := s2.open("vol", "m2", "0", "m2:/b1", 0)
	if err != nil {
		t.Fatalf("second worker after the first's lease expired: %v", err)
	}
	if b0.epoch != 2 || !b0.stime.Equal(stime) {
		t.Fatalf("new holder: epoch %d stime %v, want 2 and %v", b0.epoch, b0.stime, stime)
	}
	if _, err := s1.check(a1.id, false, true); err == nil {
		t.Fatal("set 1's session outlived its lease")
	}
	// Release gives the lease up at once.
	s2.end(b0.id, errors.New("stepping down"))
	if _, err := s1.open("vol", "m1", "0", "m1:/b1", 0); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

// A session whose lease the volume gave to another holder is fenced at its
// next mutating call, and what runs in its name is cancelled.
func TestSessionFenced(t *testing.T) {
	now := time.Unix(1000, 0)
	root := t.TempDir()
	st1, _ := lease.Open(root, "s1")
	st2, _ := lease.Open(root, "s2")
	clock := func() time.Time { return now }
	s1 := &sessions{now: clock, maxLease: 30 * time.Second, leases: st1}
	s2 := &sessions{now: clock, maxLease: 30 * time.Second, leases: st2}
	a, err := s1.open("vol", "m1", "0", "m1:/b1", 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, err := s1.check(a.id, false, true)
	if err != nil {
		t.Fatal(err)
	}
	// What a partition does: the brick drops s1's lock, s2 takes it.
	dropLock(t, s1, a.id)
	if _, err := s2.open("vol", "m2", "0", "m2:/b1", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s1.check(a.id, false, true); err == nil {
		t.Fatal("a session that lost its lease applied")
	}
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
		t.Fatal("the fenced session's context lives on")
	}
	if !errors.Is(context.Cause(ctx), lease.ErrLost) {
		t.Fatalf("cause %v", context.Cause(ctx))
	}
}

func dropLock(t *testing.T, s *sessions, id string) {
	t.Helper()
	s.mu.Lock()
	l := s.byID[id].hold
	s.mu.Unlock()
	if err := lease.DropLock(l); err != nil {
		t.Fatal(err)
	}
}
