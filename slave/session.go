package slave

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/georep/georep/rpc"
	"github.com/georep/georep/slave/lease"
)

// sessions are the replication sessions of the slave: one master volume
// uses the replica at a time (another is refused while any of its sessions
// lives), and of that volume, one worker per replica set. A worker holds
// its set's session while it renews it (Handshake, KeepAlive); several
// workers of different sets, on several master nodes, hold sessions at
// once. When the slave has a lease store, a session also holds its set's
// lease on the slave volume (package lease), which is what excludes the
// set's other workers across every slave node serving the volume; a
// session that loses its lease is ended, and everything it started with
// it (its context is cancelled: a running rsync stream stops).
//
// A new session of the worker that holds its set's session takes over at
// once (a restarted daemon): the old session id is invalid from then on.
// A session without a worker id (a master older than replica sets) is
// taken over by any session of its set.
type sessions struct {
	mu       sync.Mutex
	now      func() time.Time
	maxLease time.Duration
	// leases is the slave volume's lease store (nil: sessions exclude each
	// other within this process only).
	leases *lease.Store
	log    *slog.Logger
	// alive is called after each round of watch (nil: nothing).
	alive func()

	byID  map[string]*session
	bySet map[string]*session // by setKey
}

type session struct {
	id, volume, node, set, worker string
	lease                         time.Duration // agreed at Handshake
	expires                       time.Time
	hold                          *lease.Lease // nil without a lease store
	ctx                           context.Context
	cancel                        context.CancelCauseFunc
}

func setKey(volume, set string) string { return volume + "/" + set }

// errHeld is returned when another master volume holds a session.
type errHeld struct {
	volume, node string
	until        time.Time
}

func (e *errHeld) Error() string {
	return fmt.Sprintf("replica is held by master volume %s (%s) until %s; a second master is refused",
		e.volume, e.node, e.until.UTC().Format(time.RFC3339))
}

// errLeaseHeld is returned when another worker of the replica set holds
// its lease: the worker stays Passive.
type errLeaseHeld struct {
	set    string
	holder lease.Record
	err    error
}

func (e *errLeaseHeld) Error() string { return e.err.Error() }

func (e *errLeaseHeld) grpcStatus() error {
	return rpc.StatusWithInfo(codes.Aborted, e.Error(), rpc.ReasonLeaseHeld, map[string]string{
		"replica_set": e.set,
		"worker":      e.holder.Worker,
		"slave":       e.holder.Slave,
		"epoch":       strconv.FormatUint(e.holder.Epoch, 10),
		"since":       e.holder.Since.UTC().Format(time.RFC3339),
	})
}

// opened is what open grants.
type opened struct {
	id    string
	lease time.Duration
	epoch uint64
	stime time.Time
}

func (s *sessions) init() {
	if s.byID == nil {
		s.byID, s.bySet = map[string]*session{}, map[string]*session{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
}

func (s *sessions) open(volume, node, set, worker string, leaseFor time.Duration) (opened, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	now := s.now()
	s.expireLocked(now)
	if err := s.heldByOtherLocked(volume, now); err != nil {
		return opened{}, err
	}
	if leaseFor <= 0 || leaseFor > s.maxLease {
		leaseFor = s.maxLease
	}
	key := setKey(volume, set)
	var hold *lease.Lease
	if old := s.bySet[key]; old != nil {
		if old.worker != worker && old.worker != "" && worker != "" {
			rec := lease.Record{Worker: old.worker, Master: old.node}
			if old.hold != nil {
				rec = old.hold.Record()
			}
			return opened{}, &errLeaseHeld{set: set, holder: rec, err: &lease.HeldError{Set: set, Holder: rec}}
		}
		// The same worker again (a restarted daemon): the lease passes
		// to the new session; the old one ends.
		hold, old.hold = old.hold, nil
		s.endLocked(old, errors.New("taken over by a new session of the same worker"))
	}
	if hold == nil && s.leases != nil {
		l, err := s.leases.Acquire(set, worker, node)
		var held *lease.HeldError
		if errors.As(err, &held) {
			return opened{}, &errLeaseHeld{set: set, holder: held.Holder, err: err}
		}
		if err != nil {
			return opened{}, err
		}
		hold = l
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		if hold != nil {
			hold.Release("no session id")
		}
		return opened{}, fmt.Errorf("session id: %w", err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	ss := &session{id: hex.EncodeToString(b[:]), volume: volume, node: node, set: set, worker: worker,
		lease: leaseFor, expires: now.Add(leaseFor), hold: hold, ctx: ctx, cancel: cancel}
	s.byID[ss.id], s.bySet[key] = ss, ss
	o := opened{id: ss.id, lease: leaseFor}
	if hold != nil {
		rec := hold.Record()
		o.epoch, o.stime = rec.Epoch, rec.Stime
	}
	return o, nil
}

// endLocked ends a session: its calls are refused from now on, what runs
// in its name is cancelled, and its lease (if it still has it) is released.
func (s *sessions) endLocked(ss *session, why error) {
	delete(s.byID, ss.id)
	if s.bySet[setKey(ss.volume, ss.set)] == ss {
		delete(s.bySet, setKey(ss.volume, ss.set))
	}
	ss.cancel(why)
	if ss.hold != nil {
		ss.hold.Release(why.Error())
		ss.hold = nil
	}
}

// expireLocked ends the sessions whose lease ran out.
func (s *sessions) expireLocked(now time.Time) {
	for _, ss := range s.byID {
		if now.After(ss.expires) {
			s.log.Info("session expired: its lease was not renewed", "master_volume", ss.volume, "master_node", ss.node,
				"replica_set", ss.set, "worker", ss.worker, "expired", ss.expires)
			s.endLocked(ss, fmt.Errorf("session expired at %s", ss.expires.UTC().Format(time.RFC3339)))
		}
	}
}

// heldByOther returns an *errHeld when a master volume other than volume
// holds a live session.
func (s *sessions) heldByOther(volume string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	return s.heldByOtherLocked(volume, s.now())
}

func (s *sessions) heldByOtherLocked(volume string, now time.Time) error {
	for _, ss := range s.byID {
		if ss.volume != volume && now.Before(ss.expires) {
			return &errHeld{volume: ss.volume, node: ss.node, until: ss.expires}
		}
	}
	return nil
}

// check verifies that id is a live session and renews its lease when renew
// is set. With fence, it also checks that the session still holds its
// replica set's lease on the slave volume (every mutating call does); a
// session that lost it is ended. It returns the session's context, done
// when the session ends.
func (s *sessions) check(id string, renew, fence bool) (context.Context, error) {
	s.mu.Lock()
	s.init()
	now := s.now()
	ss := s.byID[id]
	switch {
	case id == "":
		s.mu.Unlock()
		return nil, fmt.Errorf("no session: call Handshake and send its session id as %q metadata", sessionKey)
	case ss == nil:
		s.mu.Unlock()
		return nil, fmt.Errorf("session %.8s… is not the current session (it expired, another worker took over or the slave restarted): handshake again", id)
	case now.After(ss.expires) && !renew:
		s.endLocked(ss, fmt.Errorf("session expired at %s", ss.expires.UTC().Format(time.RFC3339)))
		s.mu.Unlock()
		return nil, fmt.Errorf("session %.8s… expired at %s: handshake again", id, ss.expires.UTC().Format(time.RFC3339))
	}
	if renew {
		ss.expires = now.Add(ss.lease)
	}
	hold := ss.hold
	s.mu.Unlock()
	if fence && hold != nil {
		if err := hold.Check(); err != nil {
			if errors.Is(err, lease.ErrLost) {
				s.end(id, err)
				s.log.Error("session fenced: it lost its replica set's lease", "master_volume", ss.volume, "master_node", ss.node,
					"replica_set", ss.set, "worker", ss.worker, "err", err)
				return nil, fmt.Errorf("session %.8s… is not the current session: %v", id, err)
			}
			return nil, err
		}
	}
	return ss.ctx, nil
}

// end ends session id (Release, a lost lease).
func (s *sessions) end(id string, why error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	if ss := s.byID[id]; ss != nil {
		s.endLocked(ss, why)
	}
}

// setStime records t as the stime of session id's replica set, in its
// lease (nothing without a lease store).
func (s *sessions) setStime(id string, t time.Time) error {
	s.mu.Lock()
	ss := s.byID[id]
	var hold *lease.Lease
	if ss != nil {
		hold = ss.hold
	}
	s.mu.Unlock()
	if hold == nil {
		return nil
	}
	return hold.SetStime(t)
}

// watch ends expired sessions and checks the leases of live ones every
// interval until ctx is done, so that a set's lease goes when its worker
// stops renewing it (another slave node's session may take it), and a
// session whose lease the volume gave to another stops what it runs.
func (s *sessions) watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.mu.Lock()
			for _, ss := range s.byID {
				s.endLocked(ss, errors.New("the slave is stopping"))
			}
			s.mu.Unlock()
			return
		case <-t.C:
		}
		s.mu.Lock()
		s.init()
		s.expireLocked(s.now())
		var ids []string
		for id, ss := range s.byID {
			if ss.hold != nil {
				ids = append(ids, id)
			}
		}
		s.mu.Unlock()
		for _, id := range ids {
			_, _ = s.check(id, false, true)
		}
		if s.alive != nil {
			s.alive()
		}
	}
}
