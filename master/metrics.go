package master

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"

	"github.com/georep/georep/master/syncer"
	"github.com/georep/georep/rpc"
	"github.com/georep/georep/rpc/buildinfo"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// metrics is the master's Prometheus registry. Counters the pipeline
// feeds through thin hooks live here; everything the workers publish
// (stime, pending, failures, totals, state) is read from the monitor when
// scraped. Each family has one unit, named in it (Prometheus's naming
// conventions); README's "Metrics" lists them.
type metrics struct {
	reg       *prometheus.Registry
	entryOps  *prometheus.CounterVec
	rsyncRuns *prometheus.HistogramVec
	// guardRefusals counts the passes a safety guard refused, by guard.
	guardRefusals *prometheus.CounterVec
	// auditDifferences counts the differences the audit found, by worker
	// and kind.
	auditDifferences *prometheus.CounterVec
	// grpc measures the calls to the slave (grpc_client_*).
	grpc *grpcprom.ClientMetrics
	// certs are the certificates the slave client loaded.
	certs *rpc.CertMetrics
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		entryOps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "georep_master_entry_ops_total",
			Help: "Entry operations applied on the slave, by type."}, []string{"op"}),
		rsyncRuns: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "georep_master_rsync_run_duration_seconds",
			Help: "Duration of rsync runs of the sync jobs, by result.", Buckets: prometheus.ExponentialBuckets(0.01, 4, 10)},
			[]string{"result"}),
		guardRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "georep_master_guard_refusals_total",
			Help: "Passes a safety guard refused (nothing applied), by guard."}, []string{"guard"}),
		auditDifferences: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "georep_master_audit_differences_total",
			Help: "Differences between the replica and what was synced that the audit found (and repaired), by worker and kind."}, []string{"brick", "kind"}),
		grpc:  rpc.NewClientMetrics(),
		certs: rpc.NewCertMetrics(),
	}
	m.reg.MustRegister(m.entryOps, m.rsyncRuns, m.guardRefusals, m.auditDifferences, m.grpc, m.certs,
		buildinfo.Read().Collector("georep-master"), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// register adds what mon publishes to the registry.
func (m *metrics) register(mon *monitor) { m.reg.MustRegister(&statusCollector{mon: mon}) }

// addWorker makes every audit kind of the worker named brick show, at 0
// until found.
func (m *metrics) addWorker(brick string) {
	for _, k := range auditKinds {
		m.auditDifferences.WithLabelValues(brick, k)
	}
}

// auditFound counts n differences of kind that w's audit found.
func (w *worker) auditFound(kind string, n int64) {
	if w.mon != nil && n > 0 {
		w.mon.metrics.auditDifferences.WithLabelValues(w.entry.name, kind).Add(float64(n))
	}
}

func (m *metrics) rsyncRun(d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.rsyncRuns.WithLabelValues(result).Observe(d.Seconds())
}

// countEntryOps counts the entry ops of a changelog once they are applied.
func (w *worker) countEntryOps(entries []ops.Entry) {
	if w.mon == nil || len(entries) == 0 {
		return
	}
	n := map[ops.Op]int{}
	for _, e := range entries {
		n[e.Op]++
	}
	for op, c := range n {
		name := strings.ToLower(op.String())
		w.mon.metrics.entryOps.WithLabelValues(name).Add(float64(c))
	}
}

// shipped counts the items of one data call that were shipped (not in
// failed): for the progress and the rates.
func (w *worker) shipped(p *progress, items []syncer.Item, failed map[gfid.GFID]error, sizeOf map[gfid.GFID]int64) {
	var files, bytes int64
	for _, it := range items {
		if _, bad := failed[it.GFID]; !bad {
			files++
			bytes += sizeOf[it.GFID]
		}
	}
	p.bytes.Add(bytes)
	w.shippedFiles.Add(files)
	w.shippedBytes.Add(bytes)
}

// observeRsync is the sync jobs' hook: the duration of each rsync run.
func (w *worker) observeRsync(d time.Duration, err error) {
	if w.mon != nil {
		w.mon.metrics.rsyncRun(d, err)
	}
}

// stateNames are the states a worker may be in, as gsyncd names them:
// georep_master_worker_state has a series for each, 1 for the current one.
var stateNames = []string{stateInitializing, stateActive, statePassive, stateFaulty, statePaused, stateStopped}

var (
	descLastSynced = prometheus.NewDesc("georep_master_last_synced_timestamp_seconds",
		"The worker's stime as Unix time: everything changed on its source before it is on the slave (lag: time() minus it); absent before the first sync.",
		[]string{"brick"}, nil)
	descPending = prometheus.NewDesc("georep_master_pending",
		"Items the changelog in flight still holds, by kind (entry, data, meta, delete).", []string{"brick", "kind"}, nil)
	descFailures = prometheus.NewDesc("georep_master_failures",
		"Entries in the worker's failure queue.", []string{"brick"}, nil)
	descSyncedFiles = prometheus.NewDesc("georep_master_synced_files_total",
		"Regular files whose data the worker shipped over the session's life (its crawl stats: kept across restarts).", []string{"brick"}, nil)
	descSyncedBytes = prometheus.NewDesc("georep_master_synced_bytes_total",
		"Bytes of the files whose data the worker shipped over the session's life.", []string{"brick"}, nil)
	descSyncedEntries = prometheus.NewDesc("georep_master_synced_entries_total",
		"Entry operations the worker applied on the slave over the session's life.", []string{"brick"}, nil)
	descSyncedDeletes = prometheus.NewDesc("georep_master_synced_deletes_total",
		"Deletes (UNLINK, RMDIR) the worker applied on the slave over the session's life.", []string{"brick"}, nil)
	descState = prometheus.NewDesc("georep_master_worker_state",
		"1 for the worker's current state, 0 for each other state (Initializing, Active, Passive, Faulty, Paused, Stopped).", []string{"brick", "state"}, nil)
	descConnected = prometheus.NewDesc("georep_master_session_connected",
		"1 while the worker holds an open session with its slave over a live connection, 0 otherwise.", []string{"brick"}, nil)
	descGuard = prometheus.NewDesc("georep_master_guard_halted",
		"1 while a safety guard holds the worker (its last pass was refused), by guard; 0 otherwise.", []string{"brick", "guard"}, nil)
	descQueue = prometheus.NewDesc("georep_master_sync_queue_depth",
		"Data calls queued for the sync jobs, not yet taken by one.", []string{"brick"}, nil)
	descAuditEnd = prometheus.NewDesc("georep_master_audit_last_finished_timestamp_seconds",
		"When the worker's last audit round ended (Unix time); absent before the first.", []string{"brick"}, nil)
	descAuditLength = prometheus.NewDesc("georep_master_audit_last_duration_seconds",
		"How long the worker's last audit round took; absent before the first.", []string{"brick"}, nil)
	descCheckpoint = prometheus.NewDesc("georep_master_checkpoint_completed",
		"1 when the checkpoint is complete, 0 while it is not; absent without a checkpoint.", nil, nil)
)

// statusCollector reads the monitor when scraped.
type statusCollector struct{ mon *monitor }

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	ws, _, cp := c.mon.status()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	bit := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	for _, s := range ws {
		if !s.Stats.LastSynced.IsZero() {
			gauge(descLastSynced, unixSeconds(s.Stats.LastSynced), s.Brick)
		}
		gauge(descPending, float64(s.Stats.EntriesPending), s.Brick, "entry")
		gauge(descPending, float64(s.Stats.FilesPending), s.Brick, "data")
		gauge(descPending, float64(s.Stats.MetaPending), s.Brick, "meta")
		gauge(descPending, float64(s.Stats.DeletesPending), s.Brick, "delete")
		gauge(descFailures, float64(s.Stats.Failures), s.Brick)
		counter(descSyncedFiles, s.Stats.FilesSynced, s.Brick)
		counter(descSyncedBytes, s.Stats.BytesSynced, s.Brick)
		counter(descSyncedEntries, s.Stats.EntriesSynced, s.Brick)
		counter(descSyncedDeletes, s.Stats.DeletesSynced, s.Brick)
		for _, st := range stateNames {
			gauge(descState, bit(s.State == st), s.Brick, st)
		}
		gauge(descConnected, bit(s.Connected), s.Brick)
		gauge(descQueue, float64(s.QueueDepth), s.Brick)
		for _, g := range []string{guardSourceIdentity, guardEmptySource, guardMaxDelete, guardReplicaNotEmpty} {
			gauge(descGuard, bit(s.Stats.Guard == g), s.Brick, g)
		}
		if a := s.Audit; a != nil && !a.Finished.IsZero() {
			gauge(descAuditEnd, unixSeconds(a.Finished), s.Brick)
			if !a.Finished.Before(a.Started) {
				gauge(descAuditLength, a.Finished.Sub(a.Started).Seconds(), s.Brick)
			}
		}
	}
	if !cp.Time.IsZero() {
		gauge(descCheckpoint, bit(!cp.Completed.IsZero()))
	}
}

// unixSeconds is t as Unix time in seconds, with its fraction.
func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func listenTCP(key, addr string) (net.Listener, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", key, addr, err)
	}
	return lis, nil
}
