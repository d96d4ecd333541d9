package master

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	masterv1 "github.com/georep/georep/gen/georep/master/v1"
	"github.com/georep/georep/master/events"
	"github.com/georep/georep/rpc"
	"github.com/georep/georep/rpc/atomicfile"
	"github.com/georep/georep/rpc/bwlimit"
	"github.com/georep/georep/rpc/gfid"
)

// monitor is what the operator interface sees of a running master (gsyncd's
// monitor and its status files): the workers' published state, rates, the
// checkpoint, pause and the keys that may change while the master runs.
// Workers publish; the status service and the metrics read. Every method
// is safe for concurrent use.
type monitor struct {
	cfg  Config
	log  *slog.Logger
	wd   *workDir // the master's work dir: checkpoint and pause live there
	node string
	now  func() time.Time

	// interval is change-interval as changed live (ns; 0: cfg's).
	interval atomic.Int64
	// maxDelete is max-delete as changed live (nil: cfg's).
	maxDelete atomic.Pointer[DeleteLimit]
	// bw is bandwidth-limit: the one bucket every connection to the slave
	// shares, changed live by config set.
	bw      *bwlimit.Limiter
	metrics *metrics
	// events announces state changes, checkpoints and guard refusals.
	events *events.Emitter
	nodeID string // the events' primary_node_id: glusterd's UUID of this node, or ""
	// startLevel is log-level as the master started (config reset's).
	startLevel slog.Level

	liveMu sync.Mutex        // held while a live key changes, file and value
	live   map[string]string // the keys changed with config set (the live file's)

	mu      sync.Mutex
	workers []*workerEntry
	paused  bool
	resumed chan struct{} // closed when paused ends
	cp      checkpoint
	// changed is closed and replaced whenever the checkpoint changes.
	changed chan struct{}
}

// workerEntry is one worker as the monitor knows it.
type workerEntry struct {
	name   string // brick host:path, or the source directory
	w      *worker
	parked atomic.Bool // waiting at the pause gate
	exited atomic.Bool // its loop has returned
	// samples of what it shipped, for the rates (guarded by monitor.mu).
	samples []rateSample
	// lastBeat is when heartbeat last asked it for a pass (guarded by
	// monitor.mu).
	lastBeat time.Time
}

type rateSample struct {
	at           time.Time
	files, bytes int64
}

// rateWindow is how far back the rates look.
const rateWindow = 10 * time.Second

func newMonitor(cfg Config, wd *workDir, log *slog.Logger) (*monitor, error) {
	node, err := os.Hostname()
	if err != nil {
		node = "localhost"
	}
	m := &monitor{cfg: cfg, log: log, wd: wd, node: node, now: time.Now,
		resumed: make(chan struct{}), changed: make(chan struct{}), metrics: newMetrics(), bw: bwlimit.New(cfg.BandwidthLimit)}
	close(m.resumed)
	cp, err := loadCheckpoint(wd.path("checkpoint"))
	if err != nil {
		return nil, err
	}
	m.cp = cp
	if cfg.LogLevel != nil {
		m.startLevel = cfg.LogLevel.Level()
	}
	if err := m.loadLive(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(wd.path("paused")); err == nil {
		m.paused, m.resumed = true, make(chan struct{})
		log.Warn("the session is paused (georepctl resume lets it go on)")
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("work-dir: %w", err)
	}
	m.nodeID = glusterdUUID(glusterdInfo)
	evID := m.nodeID
	if evID == "" {
		evID = node
	}
	if m.events, err = events.New(events.Config{Gluster: cfg.GlusterEvents, Webhook: cfg.EventsWebhook, NodeID: evID}, log); err != nil {
		return nil, err
	}
	m.metrics.register(m)
	return m, nil
}

// add makes w one of the monitored workers, under name.
func (m *monitor) add(w *worker, name string) *workerEntry {
	e := &workerEntry{name: name, w: w}
	w.mon, w.entry = m, e
	m.mu.Lock()
	m.workers = append(m.workers, e)
	m.mu.Unlock()
	m.metrics.addWorker(name)
	return e
}

// run samples the workers' rates and decides the checkpoint until ctx is
// done.
func (m *monitor) run(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	var lastNudge time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := m.now()
		m.sample(now)
		if pending := m.checkCheckpoint(now); len(pending) > 0 && now.Sub(lastNudge) >= time.Second {
			// An idle worker does no pass, and so never moves stime past
			// the checkpoint: ask it for one.
			for _, w := range pending {
				w.nudge(false)
			}
			lastNudge = now
		}
		m.heartbeat(now)
		if m.cfg.Alive != nil {
			m.cfg.Alive()
		}
	}
}

// stimeHeartbeat is how old the stime of an idle Active worker may grow
// before the monitor asks it for a pass, which moves stime to the pass's
// start (or, for a brick, to its last rollover): so that stime, and
// time() - georep_master_last_synced_timestamp_seconds, says how far
// behind the slave is for a worker with nothing to do as well, whose
// change source would otherwise give it no pass at all. A variable for
// tests.
var stimeHeartbeat = time.Minute

// heartbeat asks every idle Active worker whose stime is older than
// stimeHeartbeat for a pass, at most once per stimeHeartbeat. Not one
// that is busy (a changelog in flight, items pending: its pass moves
// stime), holds failures (they hold stime), or is paused.
func (m *monitor) heartbeat(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.paused {
		return
	}
	for _, e := range m.workers {
		if e.exited.Load() || now.Sub(e.lastBeat) < stimeHeartbeat {
			continue
		}
		v := e.w.snapshot(now)
		st := v.Stats
		pending := st.EntriesPending + st.FilesPending + st.MetaPending + st.DeletesPending
		if st.WorkerStatus != stateActive || st.LastSynced.IsZero() || now.Sub(st.LastSynced) < stimeHeartbeat ||
			v.Progress != nil || pending > 0 || st.Failures > 0 {
			continue
		}
		e.lastBeat = now
		e.w.nudge(false)
	}
}

func (m *monitor) sample(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.workers {
		v := e.w.snapshot(now)
		s := rateSample{at: now, files: v.ShippedFiles, bytes: v.ShippedBytes}
		e.samples = append(e.samples, s)
		for len(e.samples) > 2 && now.Sub(e.samples[1].at) >= rateWindow {
			e.samples = e.samples[1:]
		}
	}
}

// rates returns files/s and bytes/s over the last rateWindow (m.mu held).
func (e *workerEntry) rates() (files, bytes float64) {
	if len(e.samples) < 2 {
		return 0, 0
	}
	a, b := e.samples[0], e.samples[len(e.samples)-1]
	dt := b.at.Sub(a.at).Seconds()
	if dt <= 0 {
		return 0, 0
	}
	return float64(b.files-a.files) / dt, float64(b.bytes-a.bytes) / dt
}

// Worker states, as gsyncd names them.
const (
	stateInitializing = "Initializing"
	stateActive       = "Active"
	statePassive      = "Passive"
	stateFaulty       = "Faulty"
	statePaused       = "Paused"
	stateStopped      = "Stopped"
)

// workerStatus is one row of the status.
type workerStatus struct {
	Node, Brick, Slave string
	ReplicaSet         string // "" for a plain directory
	State              string
	Reason             string
	Connected          bool // the worker's session with its slave is open, its connection up
	Stats              crawlStats
	Lag                time.Duration // 0: caught up
	FilesPerSec        float64
	BytesPerSec        float64
	QueueDepth         int        // data calls waiting for a sync job
	Checkpoint         checkpoint // Time zero: none
	CheckpointDone     time.Time  // this worker reached it (zero: not yet)
	Progress           *progressStatus
	Audit              *auditStatus // nil: the worker does not audit (--oneshot)
}

// workerView is what the monitor reads of a worker, copied at one moment:
// the status, the checkpoint and the metrics read workers through it
// (snapshot), never their fields.
type workerView struct {
	Stats                      crawlStats // as last saved in its work dir
	ShippedFiles, ShippedBytes int64      // data shipped so far (the rates)
	QueueDepth                 int        // data calls waiting for a sync job
	Progress                   *progressStatus
}

// snapshot returns what the monitor sees of w at now: its stats, its
// counters, its sync queue and the changelog in flight (Progress nil:
// none). Safe from any goroutine.
func (w *worker) snapshot(now time.Time) workerView {
	v := workerView{Stats: w.wd.stats(), ShippedFiles: w.shippedFiles.Load(), ShippedBytes: w.shippedBytes.Load()}
	if w.syncer != nil {
		v.QueueDepth = w.syncer.QueueLen()
	}
	if p := w.prog.Load(); p != nil {
		v.Progress = p.status(now)
	}
	return v
}

// progressStatus is how far the changelog in flight has got.
type progressStatus struct {
	Started                   time.Time
	EntriesDone, EntriesTotal int64
	FilesDone, FilesTotal     int64
	BytesDone, BytesTotal     int64
	ETA                       time.Duration // 0: unknown
}

// status returns the state of every worker, paused, and the checkpoint.
func (m *monitor) status() (ws []workerStatus, paused bool, cp checkpoint) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.workers) == 0 {
		// Starting: the worker (or, on a GlusterFS node, the bricks) is
		// not set up yet: opening a large catalog or asking glusterd takes
		// a while, and "no workers" reads as "nothing runs".
		name, why := m.cfg.Source, "starting: opening the catalog and the session with the slave"
		if m.cfg.GlusterVolume != "" {
			name, why = m.cfg.GlusterVolume, "starting: asking glusterd for the volume's bricks on this node"
		}
		ws = append(ws, workerStatus{Node: m.node, Brick: name, Slave: m.cfg.Slave, Checkpoint: m.cp,
			State: stateInitializing, Reason: why})
	}
	for _, e := range m.workers {
		v := e.w.snapshot(now)
		st := v.Stats
		s := workerStatus{Node: m.node, Brick: e.name, Slave: m.cfg.Slave, Stats: st, Checkpoint: m.cp}
		if c := e.w.client; c != nil {
			if len(c.eps) > 1 {
				s.Slave = c.current().addr // the slave node this worker's session is on
			}
			s.ReplicaSet = c.replicaSet
			s.Connected = c.connected()
		}
		s.State, s.Reason = st.WorkerStatus, st.LastError
		if s.State == "" {
			s.State = stateInitializing
		}
		switch {
		case e.exited.Load():
			s.State = stateStopped
		case m.paused && e.parked.Load():
			s.State, s.Reason = statePaused, "paused by the operator"
		case m.paused && s.State == stateActive:
			s.Reason = "pausing: finishing the current pass"
		}
		if s.State == stateActive && st.LastError == "" {
			s.Reason = ""
		}
		// Lag: how far stime is behind while the worker has work it
		// knows of (a changelog in flight or pending, failures, not
		// Active); an
		// Active worker with nothing to do has caught up, whatever its
		// stime (an idle worker does no pass to move it).
		pending := st.EntriesPending + st.FilesPending + st.MetaPending + st.DeletesPending
		busy := v.Progress != nil || pending > 0 || st.Failures > 0 || s.State != stateActive
		if !st.LastSynced.IsZero() && busy {
			s.Lag = max(now.Sub(st.LastSynced), 0)
		}
		s.FilesPerSec, s.BytesPerSec = e.rates()
		s.QueueDepth = v.QueueDepth
		if !m.cp.Time.IsZero() {
			s.CheckpointDone = m.cp.Workers[e.name]
		}
		s.Progress = v.Progress
		if a := e.w.audit; a != nil {
			st := a.snapshot()
			s.Audit = &st
		}
		ws = append(ws, s)
	}
	return ws, m.paused, m.cp
}

// audit asks every Active worker for an audit round now (none: a node whose
// workers are all Passive has nothing to audit) and, with wait,
// returns once each has ended one started after the request (or ctx is
// done).
func (m *monitor) audit(ctx context.Context, content, wait bool) error {
	asked := m.now()
	m.mu.Lock()
	var ws []*worker
	auditors := 0
	for _, e := range m.workers {
		if e.w.audit == nil || e.exited.Load() {
			continue
		}
		auditors++
		if e.w.brick != nil && e.w.snapshot(asked).Stats.WorkerStatus != stateActive {
			continue // Passive: its replica set's Active worker, on another node, audits
		}
		ws = append(ws, e.w)
	}
	m.mu.Unlock()
	if auditors == 0 {
		return errNoAuditor
	}
	for _, w := range ws {
		w.audit.request(content)
		w.nudge(false)
	}
	m.log.Info("audit asked for by the operator", "content", content, "workers", len(ws))
	if !wait {
		return nil
	}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		done := true
		for _, w := range ws {
			st := w.audit.snapshot()
			if st.Running || st.Started.Before(asked) {
				done = false
			}
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// errNoAuditor: no worker of this master audits (it runs --oneshot).
var errNoAuditor = errors.New("this master does not audit (a --oneshot master does not)")

// pause stops the workers at their next pass; resume lets them go on.
// Both persist across restarts (the file <work-dir>/paused).
func (m *monitor) pause() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.paused {
		return nil
	}
	if err := atomicfile.Write(m.wd.path("paused"), []byte(m.now().UTC().Format(time.RFC3339)+"\n"), 0o600); err != nil {
		return err
	}
	m.paused, m.resumed = true, make(chan struct{})
	m.log.Info("session paused: the workers stop after the pass in flight")
	return nil
}

func (m *monitor) resume() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.paused {
		return nil
	}
	if err := os.Remove(m.wd.path("paused")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("resume: %w", err)
	}
	m.paused = false
	close(m.resumed)
	m.log.Info("session resumed")
	return nil
}

// gate blocks e's worker while the session is paused.
func (m *monitor) gate(ctx context.Context, e *workerEntry) error {
	for {
		m.mu.Lock()
		paused, resumed := m.paused, m.resumed
		m.mu.Unlock()
		if !paused {
			return nil
		}
		e.parked.Store(true)
		select {
		case <-ctx.Done():
			e.parked.Store(false)
			return ctx.Err()
		case <-resumed:
		}
		e.parked.Store(false)
	}
}

// retryFailures asks every worker to retry its failure queue now, the
// gfids the operator skipped back in it, and returns how many failures
// are queued and how many of them had been skipped.
func (m *monitor) retryFailures() (queued, unskipped int, err error) {
	m.mu.Lock()
	ws := make([]*worker, 0, len(m.workers))
	for _, e := range m.workers {
		ws = append(ws, e.w)
	}
	m.mu.Unlock()
	for _, w := range ws {
		if w.failures == nil {
			continue
		}
		n, err := w.failures.unskip(m.now())
		if err != nil {
			return 0, 0, err
		}
		if n > 0 {
			m.log.Info("the gfids the operator skipped are queued again", "worker", w.entry.name, "gfids", n)
		}
		unskipped += n
	}
	fs, err := m.failures()
	if err != nil {
		return 0, 0, err
	}
	for _, w := range ws {
		w.nudge(true)
	}
	return len(fs), unskipped, nil
}

// errNotQueued is a skip of a gfid that no failure queue holds.
var errNotQueued = errors.New("not in the failure queue")

// workerSkip is a failure that one worker's queue held and the operator
// skipped.
type workerSkip struct {
	Brick string
	*skipRecord
	Log string // the skip log it went to
}

// skipFailure lifts the failure of g in every worker queue that holds it
// (a directory may fail on several bricks): see failureQueue.skip. by is
// who asked, why the operator's reason.
func (m *monitor) skipFailure(g gfid.GFID, by fmt.Stringer, why string) ([]workerSkip, error) {
	m.mu.Lock()
	es := append([]*workerEntry(nil), m.workers...)
	m.mu.Unlock()
	var out []workerSkip
	for _, e := range es {
		q := e.w.failures
		if q == nil {
			continue
		}
		rec, ok, err := q.skip(g, e.name, by, why, m.now())
		if err != nil {
			return out, err
		}
		if !ok {
			continue
		}
		m.log.Warn("failure skipped by the operator: it no longer holds stime", "worker", e.name, "gfid", g,
			"path", rec.path(), "failure", rec.Reason, "class", rec.class(), "by", rec.By, "reason", why, "skip_log", q.skipLogPath())
		out = append(out, workerSkip{Brick: e.name, skipRecord: rec, Log: q.skipLogPath()})
		e.w.nudge(false) // a pass, so that stime moves
	}
	if len(out) > 0 {
		return out, nil
	}
	for _, e := range es {
		if q := e.w.failures; q != nil && q.isSkipped(g) {
			return nil, fmt.Errorf("gfid %s is %w: it was skipped already (georepctl failures lists the skipped gfids)", g, errNotQueued)
		}
	}
	return nil, fmt.Errorf("gfid %s is %w of any worker (georepctl failures lists it)", g, errNotQueued)
}

// workerFailure is a failure of the queue of one worker.
type workerFailure struct {
	Brick string
	failure
}

// failures reads every worker's durable failure queue (the file, rewritten
// atomically after every pass, not the worker's live copy).
func (m *monitor) failures() ([]workerFailure, error) {
	fs, _, err := m.failuresAndSkips()
	return fs, err
}

// failuresAndSkips reads every worker's durable failure queue and the
// gfids the operator skipped.
func (m *monitor) failuresAndSkips() ([]workerFailure, []workerSkip, error) {
	m.mu.Lock()
	es := append([]*workerEntry(nil), m.workers...)
	m.mu.Unlock()
	var out []workerFailure
	var skips []workerSkip
	for _, e := range es {
		q, err := loadFailures(e.w.wd.path("failures"))
		if err != nil {
			return nil, nil, err
		}
		for _, f := range q.list() {
			out = append(out, workerFailure{Brick: e.name, failure: *f})
		}
		for _, s := range q.skippedList() {
			skips = append(skips, workerSkip{Brick: e.name, skipRecord: s, Log: q.skipLogPath()})
		}
	}
	return out, skips, nil
}

// changeInterval is change-interval, as last set.
func (m *monitor) changeInterval() time.Duration {
	if v := m.interval.Load(); v > 0 {
		return time.Duration(v)
	}
	return m.cfg.ChangeInterval
}

// status returns how far p has got at now.
func (p *progress) status(now time.Time) *progressStatus {
	s := &progressStatus{Started: p.start,
		EntriesDone: p.entries.Load(), EntriesTotal: p.entriesTotal,
		FilesDone: p.files.Load(), FilesTotal: p.filesTotal,
		BytesDone: p.bytes.Load(), BytesTotal: p.bytesTotal}
	elapsed := now.Sub(p.start).Seconds()
	switch {
	case elapsed <= 0:
	case s.BytesDone > 0 && s.BytesTotal > s.BytesDone:
		s.ETA = time.Duration(float64(s.BytesTotal-s.BytesDone) / (float64(s.BytesDone) / elapsed) * float64(time.Second))
	case s.FilesDone > 0 && s.FilesTotal > s.FilesDone:
		s.ETA = time.Duration(float64(s.FilesTotal-s.FilesDone) / (float64(s.FilesDone) / elapsed) * float64(time.Second))
	}
	return s
}

// start serves the status service (and /metrics when asked for) and runs
// the monitor until ctx is done; wg waits for all of it.
func (m *monitor) start(ctx context.Context, wg *sync.WaitGroup) error {
	// Always the UNIX socket in the work dir (georepctl --work-dir), and
	// status-listen's TCP address when given.
	sock := m.wd.path("status.sock")
	_ = os.Remove(sock) // a previous run's: the work dir's lock is ours
	ulis, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("status socket %s: %w", sock, err)
	}
	type listener struct {
		lis net.Listener
		cfg rpc.ServerConfig
	}
	liss := []listener{{peerCredListener{ulis}, rpc.ServerConfig{Insecure: true}}}
	closeAll := func() {
		for _, l := range liss {
			l.lis.Close()
		}
	}
	if m.cfg.StatusListen != "" {
		tlis, err := listenTCP("status-listen", m.cfg.StatusListen)
		if err != nil {
			closeAll()
			return err
		}
		scfg := rpc.ServerConfig{Insecure: true}
		if t := m.cfg.StatusTLS; t.Cert != "" {
			scfg = rpc.ServerConfig{TLS: t, AllowedClients: m.cfg.StatusAllowedClients, AllowedClientsKey: "the master's status-allowed-clients"}
			if len(scfg.AllowedClients) == 0 {
				m.log.Warn("status-allowed-clients is empty: any client certificate signed by status-tls-ca may use the status service", "ca", t.CA)
			}
		} else if !rpc.IsLoopback(m.cfg.StatusListen) {
			m.log.Warn("status-listen serves plaintext on an address that is not loopback (status-insecure): anyone who reaches it may pause the session or skip failures", "addr", m.cfg.StatusListen)
		}
		liss = append(liss, listener{tlis, scfg})
	}
	if m.cfg.MetricsListen != "" {
		mlis, err := listenTCP("metrics-listen", m.cfg.MetricsListen)
		if err != nil {
			closeAll()
			return err
		}
		rpc.ServeMetrics(ctx, mlis, m.metrics.reg, m.log, wg)
	}
	svc := &statusService{mon: m}
	for _, l := range liss {
		lis := l.lis
		srv, err := rpc.NewServer(l.cfg, m.log)
		if err != nil {
			closeAll()
			return err
		}
		masterv1.RegisterMasterServiceServer(srv, svc)
		wg.Go(func() {
			if err := srv.Serve(ctx, lis, 2*time.Second); err != nil {
				m.log.Error("status service stopped", "err", err)
			}
		})
		m.log.Info("serving status", "addr", lis.Addr().String(), "tls", !l.cfg.Insecure)
	}
	wg.Go(func() { m.run(ctx) })
	wg.Go(func() { m.events.Run(ctx) })
	if m.cfg.Oneshot && m.cfg.Progress != nil {
		wg.Go(func() { m.progressBar(ctx, m.cfg.Progress) })
	}
	return nil
}

// deleteLimit is max-delete, as last set.
func (m *monitor) deleteLimit() DeleteLimit {
	if l := m.maxDelete.Load(); l != nil {
		return *l
	}
	return m.cfg.MaxDelete
}
