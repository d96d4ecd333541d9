package slave

import (
	"errors"
	"testing"
	"time"
)

func TestSessions(t *testing.T) {
	now := time.Unix(1000, 0)
	s := &sessions{now: func() time.Time { return now }, maxLease: 30 * time.Second}

	id1, lease, err := s.open("vol-a", "host-a", time.Hour)
	if err != nil || lease != 30*time.Second {
		t.Fatalf("open: %v lease %v", err, lease)
	}
	if err := s.check(id1, false); err != nil {
		t.Fatalf("check current: %v", err)
	}
	var held *errHeld
	if _, _, err := s.open("vol-b", "host-b", 0); !errors.As(err, &held) {
		t.Fatalf("second master volume: err = %v, want errHeld", err)
	}
	// The same master volume takes over (restarted daemon); the old id is dead.
	id2, _, err := s.open("vol-a", "host-a2", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.check(id1, false); err == nil {
		t.Fatal("old session id still accepted after take-over")
	}
	if err := s.check("", false); err == nil {
		t.Fatal("empty session id accepted")
	}
	// KeepAlive renews; without renewal the lease runs out and another volume may take over.
	now = now.Add(20 * time.Second)
	if err := s.check(id2, true); err != nil {
		t.Fatal(err)
	}
	now = now.Add(25 * time.Second)
	if err := s.check(id2, false); err != nil {
		t.Fatalf("renewed lease expired early: %v", err)
	}
	now = now.Add(10 * time.Second)
	if err := s.check(id2, false); err == nil {
		t.Fatal("expired session accepted")
	}
	if _, _, err := s.open("vol-b", "host-b", 0); err != nil {
		t.Fatalf("other volume after expiry: %v", err)
	}
}
