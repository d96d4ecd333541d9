// Package lease keeps the leases of a master volume's replica sets on the
// slave volume, so that one worker of a replica set, on whichever master
// node, applies changes at a time, through whichever slave node.
//
// A lease is a POSIX lock (an open file description lock, held by the
// georep-slave process that serves the holder's session) on the file
// <root>/.georep/leases/<set>.lease, on the slave volume itself: on a
// GlusterFS volume the brick that holds the file grants the lock, and
// releases it when the slave node that holds it dies or is cut off (the
// volume's network.ping-timeout), which is what lets another slave node
// take it. No consensus of our own: the volume's lock is the truth.
//
// The file holds the lease's record (epoch, holder, the set's stime): each
// new holder writes one more epoch. A holder checks before every mutating
// call that it still holds the lock and that the epoch is still its own
// (Check); a holder that lost it (its slave node was cut off from the
// brick, and another took the lock) applies nothing more. Every
// acquisition and release is appended to <set>.log beside it, the lease
// holders' history an operator (or a test) reads.
package lease

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Dir is where the leases live, relative to the replica root.
const Dir = ".georep/leases"

// Record is what a lease file holds: who holds the set now (or last held
// it) and the set's stime as its holder last recorded it.
type Record struct {
	Epoch  uint64    `json:"epoch"`
	Worker string    `json:"worker"`         // the master worker (node and brick)
	Master string    `json:"master"`         // the master process, for messages
	Slave  string    `json:"slave"`          // the slave node serving its session
	Since  time.Time `json:"since"`          // when it took the lease
	Stime  time.Time `json:"stime,omitzero"` // the set's stime
}

// Event is one line of a set's lease log.
type Event struct {
	Time   time.Time `json:"time"`
	Event  string    `json:"event"` // acquired, released, lost
	Epoch  uint64    `json:"epoch"`
	Worker string    `json:"worker"`
	Master string    `json:"master,omitempty"`
	Slave  string    `json:"slave"`
	Reason string    `json:"reason,omitempty"`
	// Checked is, on a release or a loss, the last time the holder found
	// it still held the lease: every mutating call it let through passed
	// that check first, so nothing of its epoch was applied after the
	// next holder's acquisition unless Checked is later than it.
	Checked time.Time `json:"checked,omitzero"`
}

// HeldError says that another worker holds the set's lease.
type HeldError struct {
	Set    string
	Holder Record
}

func (e *HeldError) Error() string {
	h := e.Holder
	return fmt.Sprintf("replica set %s is held by worker %s (%s) through slave %s since %s (lease epoch %d)",
		setName(e.Set), h.Worker, h.Master, h.Slave, h.Since.UTC().Format(time.RFC3339), h.Epoch)
}

// ErrLost is returned by Check once the lease is lost.
var ErrLost = errors.New("lease lost")

// Store is the lease directory of one replica; safe for concurrent use.
type Store struct {
	dir   string
	slave string // this slave node's name, for records
	now   func() time.Time
	mu    sync.Mutex
	held  map[string]*Lease // the sets this process holds
}

// Open opens (creating it when needed) the lease directory under root.
func Open(root, slave string) (*Store, error) {
	dir := filepath.Join(root, Dir)
	if err := os.MkdirAll(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("lease directory: %w", err)
	}
	return &Store{dir: dir, slave: slave, now: time.Now, held: map[string]*Lease{}}, nil
}

// Lease is a held lease.
type Lease struct {
	s   *Store
	set string
	f   *os.File
	mu  sync.Mutex
	rec Record
	err error     // set once lost or released
	ok  time.Time // the last Check that found the lease held
}

// Acquire takes the lease of set for worker, or says who holds it
// (*HeldError). A set this process already holds is held: the caller
// hands a lease over between its own sessions (Lease stays valid).
func (s *Store) Acquire(set, worker, master string) (*Lease, error) {
	if err := checkSet(set); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.held[set]; ok {
		return nil, &HeldError{Set: set, Holder: l.Record()}
	}
	f, err := openFile(s, set)
	if err != nil {
		return nil, fmt.Errorf("lease of replica set %s: %w", setName(set), err)
	}
	if err := lock(f); err != nil {
		rec, _ := readRecord(f)
		f.Close()
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
			return nil, &HeldError{Set: set, Holder: rec}
		}
		return nil, fmt.Errorf("lock the lease of replica set %s: %w", setName(set), err)
	}
	prev, err := readRecord(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lease of replica set %s: %w", setName(set), err)
	}
	rec := Record{Epoch: prev.Epoch + 1, Worker: worker, Master: master, Slave: s.slave, Since: s.now().UTC(), Stime: prev.Stime}
	if err := writeRecord(f, rec); err != nil {
		f.Close()
		return nil, fmt.Errorf("lease of replica set %s: %w", setName(set), err)
	}
	l := &Lease{s: s, set: set, f: f, rec: rec, ok: rec.Since}
	s.held[set] = l
	s.logEvent(set, Event{Event: "acquired", Epoch: rec.Epoch, Worker: worker, Master: master})
	return l, nil
}

func openFile(s *Store, set string) (*os.File, error) {
	return os.OpenFile(filepath.Join(s.dir, fileName(set)+".lease"), os.O_RDWR|os.O_CREATE, 0o600)
}

// Record returns the lease's record as this holder knows it.
func (l *Lease) Record() Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rec
}

// Check says whether the lease is still held: the lock is still this
// holder's (taken again if the volume dropped it and nobody took it since)
// and the epoch on the volume is still its own. Once it fails, it always
// fails (the caller ends the session).
func (l *Lease) Check() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	lost := func(why string) error {
		l.err = fmt.Errorf("%w: replica set %s, epoch %d: %s", ErrLost, setName(l.set), l.rec.Epoch, why)
		l.s.logEvent(l.set, Event{Event: "lost", Epoch: l.rec.Epoch, Worker: l.rec.Worker, Master: l.rec.Master, Reason: why, Checked: l.ok})
		l.drop()
		return l.err
	}
	if err := lock(l.f); err != nil {
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
			rec, _ := readRecord(l.f)
			return lost(fmt.Sprintf("now held by worker %s through slave %s (epoch %d)", rec.Worker, rec.Slave, rec.Epoch))
		}
		// The volume cannot say (a brick unreachable): applying now could
		// race a new holder, so refuse this call, but keep the lease:
		// the next check may succeed.
		return fmt.Errorf("lease of replica set %s cannot be checked: %w", setName(l.set), err)
	}
	rec, err := readRecord(l.f)
	if err != nil {
		return fmt.Errorf("lease of replica set %s cannot be checked: %w", setName(l.set), err)
	}
	if rec.Epoch != l.rec.Epoch {
		return lost(fmt.Sprintf("epoch %d was taken by worker %s through slave %s since", rec.Epoch, rec.Worker, rec.Slave))
	}
	l.ok = l.s.now().UTC()
	return nil
}

// SetStime records the set's stime in the lease (the holder's only).
func (l *Lease) SetStime(t time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	if !t.After(l.rec.Stime) {
		return nil
	}
	rec := l.rec
	rec.Stime = t.UTC()
	if err := writeRecord(l.f, rec); err != nil {
		return fmt.Errorf("record the stime of replica set %s: %w", setName(l.set), err)
	}
	l.rec = rec
	return nil
}

// Release gives the lease up (idempotent).
func (l *Lease) Release(reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return
	}
	l.err = fmt.Errorf("%w: replica set %s, epoch %d: released (%s)", ErrLost, setName(l.set), l.rec.Epoch, reason)
	l.s.logEvent(l.set, Event{Event: "released", Epoch: l.rec.Epoch, Worker: l.rec.Worker, Master: l.rec.Master, Reason: reason, Checked: l.ok})
	l.drop()
}

// drop closes the lock's file and forgets the lease (l.mu held).
func (l *Lease) drop() {
	l.f.Close()
	l.s.mu.Lock()
	if l.s.held[l.set] == l {
		delete(l.s.held, l.set)
	}
	l.s.mu.Unlock()
}

// Read returns the record of set's lease as the volume holds it (no lock).
func (s *Store) Read(set string) (Record, error) {
	if err := checkSet(set); err != nil {
		return Record{}, err
	}
	f, err := os.Open(filepath.Join(s.dir, fileName(set)+".lease"))
	if errors.Is(err, os.ErrNotExist) {
		return Record{}, nil
	}
	if err != nil {
		return Record{}, err
	}
	defer f.Close()
	return readRecord(f)
}

// logEvent appends ev to the set's lease log; a failure is not the
// lease's (the record is in the lease file).
func (s *Store) logEvent(set string, ev Event) {
	ev.Time, ev.Slave = s.now().UTC(), s.slave
	b, err := json.Marshal(ev)
	if err != nil {
		return
	}
	f, err := os.OpenFile(filepath.Join(s.dir, fileName(set)+".log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = f.Write(append(b, '\n'))
}

// ReadLog returns the events of set's lease log, oldest first.
func ReadLog(root, set string) ([]Event, error) {
	b, err := os.ReadFile(filepath.Join(root, Dir, fileName(set)+".log"))
	if err != nil {
		return nil, err
	}
	var evs []Event
	for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var ev Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			return nil, fmt.Errorf("lease log of replica set %s: %w", setName(set), err)
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

// lock takes the write lock of the whole file without waiting: an open
// file description lock, so that two sessions of one process are told
// apart and closing another descriptor of the file drops nothing; a
// classic POSIX lock where the file system lacks them.
func lock(f *os.File) error {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
	if errors.Is(err, unix.EINVAL) {
		err = unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk)
	}
	return err
}

func readRecord(f *os.File) (Record, error) {
	b := make([]byte, 4096)
	n, err := f.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return Record{}, err
	}
	var rec Record
	if s := strings.TrimSpace(string(b[:n])); s != "" {
		if err := json.Unmarshal([]byte(s), &rec); err != nil {
			return Record{}, fmt.Errorf("lease record %s: %w", f.Name(), err)
		}
	}
	return rec, nil
}

// writeRecord replaces the record in place (the lock is on the file: it
// cannot be replaced by a rename). A record is one write of at most a
// few hundred bytes, padded with spaces to the old length first so a
// reader never sees the tail of a longer one.
func writeRecord(f *os.File, rec Record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if st, err := f.Stat(); err == nil && st.Size() > int64(len(b)) {
		b = append(b, []byte(strings.Repeat(" ", int(st.Size())-len(b)))...)
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		return err
	}
	return f.Sync()
}

// checkSet refuses a set name that is not a plain file name part.
func checkSet(set string) error {
	if len(set) > 64 || strings.ContainsAny(set, "/\x00") || set == "." || set == ".." {
		return fmt.Errorf("replica set %q: not a replica set name", set)
	}
	return nil
}

func fileName(set string) string {
	if set == "" {
		return "volume"
	}
	return "set-" + set
}

func setName(set string) string {
	if set == "" {
		return "(the whole volume)"
	}
	return set
}
