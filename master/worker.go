package master

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/georep/georep/master/catalog"
	"github.com/georep/georep/master/crawl"
	"github.com/georep/georep/master/glusterfs"
	"github.com/georep/georep/master/syncer"
	"github.com/georep/georep/rpc"
	"github.com/georep/georep/rpc/backoff"
	"github.com/georep/georep/rpc/gfid"
	"golang.org/x/sys/unix"
)

// ErrNotConverged is returned by a --oneshot run that could not bring the
// slave in line with the source before its deadline.
var ErrNotConverged = errors.New("not converged")

type worker struct {
	cfg    Config
	log    *slog.Logger
	wd     *workDir
	cat    *catalog.Catalog
	client *slaveClient // the session: handshake, keep-alive
	slave  slaveAPI     // the calls the pipeline makes (client, or a fake in tests)
	data   dataSyncer
	batch  int // entries per call: entry-batch capped by the slave's max-batch
	// guardAnnounced is the guard whose refusal was announced as an event
	// ("" once a pass runs again): one event per refusal, not per retry.
	guardAnnounced string
	stats          crawlStats
	session        bool // a session is open
	// sessionGen is the client's session generation this worker adopted.
	sessionGen int64
	verified   bool // the slave has been compared with the source in this session
	// verifyPutOff: a --oneshot pass that changed the slave left verify to
	// the pass that confirms it (once a run).
	verifyPutOff bool
	// fresh is set while the pass of a first sync into an empty slave
	// runs (see pass), in session generation freshGen: every inode the
	// pass creates on the slave is new there.
	fresh    bool
	freshGen int64
	// needFull asks the worker loop (worker_loop.go) for a hybrid crawl:
	// at start, after the change source lost track, or when the park held
	// entries.
	needFull bool
	failures *failureQueue
	brick    *brickState // a GlusterFS brick worker; nil for a plain directory
	// staleData holds the files whose data was not shipped because they
	// had moved since the crawl: the next live pass re-examines them where
	// the catalog then puts them (a hybrid crawl finds them anyway).
	staleData map[gfid.GFID]bool
	// partial is set when the source holds only part of the namespace (a
	// brick of a volume distributed over several): verify purges nothing.
	partial bool
	syncer  *syncer.Syncer

	// What the operator interface (master/status.go) sees and steers.
	mon   *monitor     // nil in tests
	entry *workerEntry // the worker in mon
	prog  atomic.Pointer[progress]
	// shippedFiles and shippedBytes count the data shipped (the rates).
	shippedFiles, shippedBytes atomic.Int64
	// wake interrupts the wait between passes; tick then asks for a pass
	// even without changes (a checkpoint), retryNow for a retry of the
	// failure queue.
	wake           chan struct{}
	tick, retryNow atomic.Bool
	// auditWoke says that the last wake was the audit's timer (due, or
	// its rate's wait over), not a reason for a pass.
	auditWoke    atomic.Bool
	failedInARow int // passes that failed in a row (plain directory)
	// acceptSource is accept-new-source, until a pass has used it; srcID
	// is the source's identity as recorded (guardSource).
	acceptSource bool
	srcID        *sourceIdentity
	guardHeld    bool // Faulty because a safety guard refused the last pass
	// audit is the daemon's audit of the replica (audit.go); nil with
	// --oneshot.
	audit *auditor
	// lastCrawl is the totals of the last hybrid crawl.
	lastCrawl crawl.Stats
	// xtime is the answer of the mark of the slave's root in flight
	// (markXtime); nil: none.
	xtime chan error
}

// errNeedFull is returned by a changelog pass that cannot work from its
// change source alone: a hybrid crawl must run first.
var errNeedFull = errors.New("a hybrid crawl is needed")

// Run runs the master until ctx is done (daemon) or, with Oneshot, until the
// slave has converged to the source.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	var err error
	if err = cfg.Validate(); err != nil {
		return err
	}
	if cfg.DryRun {
		if cfg.MaxDelete, err = liveDeleteLimit(cfg.WorkDir, cfg.MaxDelete); err != nil {
			return err
		}
		return dryRun(ctx, cfg, os.Stdout, log)
	}
	rsyncPath, err := exec.LookPath(cfg.RsyncPath)
	if err != nil {
		return fmt.Errorf("rsync-command %q not found: install the Debian package rsync", cfg.RsyncPath)
	}
	self := cfg.Self
	if self == "" {
		if self, err = os.Executable(); err != nil {
			return fmt.Errorf("locating georep-master for the rsync tunnel: %w", err)
		}
	}
	wd, err := openWorkDir(cfg.WorkDir)
	if err != nil {
		return err
	}
	defer wd.close()
	mon, err := newMonitor(cfg, wd, log)
	if err != nil {
		return err
	}
	octx, ocancel := context.WithCancel(ctx)
	var ops sync.WaitGroup
	defer ops.Wait()
	defer ocancel()
	if err := mon.start(octx, &ops); err != nil {
		return err
	}
	if cfg.Ready != nil {
		cfg.Ready()
	}
	if cfg.GlusterVolume != "" {
		return runGluster(ctx, cfg, wd, mon, rsyncPath, self, log)
	}
	volumeID, err := wd.volumeID()
	if err != nil {
		return err
	}
	client, err := newSlaveClient(cfg, volumeID, wd.path("session"), wd.path("tunnel.sock"), mon.bw, mon.metrics)
	if err != nil {
		return err
	}
	defer client.Close()
	w, err := newWorker(cfg, wd, client, rsyncPath, self, log)
	if err != nil {
		return err
	}
	defer w.close()
	mon.add(w, cfg.Source)
	w.setStatus(stateInitializing, "")
	limitMemory(1)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { w.runSyncer(ctx) })
	wg.Go(func() { client.keepAliveLogged(ctx, log) })

	log.Info("master starting", "source", cfg.Source, "slave", cfg.Slave, "work_dir", cfg.WorkDir,
		"volume_id", volumeID, "sync_jobs", cfg.SyncJobs, "oneshot", cfg.Oneshot)
	if cfg.Oneshot {
		return w.oneshot(ctx)
	}
	if cfg.ChangeDetector == DetectorChangelog {
		lj, err := startJournal(ctx, cfg, wd, log)
		if err == nil {
			defer lj.close()
			return w.restarting(ctx, func(ctx context.Context) error { return w.run(ctx, w.journalSource(lj)) })
		}
		log.Warn("no change journal: falling back to a hybrid crawl every change-interval", "err", err, "change_interval", cfg.ChangeInterval)
	}
	return w.restarting(ctx, func(ctx context.Context) error { return w.run(ctx, w.crawlSource()) })
}

// faultyAfter is how many passes in a row must fail before a
// plain-directory worker is Faulty.
const faultyAfter = 2

// passResult keeps a plain-directory worker's state: Active after a pass
// that reached the slave, Faulty with the reason once passes keep failing.
// Brick workers' state is their supervisor's (supervise).
func (w *worker) passResult(err error) {
	if w.mon == nil {
		return
	}
	var partial *partialError
	ran := err == nil || errors.As(err, &partial) || errors.Is(err, errNeedFull)
	switch {
	case errors.Is(err, ErrGuard):
		// A guard holds any worker, a brick's too, Faulty with its reason
		// until the operator proceeds.
		if !w.guardHeld || w.stats.WorkerStatus != stateFaulty {
			w.setStatus(stateFaulty, err.Error())
		}
		w.guardHeld = true
		return
	case ran && w.guardHeld:
		w.guardHeld = false
		w.setStatus(stateActive, "")
		w.log.Info("worker Active: the safety guard no longer refuses")
	}
	if w.brick != nil {
		return
	}
	if ran {
		w.failedInARow = 0
		if w.stats.WorkerStatus != stateActive {
			w.setStatus(stateActive, "")
			w.log.Info("worker Active")
		}
		return
	}
	w.failedInARow++
	if w.failedInARow >= faultyAfter && w.stats.WorkerStatus != stateFaulty {
		w.setStatus(stateFaulty, err.Error())
		w.log.Error("worker Faulty: passes keep failing; retrying with backoff", "reason", err, "failed_passes", w.failedInARow)
	}
}

// nudge interrupts the worker's wait between passes: for a retry of the
// failure queue (retry), or for a pass even without changes.
func (w *worker) nudge(retry bool) {
	if retry {
		w.retryNow.Store(true)
	} else {
		w.tick.Store(true)
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// changeInterval is change-interval, as last set through the status
// service.
func (w *worker) changeInterval() time.Duration {
	if w.mon != nil {
		return w.mon.changeInterval()
	}
	return w.cfg.ChangeInterval
}

// newWorker sets up a worker on its work dir: the catalog, the sync jobs,
// the failure queue. Its session goes through client, which workers may
// share. close releases what it opened.
func newWorker(cfg Config, wd *workDir, client *slaveClient, rsyncPath, self string, log *slog.Logger) (*worker, error) {
	// Changelogs a previous run left unprocessed are discarded: the catalog
	// moves only when the slave has applied, so a new crawl covers them.
	if old, _ := filepath.Glob(wd.path("xsync/XSYNC-CHANGELOG.*")); len(old) > 0 {
		log.Info("discarding changelogs of an interrupted run; the crawl will redo them", "count", len(old))
		for _, p := range old {
			os.Remove(p)
		}
	}
	cat, err := catalog.Open(wd.path("catalog.db"))
	if err != nil {
		return nil, err
	}
	tunnel := append([]string{self, "rsync-tunnel"}, client.tunnelArgs(cfg)...)
	var w *worker // set below, before the sync jobs run
	sy, err := syncer.New(syncer.Config{
		Jobs: cfg.SyncJobs, RsyncPath: rsyncPath, RsyncOptions: cfg.RsyncOptions,
		SyncACLs: cfg.SyncACLs, Tunnel: tunnel, StageDir: wd.path("stage"), Log: log,
		OnRun: func(d time.Duration, err error) { w.observeRsync(d, err) },
	})
	if err != nil {
		cat.Close()
		return nil, err
	}
	failures, err := loadFailures(wd.path("failures"))
	if err != nil {
		cat.Close()
		return nil, err
	}
	if n := failures.len(); n > 0 {
		log.Warn("failure queue from the previous run; the first crawl retries it", "failures", n)
	}
	w = &worker{cfg: cfg, log: log, wd: wd, cat: cat, client: client, slave: client, data: sy, batch: cfg.EntryBatch,
		stats: wd.loadStats(), failures: failures, needFull: true, acceptSource: cfg.AcceptNewSource, staleData: map[gfid.GFID]bool{}, syncer: sy, wake: make(chan struct{}, 1)}
	if !cfg.Oneshot && !cfg.DryRun {
		if w.audit, err = newAuditor(cfg, wd.path("audit.json")); err != nil {
			cat.Close()
			return nil, err
		}
	}
	return w, nil
}

func (w *worker) close() {
	_ = w.xtimeWait()
	w.cat.Close()
}

// runSyncer runs the sync jobs until ctx is done.
func (w *worker) runSyncer(ctx context.Context) {
	if err := w.syncer.Run(ctx); err != nil && ctx.Err() == nil {
		w.log.Error("sync jobs stopped", "err", err)
	}
}

// oneshot runs passes until one finds nothing to do and nothing failed.
// It gives up at once when only failures that retrying cannot fix are
// left, and converges when, twice in a row (a verify may have run in the
// first), all a pass found to do was for gfids the operator skipped.
func (w *worker) oneshot(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.OneshotTimeout)
	defer cancel()
	bo := backoff.Backoff{Initial: 500 * time.Millisecond, Max: 30 * time.Second}
	var last error
	onlySkipped := 0 // passes in a row that found only skipped gfids to do
	for {
		changed, err := w.pass(ctx)
		if err == nil && changed && w.failures.lastOnlySkipped() {
			onlySkipped++
		} else {
			onlySkipped = 0
		}
		switch {
		case err == nil && (!changed || onlySkipped >= 2):
			if err := w.xtimeWait(); err != nil {
				last = err
				w.log.Warn("pass did not converge; retrying", "err", err, "retry_in", bo.Current())
				if !bo.Wait(ctx, nil) {
					return fmt.Errorf("%w within oneshot-timeout %s: %v", ErrNotConverged, w.cfg.OneshotTimeout, last)
				}
				continue
			}
			attrs := []any{"files_synced", w.stats.FilesSynced, "bytes_synced", w.stats.BytesSynced}
			if n := len(w.failures.skippedList()); n > 0 {
				attrs = append(attrs, "skipped_by_the_operator", n)
			}
			w.log.Info("converged: the slave matches the source", attrs...)
			return nil
		case err == nil:
			bo.Reset()
			continue
		}
		last = err
		var refused *refusedError
		if errors.As(err, &refused) || errors.Is(err, ErrGuard) {
			return err // the slave will not change its mind by itself, nor a guard
		}
		if held := (*leaseHeldError)(nil); errors.As(err, &held) && w.brick != nil {
			// Another node's worker of this replica set is Active: it
			// replicates the set; this node has nothing to do for it.
			w.log.Info("replica set Active on another worker: nothing to do on this node", "replica_set", held.set,
				"holder", held.worker, "slave", held.slave, "since", held.since)
			return nil
		}
		var partial *partialError
		if perm := w.failures.permanentOnly(); errors.As(err, &partial) && perm != nil {
			return fmt.Errorf("%w: only failures that retrying cannot fix are left, %d (fix them on the source, or run the daemon and lift them with georepctl failures skip GFID --reason TEXT): %s",
				ErrNotConverged, len(perm), describeFailures(perm))
		}
		if ctx.Err() != nil {
			break
		}
		w.log.Warn("pass did not converge; retrying", "err", err, "retry_in", bo.Current())
		if !bo.Wait(ctx, nil) {
			break
		}
	}
	return fmt.Errorf("%w within oneshot-timeout %s: %v", ErrNotConverged, w.cfg.OneshotTimeout, last)
}

// connect opens and verifies the session when none is open.
// Brick workers of one master share the client and its session: a worker
// whose session another worker has reopened since adopts the new one
// instead of opening yet another (which would invalidate theirs).
func (w *worker) connect(ctx context.Context) error {
	if err := w.gate(ctx); err != nil {
		return err
	}
	if w.sessionOpen() {
		return nil
	}
	return w.openSession(ctx)
}

// gate waits while the operator paused the worker.
func (w *worker) gate(ctx context.Context) error {
	if w.mon != nil {
		return w.mon.gate(ctx, w.entry)
	}
	return nil
}

// sessionOpen says whether this worker's session is open and current.
func (w *worker) sessionOpen() bool {
	return w.session && w.sessionGen == w.client.gen.Load() && !w.client.lost.Load()
}

// opening is a session being opened beside a hybrid crawl (openBeside).
type opening struct {
	done chan struct{}
	err  error
}

// wait returns once the session is open, or why it could not be.
func (o *opening) wait() error {
	<-o.done
	return o.err
}

// openBeside opens the session, when none is open, while the caller
// crawls: the crawl needs the slave only for its first changes, and on a
// WAN opening a session takes a few round trips. Nothing the crawl reads
// is touched. When the session cannot be opened, stop is called, to end
// the crawl (a slave that is down must not cost a walk of the tree per
// retry).
func (w *worker) openBeside(ctx context.Context, stop func()) *opening {
	o := &opening{done: make(chan struct{})}
	if w.sessionOpen() {
		close(o.done)
		return o
	}
	go func() {
		defer close(o.done)
		if o.err = w.openSession(ctx); o.err != nil {
			stop()
		}
	}()
	return o
}

// openSession opens and verifies the session (see connect).
func (w *worker) openSession(ctx context.Context) error {
	w.client.hsMu.Lock()
	defer w.client.hsMu.Unlock()
	if g := w.client.gen.Load(); g > w.sessionGen && !w.client.lost.Load() {
		w.adopt(g)
		return nil
	}
	// The handshake is the first call: a slave that cannot be reached or
	// refuses this master's certificate fails it at the transport, and
	// only then does the health check (one round trip more) say why.
	err := w.handshake(ctx)
	if err != nil {
		if refusesSession(err) {
			return &refusedError{err}
		}
		return err
	}
	if !w.client.haveRsync {
		return &refusedError{fmt.Errorf("slave %s cannot receive data: rsync is not installed there (install the Debian package rsync)", w.client.current().addr)}
	}
	gen := w.client.gen.Add(1)
	if !w.client.parkEmpty {
		parked, err := w.emptyPark(ctx)
		if err != nil {
			return err
		}
		if parked > 0 {
			w.needFull = true // what was parked must be found again and recreated
		}
	}
	w.adopt(gen)
	w.log.Info("session open", "slave", w.client.current().addr, "slave_volume", w.client.slaveVolume(), "lease_epoch", w.client.leaseEpoch)
	if w.brick == nil && w.mon != nil && w.stats.WorkerStatus == stateInitializing {
		w.setStatus(stateActive, "")
	}
	return nil
}

// handshake opens the session on the current endpoint, and when it cannot
// reach it (the slave node down or cut off), on the next ones in turn. The
// handshake is the first call: a slave that cannot be reached or refuses
// this master's certificate fails it at the transport, and only then does
// the health check (one round trip more) say why.
func (w *worker) handshake(ctx context.Context) error {
	var errs []error
	for range w.client.eps {
		ep := w.client.current()
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := w.client.handshake(hctx)
		cancel()
		if err == nil || !unreached(err) || ctx.Err() != nil {
			return err
		}
		hctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		herr := rpc.WaitHealthy(hctx, ep.conn, "")
		cancel()
		if refusesCertificate(herr) {
			// Not among the slave's allowed-masters: retrying cannot help.
			return &refusedError{fmt.Errorf("slave %s refuses this master's certificate: %w", ep.addr, herr)}
		}
		if herr == nil {
			return w.client.handshake(ctx) // reachable now
		}
		errs = append(errs, fmt.Errorf("slave %s unreachable: %w", ep.addr, herr))
		if len(w.client.eps) > 1 {
			next := w.client.next()
			w.log.Warn("slave endpoint unreachable: failing over to the next one", "slave", ep.addr, "next", next.addr, "err", herr)
		}
	}
	return errors.Join(errs...)
}

// adopt makes the client's session generation gen this worker's session.
func (w *worker) adopt(gen int64) {
	w.batch = w.cfg.EntryBatch
	if m := w.client.maxBatch; m > 0 && m < w.cfg.EntryBatch {
		w.batch = m
	}
	w.session, w.sessionGen, w.verified = true, gen, false
	if w.brick != nil {
		// Another worker of the replica set may have shipped since.
		w.brick.marks.forget()
	}
}

// pass runs one hybrid crawl and processes its changelog. changed reports
// whether there was anything to do.
func (w *worker) pass(ctx context.Context) (changed bool, err error) {
	defer w.passDone(&err)
	if err := w.guardSource(); err != nil {
		return false, err
	}
	if err := w.gate(ctx); err != nil {
		return false, err
	}
	start := time.Now()
	w.stats.CrawlStatus = "Hybrid"
	clear(w.staleData) // the crawl sees every file wherever it is now
	// The session opens while the crawl walks; the first changes wait for
	// it.
	cctx, stopCrawl := context.WithCancel(ctx)
	defer stopCrawl()
	// The first pass of a session compares the slave with the catalog
	// while it crawls (verify): what it found is used if the pass changes
	// nothing. Whether this is that pass is read before the session opens
	// beside the crawl (which resets verified).
	firstOfSession := !w.sessionOpen() || !w.verified
	open := w.openBeside(ctx, stopCrawl)
	var early *earlyVerify
	n, cerr := w.cat.Count()
	if cerr == nil && n > 0 && firstOfSession {
		early = w.startEarlyVerify(ctx, open)
		defer early.stop()
	}
	// A first sync into an empty slave (nothing in the catalog, nothing in
	// the slave's root before this worker applies anything, the session
	// the same throughout): every inode the pass creates is new on the
	// slave (w.fresh, in session generation w.freshGen).
	checkFresh := cerr == nil && n == 0 && firstOfSession
	defer func() { w.fresh = false }()
	// The crawl emits its changes in segments, each applied and committed
	// before it goes on (crawl.Stream); a segment that leaves failures
	// does not stop the others. The queue keeps every failure until the
	// crawl is over: then those it did not meet again are resolved.
	w.lastCrawl, err = crawl.Stream(cctx, crawl.StreamConfig{Config: w.crawlConfig(), Progress: w.crawlProgress,
		CheckDeletes: func(n int64) error { return w.guardDeletes("the pass", n, -1) }}, w.cat, w.log, func(res *crawl.Result) error {
		early.abandon()
		if err := open.wait(); err != nil {
			return err
		}
		if checkFresh {
			checkFresh = false
			if ents, err := w.slave.Entries(ctx, gfid.Root); err == nil && len(ents) == 0 {
				w.fresh, w.freshGen = true, w.sessionGen
			}
		}
		changed = true
		err := w.apply(ctx, res, false)
		var pe *partialError
		if errors.As(err, &pe) {
			return nil
		}
		return err
	})
	if oerr := open.wait(); oerr != nil {
		return changed, oerr // the crawl was stopped for it
	}
	if err != nil {
		if changed {
			return true, err
		}
		return false, fmt.Errorf("hybrid crawl: %w", err)
	}
	if err := w.failures.resolveBefore(start); err != nil {
		return changed, err
	}
	if partial := w.settle(nil, false); partial != nil {
		// Failures may come from a replica changed behind georep's back
		// (a directory swapped for a symlink fails every op below it):
		// verify finds such drift now and the next pass repairs it.
		early.stop() // it compared beside a pass that changed the slave
		if _, verr := w.verifyOnce(ctx); verr != nil {
			return true, verr
		}
		return true, partial
	}
	if changed && w.cfg.Oneshot && !w.verified && !w.verifyPutOff {
		// --oneshot runs another pass to confirm this one left nothing
		// to do: verify compares beside that pass's crawl (early) instead
		// of after this one, which takes a round trip and the slave's
		// walk off the run. stime waits for it.
		w.verifyPutOff = true
		return true, nil
	}
	if found, err := w.verifyOnceFrom(ctx, early.take(changed, w.cat.Writes)); err != nil || found > 0 {
		w.repairAfterVerify(found) // stime waits for the repair
		return changed || found > 0, err
	}
	return changed, w.advance(ctx, start)
}

// crawlProgress logs the progress of a long hybrid crawl: what it has
// walked, at what rate, and an estimate of what is left from the inodes
// the source's filesystem holds.
func (w *worker) crawlProgress(st crawl.Stats) {
	secs := st.Duration.Seconds()
	seen := st.Dirs + st.Files
	args := []any{"dirs", st.Dirs, "files", st.Files, "bytes", st.Bytes, "entries", st.Entries, "data", st.Data,
		"rate_per_s", int64(float64(seen) / max(secs, 1e-3))}
	var fs unix.Statfs_t
	if err := unix.Statfs(w.cfg.Source, &fs); err == nil && fs.Files > fs.Ffree && secs > 0 && seen > 0 {
		total := int64(fs.Files - fs.Ffree) // every inode of the filesystem: an upper bound
		if left := total - seen; left > 0 {
			eta := time.Duration(float64(left) / (float64(seen) / secs) * float64(time.Second))
			args = append(args, "filesystem_inodes", total, "eta_at_most", eta.Round(time.Second))
		}
	}
	w.log.Info("hybrid crawl progress", args...)
}

// repairAfterVerify asks for another hybrid crawl when verify found
// differences (found) in a pass that left nothing in the failure queue:
// that crawl recreates what verify forgot in the catalog, where a
// changelog crawl would not look. With failures queued it does not: they
// are retried every change-interval, and a crawl per pass while one keeps
// failing (and verify finding it missing) would never pause.
func (w *worker) repairAfterVerify(found int) {
	if found > 0 && (w.failures == nil || w.failures.len() == 0) {
		w.needFull = true
	}
}

func (w *worker) crawlConfig() crawl.Config {
	return crawl.Config{Source: w.cfg.Source, ChangelogDir: w.wd.path("xsync"),
		IgnoreDeletes: w.cfg.IgnoreDeletes, SyncXattrs: w.cfg.SyncXattrs, Brick: w.brick != nil, WritesRecorded: w.brick != nil, ParkPrefix: w.parkPrefix()}
}

// parkPrefix starts the names this worker parks on the slave: its replica
// set's ("set<N>."), for a brick worker; none for a plain directory.
func (w *worker) parkPrefix() string {
	if w.brick == nil || w.client == nil || w.client.replicaSet == "" {
		return ""
	}
	return "set" + w.client.replicaSet + "."
}

// passDone records a failed pass. Unless the pass only left failures in
// the queue, the session is reopened, handshake and all: whatever failed
// may have been the session itself (a restarted slave refuses the old
// session id on every call, rsync tunnels included).
func (w *worker) passDone(err *error) {
	if *err == nil {
		w.guardAnnounced = ""
		if w.stats.Guard != "" {
			w.log.Info("safety guard no longer refuses: the pass ran", "guard", w.stats.Guard)
			w.stats.Guard = ""
			_ = w.wd.saveStats(w.stats)
		}
		return
	}
	var partial *partialError
	if !errors.As(*err, &partial) && !errors.Is(*err, errNeedFull) && !errors.Is(*err, ErrGuard) {
		w.session = false
	}
	w.stats.Guard = ""
	var guard *GuardError
	if errors.As(*err, &guard) {
		if w.mon != nil {
			w.mon.metrics.guardRefusals.WithLabelValues(guard.Guard).Inc()
			if w.guardAnnounced != guard.Guard {
				w.mon.guardEvent(w, guard) // once per guard that starts refusing, not at every retry
			}
		}
		w.stats.Guard, w.guardAnnounced = guard.Guard, guard.Guard
		w.log.Error("safety guard refused the pass: nothing applied", "guard", guard.Guard, "detail", guard.Detail, "proceed", guard.Proceed)
	}
	w.stats.LastError = (*err).Error()
	_ = w.wd.saveStats(w.stats)
}

// apply processes the changelog of a crawl and commits its outcome: the
// catalog, the stats and the failure queue. retried says whether the crawl
// retried every queued failure (a hybrid crawl always does). It returns a
// *partialError when anything is left in the failure queue.
func (w *worker) apply(ctx context.Context, res *crawl.Result, retried bool) error {
	st := res.Stats
	if err := w.guardDeletes("the pass", st.Deletes, -1); err != nil {
		if rerr := os.Remove(res.Changelog); rerr != nil {
			w.log.Warn("removing a refused changelog", "err", rerr)
		}
		return err // the catalog has not moved: the next crawl finds the same changes
	}
	w.stats.EntriesPending, w.stats.MetaPending, w.stats.DeletesPending = st.Entries, st.Meta, st.Deletes
	w.stats.FilesPending, w.stats.BytesPending = st.Data, st.DataBytes
	_ = w.wd.saveStats(w.stats)
	w.log.Debug("processing changelog", "changelog", filepath.Base(res.Changelog), "entries", st.Entries,
		"data", st.Data, "meta", st.Meta, "deletes", st.Deletes)

	out, err := w.processChangelog(ctx, res.Changelog, res.Snapshot, func(failed map[gfid.GFID]string) error {
		bad := make(map[gfid.GFID]bool, len(failed))
		for g := range failed {
			bad[g] = true
		}
		if err := res.CommitEntries(w.cat, bad); err != nil {
			return fmt.Errorf("commit entry ops: %w", err)
		}
		return nil
	})
	if err != nil {
		if w.brick != nil {
			// What was shipped is not known file by file.
			w.brick.marks.forget()
		}
		return err
	}
	failed := make(map[gfid.GFID]bool, len(out.failed))
	for g := range out.failed {
		failed[g] = true
	}
	if err := res.Commit(w.cat, failed, out.dataFailed); err != nil {
		if w.brick != nil {
			w.brick.marks.forget()
		}
		return fmt.Errorf("commit catalog: %w", err)
	}
	if w.brick != nil {
		w.brick.marks.shipped(out.dataRead, out)
	}
	if err := os.Remove(res.Changelog); err != nil {
		w.log.Warn("removing processed changelog", "err", err)
	}
	w.stats.FilesSynced += int64(out.files - len(out.dataFailed))
	w.stats.BytesSynced += out.bytes
	w.stats.EntriesSynced += int64(out.entries)
	w.stats.DeletesSynced += int64(out.deletes)
	w.stats.FilesPending, w.stats.BytesPending, w.stats.EntriesPending, w.stats.MetaPending, w.stats.DeletesPending = 0, 0, 0, 0, 0

	var queue []*failure
	for g, why := range out.failed {
		dir, name := locate(g, res.Snapshot, w.cat)
		queue = append(queue, newFailure(g, dir, name, false, why, out.causes[g]))
	}
	for _, why := range out.dataWhy {
		if strings.Contains(why, sessionRefusal) {
			// The slave restarted or another master took over: the rsync
			// tunnels are refused until the session is opened again, and
			// the keep-alive would notice only at its next round.
			w.client.lost.Store(true)
			break
		}
	}
	for g := range out.dataFailed {
		if failed[g] {
			continue
		}
		dir, name := locate(g, res.Snapshot, w.cat)
		if p, ok := res.Snapshot.Path(g); ok {
			if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				// Gone from where the crawl saw it. Removed, its removal
				// is a change of its own; moved (itself, or a directory
				// above it), the journal reports the move, but a directory
				// moved is not walked again: the next live pass looks for
				// it where the catalog now puts it.
				w.log.Debug("data not shipped: the file is gone from where the crawl saw it", "gfid", g, "path", p)
				w.staleData[g] = true
				continue
			}
		}
		queue = append(queue, newFailure(g, dir, name, true, "data not shipped: "+out.dataWhy[g], out.dataCauses[g]))
	}
	// A gfid the operator skipped is forgotten once it syncs; a changelog
	// that named only skipped gfids, which failed again, leaves nothing
	// for --oneshot to wait for.
	var ok []gfid.GFID
	onlySkipped := len(out.named) > 0
	for g := range out.named {
		bad := failed[g] || out.dataFailed[g]
		if !bad {
			ok = append(ok, g)
		}
		if !bad || !w.failures.isSkipped(g) {
			onlySkipped = false
		}
	}
	forgot, err := w.failures.synced(ok)
	if err != nil {
		return err
	}
	for _, s := range forgot {
		w.log.Info("a gfid skipped by the operator synced: no longer skipped", "gfid", s.GFID, "path", s.path(), "skipped", s.Skipped.Format(time.RFC3339))
	}
	w.failures.setOnlySkipped(onlySkipped)
	return w.settle(queue, retried)
}

// settle records what a pass left failing in the durable queue and
// returns a *partialError while the queue is not empty.
func (w *worker) settle(failed []*failure, retried bool) error {
	failed, dropped := w.failures.dropSkipped(failed)
	for _, f := range dropped {
		w.log.Info("sync failure not queued: skipped by the operator", "gfid", f.GFID, "path", f.path(),
			"data", f.Data, "class", f.class(), "reason", f.Reason)
	}
	if err := w.failures.update(failed, retried, time.Now()); err != nil {
		return err
	}
	for _, f := range failed {
		w.log.Warn("sync failure queued for retry", "gfid", f.GFID, "path", filepath.Join(f.Dir, f.Name),
			"data", f.Data, "attempts", f.Attempts, "since", f.Since.Format(time.RFC3339), "class", f.class(), "errno", f.Errno, "reason", f.Reason)
	}
	n := w.failures.len()
	w.stats.Failures = int64(n)
	if n == 0 {
		w.stats.LastError = ""
		return w.wd.saveStats(w.stats)
	}
	w.verified = false // compare with the slave again once a hybrid pass is clean
	reasons := make(map[gfid.GFID]string, n)
	for _, f := range w.failures.list() {
		reasons[f.GFID] = f.Reason
	}
	msg := summarize(reasons)
	w.stats.LastError = msg
	_ = w.wd.saveStats(w.stats)
	return &partialError{n: n, summary: msg}
}

// verifyOnce runs verify on the first complete pass of a session.
func (w *worker) verifyOnce(ctx context.Context) (int, error) {
	return w.verifyOnceFrom(ctx, nil)
}

// verifyOnceFrom is verifyOnce with the comparison made already (early,
// nil when none holds).
func (w *worker) verifyOnceFrom(ctx context.Context, early *verifier) (int, error) {
	if w.verified {
		return 0, nil
	}
	var found int
	var err error
	if early != nil {
		w.log.Debug("verify: the slave was compared with the catalog while the pass crawled", "differences", early.found)
		found, err = early.found, early.finish(ctx)
	} else {
		found, err = w.verify(ctx)
	}
	if err != nil {
		return found, fmt.Errorf("verify the slave: %w", err)
	}
	w.verified = true
	return found, nil
}

// refusedError is a refusal by the slave that retrying will not change
// (another master volume's replica, an unknown protocol version, no rsync
// there): --oneshot gives up at once; the daemon keeps retrying with backoff,
// since an operator may fix the slave.
type refusedError struct{ err error }

func (e *refusedError) Error() string { return e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }

// partialError reports a pass whose changelog was processed but left some
// gfids behind; the session itself is fine.
type partialError struct {
	n       int
	summary string
}

func (e *partialError) Error() string {
	return fmt.Sprintf("%d gfids in the failure queue, retried every change-interval (stime not advanced): %s", e.n, e.summary)
}

// advance moves stime to t (everything changed before t is on the slave),
// marks the slave's root with it, and persists the stats.
func (w *worker) advance(ctx context.Context, t time.Time) error {
	if err := w.wd.saveStime(stime{Data: t, Entry: t}); err != nil {
		return err
	}
	if b := w.brick; b != nil {
		if err := glusterfs.SetStime(b.path, b.volumeID, w.client.slaveVolume(), t); err != nil {
			return fmt.Errorf("brick stime: %w", err)
		}
	}
	// The slave's root is marked in the background (a round trip nothing
	// else waits for): the next mark waits for it, and so do the end of a
	// --oneshot run and the worker's close; its failure fails the pass
	// that waits.
	if err := w.xtimeWait(); err != nil {
		return err
	}
	w.markXtime(ctx, t)
	w.stats.LastSynced = t
	return w.wd.saveStats(w.stats)
}

// owesSlave reports whether changes already taken are not all on the
// slave: failures queued for retry, or files whose data is to be shipped
// again. stime may not pass them.
func (w *worker) owesSlave() bool {
	return (w.failures != nil && w.failures.len() > 0) || len(w.staleData) > 0
}

// markXtime marks the slave's root with t in the background.
func (w *worker) markXtime(ctx context.Context, t time.Time) {
	done := make(chan error, 1)
	w.xtime = done
	go func() { done <- w.slave.SetXtime(ctx, gfid.Root, t) }()
}

// xtimeWait waits for the mark markXtime sent, if any, and returns its
// error (the session is then opened again).
func (w *worker) xtimeWait() error {
	if w.xtime == nil {
		return nil
	}
	err := <-w.xtime
	w.xtime = nil
	if err != nil {
		w.session = false // it may have been the session: open it again
		return fmt.Errorf("marking the slave's root with stime: %w", err)
	}
	return nil
}

func summarize(failed map[gfid.GFID]string) string {
	lines := make([]string, 0, len(failed))
	for g, why := range failed {
		lines = append(lines, g.String()+": "+why)
	}
	sort.Strings(lines)
	if len(lines) > 5 {
		lines = append(lines[:5], fmt.Sprintf("and %d more", len(failed)-5))
	}
	return strings.Join(lines, "; ")
}
