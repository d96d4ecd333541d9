// Package syncer ships file data to the slave: a fixed pool of sync jobs fed
// by a staged queue, each job one rsync run over the gRPC tunnel for
// everything queued when it became free. It is gsyncd's master.py Syncer and
// PostBox, with resource.py's rsync invocation; see "Data: rsync over gRPC"
// in ARCHITECTURE.md.
//
// Entry ops create every inode on the slave first; the syncer only fills in
// data, mode, ownership and times of regular files that exist there
// (rsync --existing --inplace into .georep/gfid/ab/<gfid>).
package syncer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/georep/georep/rpc/gfid"
)

// DefaultJobs is the default number of sync jobs (gsyncd's sync-jobs).
const DefaultJobs = 3

// ErrStopped is the failure of items still queued when Run returned, or
// queued after that.
var ErrStopped = errors.New("syncer stopped")

// Item is one regular file to ship.
type Item struct {
	GFID gfid.GFID
	// Path is the absolute path of the source regular file.
	Path string
}

// Config configures a Syncer.
type Config struct {
	// Jobs is the number of concurrent rsync runs; DefaultJobs when zero.
	Jobs int
	// RsyncPath is the rsync binary; "rsync" looked up in PATH when empty.
	RsyncPath string
	// RsyncOptions are extra user options (gsyncd's rsync-options),
	// appended after the syncer's own.
	RsyncOptions []string
	// SyncACLs adds -A: rsync reads the ACLs of the staged file through its
	// symlink.
	SyncACLs bool
	// SyncXattrs does not add -X, and New logs that. rsync -X reads the
	// staging symlink's own xattrs, not the file's (--copy-links does not
	// apply to them), and a receiving rsync -X running as root removes every
	// xattr it was not sent, trusted.georep.gfid included; the slave refuses
	// X for that reason. User xattrs ship with MetaOps (Meta.set_xattrs).
	SyncXattrs bool
	// Tunnel is the command rsync runs as its remote shell, e.g.
	// ["/usr/bin/georep-master", "rsync-tunnel", "--slave", "host:7100",
	// "--session", "ID"]. Each element is passed to the command as one
	// argument, whatever it contains.
	Tunnel []string
	// StageDir is a scratch directory in the master's work dir that this
	// Syncer owns: stale job directories in it are removed.
	StageDir string
	// Log receives the syncer's log; discarded when nil.
	Log *slog.Logger
	// OnRun, when not nil, is told how long each rsync run took and how it
	// ended (the master's metrics).
	OnRun func(time.Duration, error)
}

// Stats counts what a Syncer shipped.
type Stats struct {
	// Runs is the number of rsync runs, successful or not.
	Runs int64
	// Files and Bytes count the files (and their sizes at staging time) of
	// the successful runs.
	Files, Bytes int64
}

// Syncer is a pool of sync jobs. Run runs them, once; Sync may be called
// from any goroutine, before or while Run runs, and returns once the workers
// have shipped (or failed) the items.
type Syncer struct {
	cfg     Config
	rsync   string   // resolved binary
	options []string // rsync options before the source and destination
	// sparseOptions add --sparse, for the files that have holes; nil when
	// this rsync cannot combine it with --inplace. (--sparse scans every
	// block for zeros: it costs more than twice the time on dense data.)
	sparseOptions []string
	log           *slog.Logger

	// ship runs one job; rsync by default, replaced in tests.
	ship func(ctx context.Context, j *job) error

	mu      sync.Mutex
	queue   []*ticket     // what the next free worker takes, all of it
	started bool          // Run was called
	isDone  bool          // Run has returned
	stopped chan struct{} // closed when Run returns
	wake    chan struct{} // one token: there is work

	seq                atomic.Int64
	runs, files, bytes atomic.Int64
}

// ticket is one Sync call waiting for its items (gsyncd's PostBox).
type ticket struct {
	items []Item
	errs  map[gfid.GFID]error // written by the worker before done is closed
	done  chan struct{}
}

// New validates cfg, fills in defaults and checks that rsync is installed.
func New(cfg Config) (*Syncer, error) {
	if cfg.Jobs == 0 {
		cfg.Jobs = DefaultJobs
	}
	if cfg.Jobs < 0 {
		return nil, fmt.Errorf("sync jobs %d: must be positive", cfg.Jobs)
	}
	if cfg.RsyncPath == "" {
		cfg.RsyncPath = "rsync"
	}
	if len(cfg.Tunnel) == 0 || cfg.Tunnel[0] == "" {
		return nil, errors.New("syncer: no tunnel command")
	}
	for _, a := range cfg.Tunnel {
		if strings.IndexByte(a, 0) >= 0 {
			return nil, fmt.Errorf("syncer: tunnel argument %q contains a NUL byte", a)
		}
	}
	if cfg.StageDir == "" || !filepath.IsAbs(cfg.StageDir) {
		return nil, fmt.Errorf("syncer: stage directory %q is not an absolute path", cfg.StageDir)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	bin, err := exec.LookPath(cfg.RsyncPath)
	if err != nil {
		return nil, fmt.Errorf("rsync not found (%s): install the Debian package rsync: %w", cfg.RsyncPath, err)
	}
	if err := os.MkdirAll(cfg.StageDir, 0o700); err != nil {
		return nil, fmt.Errorf("syncer: %w", err)
	}
	s := &Syncer{
		cfg:     cfg,
		rsync:   bin,
		options: rsyncOptions(cfg, false),
		log:     cfg.Log,
		stopped: make(chan struct{}),
		wake:    make(chan struct{}, 1),
	}
	if sparseWithInplace(bin) {
		s.sparseOptions = rsyncOptions(cfg, true)
	}
	s.ship = s.rsyncJob
	if cfg.SyncXattrs {
		s.log.Info("sync-xattrs: xattrs ship with meta ops, not with rsync -X")
	}
	return s, nil
}

// Run runs the sync jobs until ctx is done and returns after all of them have
// exited, with ctx's error. Items still queued then fail with ErrStopped. A
// Syncer runs once: a second Run returns an error at once.
func (s *Syncer) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("syncer: Run called twice")
	}
	s.started = true
	s.mu.Unlock()
	s.kick() // for what Sync queued before Run

	if err := s.removeStale(); err != nil {
		s.log.Warn("cannot clean stage directory", "stage_dir", s.cfg.StageDir, "err", err)
	}
	s.log.Info("sync jobs started", "jobs", s.cfg.Jobs)
	var wg sync.WaitGroup
	for n := range s.cfg.Jobs {
		wg.Go(func() { s.worker(ctx, n) })
	}
	wg.Wait()

	s.mu.Lock()
	s.isDone = true
	left := s.queue
	s.queue = nil
	close(s.stopped)
	s.mu.Unlock()
	for _, t := range left {
		t.resolve(ErrStopped)
	}
	s.log.Info("sync jobs stopped")
	return ctx.Err()
}

// Sync queues items and waits until every one of them has been shipped or
// has failed, or ctx is done. It returns the failed items with the reason;
// an empty map means all were shipped. A gfid queued twice is shipped once.
// When ctx ends first, every item not known to be shipped fails with ctx's
// error; the job that holds them still runs to its end.
func (s *Syncer) Sync(ctx context.Context, items []Item) map[gfid.GFID]error {
	if len(items) == 0 {
		return nil
	}
	t := &ticket{items: items, done: make(chan struct{})}
	s.mu.Lock()
	if s.isDone {
		s.mu.Unlock()
		t.resolve(ErrStopped)
		return t.errs
	}
	s.queue = append(s.queue, t)
	s.mu.Unlock()
	s.kick()

	select {
	case <-t.done:
		return t.errs
	case <-ctx.Done():
	case <-s.stopped:
		// Run resolves what is left in the queue; a job in flight when it
		// stopped resolves its own tickets before Run returns.
		<-t.done
		return t.errs
	}
	errs := make(map[gfid.GFID]error, len(items))
	for _, it := range items {
		errs[it.GFID] = ctx.Err()
	}
	return errs
}

// QueueLen returns the number of Sync calls waiting for a free job.
func (s *Syncer) QueueLen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// Stats returns what the Syncer has shipped so far.
func (s *Syncer) Stats() Stats {
	return Stats{Runs: s.runs.Load(), Files: s.files.Load(), Bytes: s.bytes.Load()}
}

func (s *Syncer) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// take empties the queue (the staged queue: a free worker takes it all).
func (s *Syncer) take() []*ticket {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue
	s.queue = nil
	return q
}

func (s *Syncer) worker(ctx context.Context, n int) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
		for ctx.Err() == nil {
			tickets := s.take()
			if len(tickets) == 0 {
				break
			}
			s.runJob(ctx, n, tickets)
		}
	}
}

// runJob ships the items of tickets in one rsync run and resolves them.
func (s *Syncer) runJob(ctx context.Context, n int, tickets []*ticket) {
	j := &job{
		dir:   filepath.Join(s.cfg.StageDir, fmt.Sprintf("job-%d-%d", n, s.seq.Add(1))),
		byID:  make(map[gfid.GFID]Item),
		fails: make(map[gfid.GFID]error),
	}
	for _, t := range tickets {
		for _, it := range t.items {
			if _, ok := j.byID[it.GFID]; ok {
				continue
			}
			if _, ok := j.fails[it.GFID]; ok {
				continue
			}
			if err := checkItem(it); err != nil {
				j.fails[it.GFID] = err
				continue
			}
			j.byID[it.GFID] = it
		}
	}
	log := s.log.With("job", n, "stage", filepath.Base(j.dir))
	var runErr error
	if len(j.byID) > 0 {
		runErr = s.ship(ctx, j)
		if j.ran {
			s.runs.Add(1)
		}
		if runErr == nil {
			s.files.Add(int64(len(j.shipped)))
			s.bytes.Add(j.bytes)
			log.Debug("sync job done", "files", len(j.shipped), "bytes", j.bytes)
		} else {
			log.Warn("sync job failed", "files", len(j.byID), "err", runErr)
		}
	}
	for _, t := range tickets {
		for _, it := range t.items {
			err := j.fails[it.GFID]
			if err == nil && runErr != nil {
				err = runErr
			}
			if err != nil {
				if t.errs == nil {
					t.errs = make(map[gfid.GFID]error)
				}
				t.errs[it.GFID] = err
			}
		}
		close(t.done)
	}
}

// resolve fails every item of t with err.
func (t *ticket) resolve(err error) {
	t.errs = make(map[gfid.GFID]error, len(t.items))
	for _, it := range t.items {
		t.errs[it.GFID] = err
	}
	close(t.done)
}

func checkItem(it Item) error {
	if it.GFID.IsZero() {
		return errors.New("zero gfid")
	}
	if !filepath.IsAbs(it.Path) {
		return fmt.Errorf("source path %q is not absolute", it.Path)
	}
	return nil
}

// removeStale removes job directories left by a previous process.
func (s *Syncer) removeStale() error {
	ents, err := os.ReadDir(s.cfg.StageDir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "job-") {
			errs = append(errs, os.RemoveAll(filepath.Join(s.cfg.StageDir, e.Name())))
		}
	}
	return errors.Join(errs...)
}
