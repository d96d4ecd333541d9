package master

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/georep/georep/master/syncer"
	"github.com/georep/georep/rpc/buildinfo"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// metrics is the master's Prometheus registry. Counters the pipeline
// feeds through thin hooks live here; everything the workers publish
// (lag, pending, failures, totals, state) is read from the monitor when
// scraped.
type metrics struct {
	reg          *prometheus.Registry
	entryOps     *prometheus.CounterVec
	shippedFiles prometheus.Counter
	shippedBytes prometheus.Counter
	rsyncRuns    *prometheus.HistogramVec
	// guardRefusals counts the passes a safety guard refused, by guard.
	guardRefusals *prometheus.CounterVec
	// auditDifferences counts the differences the audit found, by kind;
	// auditLast* are the last round's end and length.
	auditDifferences *prometheus.CounterVec
	auditLastEnd     prometheus.Gauge
	auditLastLength  prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		entryOps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "georep_master_entry_ops_total",
			Help: "Entry operations applied on the slave, by type."}, []string{"op"}),
		shippedFiles: prometheus.NewCounter(prometheus.CounterOpts{Name: "georep_master_data_files_total",
			Help: "Regular files whose data was shipped (rsync or WriteFiles) since the master started."}),
		shippedBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "georep_master_data_bytes_total",
			Help: "Bytes of the files whose data was shipped since the master started."}),
		rsyncRuns: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "georep_master_rsync_run_duration_seconds",
			Help: "Duration of rsync runs of the sync jobs, by result.", Buckets: prometheus.ExponentialBuckets(0.01, 4, 10)},
			[]string{"result"}),
		guardRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "georep_master_guard_refusals_total",
			Help: "Passes a safety guard refused (nothing applied), by guard."}, []string{"guard"}),
		auditDifferences: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "georep_master_audit_differences_total",
			Help: "Differences between the replica and what was synced that the audit found (and repaired), by kind."}, []string{"kind"}),
		auditLastEnd: prometheus.NewGauge(prometheus.GaugeOpts{Name: "georep_master_audit_last_finished_timestamp_seconds",
			Help: "When the last audit round of a worker ended (Unix time)."}),
		auditLastLength: prometheus.NewGauge(prometheus.GaugeOpts{Name: "georep_master_audit_last_duration_seconds",
			Help: "How long the last audit round took."}),
	}
	for _, k := range auditKinds {
		m.auditDifferences.WithLabelValues(k) // every kind shows, at 0 until found
	}
	m.reg.MustRegister(m.entryOps, m.shippedFiles, m.shippedBytes, m.rsyncRuns, m.guardRefusals, m.auditDifferences, m.auditLastEnd, m.auditLastLength,
		buildinfo.Read().Collector("georep-master"), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// register adds what mon publishes to the registry.
func (m *metrics) register(mon *monitor) { m.reg.MustRegister(&statusCollector{mon: mon}) }

// auditDone records a round that ended.
func (m *metrics) auditDone(st auditStatus) {
	m.auditLastEnd.Set(float64(st.Finished.UnixNano()) / 1e9)
	m.auditLastLength.Set(st.Finished.Sub(st.Started).Seconds())
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
// failed): for the progress, the rates and the metrics.
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
	if w.mon != nil {
		w.mon.metrics.shippedFiles.Add(float64(files))
		w.mon.metrics.shippedBytes.Add(float64(bytes))
	}
}

// observeRsync is the sync jobs' hook: the duration of each rsync run.
func (w *worker) observeRsync(d time.Duration, err error) {
	if w.mon != nil {
		w.mon.metrics.rsyncRun(d, err)
	}
}

var (
	descLag = prometheus.NewDesc("georep_master_lag_seconds",
		"How far the worker's stime (last synced) is behind now.", []string{"brick"}, nil)
	descPending = prometheus.NewDesc("georep_master_pending",
		"What the changelog in flight still holds, by kind (entry, data, meta, delete).", []string{"brick", "kind"}, nil)
	descFailures = prometheus.NewDesc("georep_master_failures",
		"Entries in the worker's failure queue.", []string{"brick"}, nil)
	descSynced = prometheus.NewDesc("georep_master_synced_total",
		"What the worker has synced over the session's life (crawl stats), by kind (files, bytes, entries, deletes).",
		[]string{"brick", "kind"}, nil)
	descState = prometheus.NewDesc("georep_master_worker_state",
		"1 for the worker's current state.", []string{"brick", "state"}, nil)
	descGuard = prometheus.NewDesc("georep_master_guard_halted",
		"1 while a safety guard holds the worker (its last pass was refused), by guard; 0 otherwise.", []string{"brick", "guard"}, nil)
	descQueue = prometheus.NewDesc("georep_master_sync_queue_depth",
		"Data calls queued for the sync jobs, not yet taken by one.", []string{"brick"}, nil)
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
	for _, s := range ws {
		gauge(descLag, s.Lag.Seconds(), s.Brick)
		gauge(descPending, float64(s.Stats.EntriesPending), s.Brick, "entry")
		gauge(descPending, float64(s.Stats.FilesPending), s.Brick, "data")
		gauge(descPending, float64(s.Stats.MetaPending), s.Brick, "meta")
		gauge(descPending, float64(s.Stats.DeletesPending), s.Brick, "delete")
		gauge(descFailures, float64(s.Stats.Failures), s.Brick)
		for kind, v := range map[string]int64{"files": s.Stats.FilesSynced, "bytes": s.Stats.BytesSynced,
			"entries": s.Stats.EntriesSynced, "deletes": s.Stats.DeletesSynced} {
			ch <- prometheus.MustNewConstMetric(descSynced, prometheus.CounterValue, float64(v), s.Brick, kind)
		}
		gauge(descState, 1, s.Brick, s.State)
		gauge(descQueue, float64(s.QueueDepth), s.Brick)
		for _, g := range []string{guardSourceIdentity, guardEmptySource, guardMaxDelete, guardReplicaNotEmpty} {
			v := 0.0
			if s.Stats.Guard == g {
				v = 1
			}
			gauge(descGuard, v, s.Brick, g)
		}
	}
	if !cp.Time.IsZero() {
		v := 0.0
		if !cp.Completed.IsZero() {
			v = 1
		}
		gauge(descCheckpoint, v)
	}
}

func listenTCP(key, addr string) (net.Listener, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", key, addr, err)
	}
	return lis, nil
}
