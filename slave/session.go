package slave

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"
)

// sessions grants the replica to one master volume at a time. A master
// volume holds the session while its lease is renewed (Handshake,
// KeepAlive); a different master volume is refused until the lease expires.
// The same master volume may take over at any time (a restarted daemon), which
// invalidates the old session id.
type sessions struct {
	mu       sync.Mutex
	now      func() time.Time
	maxLease time.Duration

	id       string
	lease    time.Duration // agreed at Handshake
	volume   string
	node     string
	expires  time.Time
	lastMark time.Time
}

// errHeld is returned when another master volume holds the session.
type errHeld struct {
	volume, node string
	until        time.Time
}

func (e *errHeld) Error() string {
	return fmt.Sprintf("replica is held by master volume %s (%s) until %s; a second master is refused",
		e.volume, e.node, e.until.UTC().Format(time.RFC3339))
}

func (s *sessions) open(volume, node string, lease time.Duration) (string, time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.id != "" && s.volume != volume && now.Before(s.expires) {
		return "", 0, &errHeld{volume: s.volume, node: s.node, until: s.expires}
	}
	if lease <= 0 || lease > s.maxLease {
		lease = s.maxLease
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", 0, fmt.Errorf("session id: %w", err)
	}
	s.id, s.volume, s.node, s.lease, s.expires = hex.EncodeToString(b[:]), volume, node, lease, now.Add(lease)
	return s.id, lease, nil
}

// heldByOther returns an *errHeld when a master volume other than volume
// holds a live lease.
func (s *sessions) heldByOther(volume string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.id != "" && s.volume != volume && s.now().Before(s.expires) {
		return &errHeld{volume: s.volume, node: s.node, until: s.expires}
	}
	return nil
}

// check verifies that id is the current session and renews its lease when
// renew is set.
func (s *sessions) check(id string, renew bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	switch {
	case id == "":
		return fmt.Errorf("no session: call Handshake and send its session id as %q metadata", sessionKey)
	case id != s.id:
		return fmt.Errorf("session %.8s… is not the current session (another master took over or the slave restarted): handshake again", id)
	case now.After(s.expires) && !renew:
		return fmt.Errorf("session %.8s… expired at %s: handshake again", id, s.expires.UTC().Format(time.RFC3339))
	}
	if renew {
		s.expires = now.Add(s.lease)
	}
	return nil
}
