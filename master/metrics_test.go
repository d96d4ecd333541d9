package master

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetricsCollector scrapes the registry of a monitor whose workers
// published stats, and checks every family the status collector writes.
func TestMetricsCollector(t *testing.T) {
	synced := time.Date(2026, 12, 7, 12, 0, 0, 500_000_000, time.UTC)
	m, ws := testMonitor(t, DefaultConfig(), "/src", "node:/never")
	a := ws[0]
	a.stats = crawlStats{WorkerStatus: stateActive, LastSynced: synced, FilesSynced: 3, BytesSynced: 300,
		EntriesSynced: 5, DeletesSynced: 1, FilesPending: 2, Failures: 4, Guard: guardMaxDelete}
	if err := a.wd.saveStats(a.stats); err != nil {
		t.Fatal(err)
	}
	a.audit = &auditor{status: auditStatus{Started: synced.Add(-2 * time.Second), Finished: synced}}
	ws[1].stats = crawlStats{WorkerStatus: stateFaulty}
	if err := ws[1].wd.saveStats(ws[1].stats); err != nil {
		t.Fatal(err)
	}
	a.auditFound("content", 2)

	want := `# HELP georep_master_last_synced_timestamp_seconds The worker's stime as Unix time: everything changed on its source before it is on the slave (lag: time() minus it); absent before the first sync.
# TYPE georep_master_last_synced_timestamp_seconds gauge
georep_master_last_synced_timestamp_seconds{brick="/src"} 1.7966448005e+09
# HELP georep_master_synced_files_total Regular files whose data the worker shipped over the session's life (its crawl stats: kept across restarts).
# TYPE georep_master_synced_files_total counter
georep_master_synced_files_total{brick="/src"} 3
georep_master_synced_files_total{brick="node:/never"} 0
# HELP georep_master_synced_bytes_total Bytes of the files whose data the worker shipped over the session's life.
# TYPE georep_master_synced_bytes_total counter
georep_master_synced_bytes_total{brick="/src"} 300
georep_master_synced_bytes_total{brick="node:/never"} 0
# HELP georep_master_synced_deletes_total Deletes (UNLINK, RMDIR) the worker applied on the slave over the session's life.
# TYPE georep_master_synced_deletes_total counter
georep_master_synced_deletes_total{brick="/src"} 1
georep_master_synced_deletes_total{brick="node:/never"} 0
# HELP georep_master_failures Entries in the worker's failure queue.
# TYPE georep_master_failures gauge
georep_master_failures{brick="/src"} 4
georep_master_failures{brick="node:/never"} 0
# HELP georep_master_session_connected 1 while the worker holds an open session with its slave over a live connection, 0 otherwise.
# TYPE georep_master_session_connected gauge
georep_master_session_connected{brick="/src"} 0
georep_master_session_connected{brick="node:/never"} 0
# HELP georep_master_audit_last_finished_timestamp_seconds When the worker's last audit round ended (Unix time); absent before the first.
# TYPE georep_master_audit_last_finished_timestamp_seconds gauge
georep_master_audit_last_finished_timestamp_seconds{brick="/src"} 1.7966448005e+09
# HELP georep_master_audit_last_duration_seconds How long the worker's last audit round took; absent before the first.
# TYPE georep_master_audit_last_duration_seconds gauge
georep_master_audit_last_duration_seconds{brick="/src"} 2
`
	if err := testutil.GatherAndCompare(m.metrics.reg, strings.NewReader(want),
		"georep_master_last_synced_timestamp_seconds", "georep_master_synced_files_total", "georep_master_synced_bytes_total",
		"georep_master_synced_deletes_total", "georep_master_failures", "georep_master_session_connected",
		"georep_master_audit_last_finished_timestamp_seconds", "georep_master_audit_last_duration_seconds"); err != nil {
		t.Error(err)
	}

	// One series per state for each worker, 1 for its state only.
	for _, tc := range []struct{ brick, state string }{{"/src", stateActive}, {"node:/never", stateFaulty}} {
		for _, st := range stateNames {
			v := 0.0
			if st == tc.state {
				v = 1
			}
			series := fmt.Sprintf(`georep_master_worker_state{brick=%q,state=%q} %g`, tc.brick, st, v)
			if !scraped(t, m, series) {
				t.Errorf("no %s", series)
			}
		}
	}
	for _, series := range []string{
		`georep_master_pending{brick="/src",kind="data"} 2`,
		`georep_master_guard_halted{brick="/src",guard="max-delete"} 1`,
		`georep_master_guard_halted{brick="/src",guard="empty-source"} 0`,
		`georep_master_audit_differences_total{brick="/src",kind="content"} 2`,
		`georep_master_audit_differences_total{brick="node:/never",kind="content"} 0`,
		`georep_master_synced_entries_total{brick="/src"} 5`,
	} {
		if !scraped(t, m, series) {
			t.Errorf("no %s", series)
		}
	}
	if problems, err := testutil.GatherAndLint(m.metrics.reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
}

// scraped says whether the registry of m exposes series (name{labels}
// value) as the text format writes it.
func scraped(t *testing.T, m *monitor, series string) bool {
	t.Helper()
	mfs, err := m.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			var labels []string
			for _, l := range mt.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			v := mt.GetGauge().GetValue() + mt.GetCounter().GetValue()
			fmt.Fprintf(&b, "%s{%s} %g\n", mf.GetName(), strings.Join(labels, ","), v)
		}
	}
	return strings.Contains(b.String(), series+"\n")
}

// TestMetricsStatesMatchTheProtocol keeps the states of the metric and of
// the status service the same.
func TestMetricsStatesMatchTheProtocol(t *testing.T) {
	var proto []string
	for s := range workerStates {
		proto = append(proto, s)
	}
	slices.Sort(proto)
	got := slices.Sorted(slices.Values(stateNames))
	if !slices.Equal(got, proto) {
		t.Errorf("georep_master_worker_state's states %v, the status service's %v", got, proto)
	}
}

// TestHeartbeat: an idle Active worker whose stime is older than
// stimeHeartbeat is asked for a pass (which moves stime), once per
// heartbeat; no other worker is.
func TestHeartbeat(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	old, fresh := now.Add(-2*stimeHeartbeat), now.Add(-stimeHeartbeat/2)
	for _, tc := range []struct {
		name   string
		stats  crawlStats
		paused bool
		nudged bool
	}{
		{name: "idle, stime old", stats: crawlStats{WorkerStatus: stateActive, LastSynced: old}, nudged: true},
		{name: "idle, stime fresh", stats: crawlStats{WorkerStatus: stateActive, LastSynced: fresh}},
		{name: "never synced", stats: crawlStats{WorkerStatus: stateActive}},
		{name: "passive", stats: crawlStats{WorkerStatus: statePassive, LastSynced: old}},
		{name: "faulty", stats: crawlStats{WorkerStatus: stateFaulty, LastSynced: old}},
		{name: "items pending", stats: crawlStats{WorkerStatus: stateActive, LastSynced: old, FilesPending: 1}},
		{name: "failures hold stime", stats: crawlStats{WorkerStatus: stateActive, LastSynced: old, Failures: 1}},
		{name: "paused", stats: crawlStats{WorkerStatus: stateActive, LastSynced: old}, paused: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, ws := testMonitor(t, DefaultConfig(), "/src")
			w := ws[0]
			if err := w.wd.saveStats(tc.stats); err != nil {
				t.Fatal(err)
			}
			m.paused = tc.paused
			m.heartbeat(now)
			if got := w.tick.Load(); got != tc.nudged {
				t.Fatalf("asked for a pass: %v, want %v", got, tc.nudged)
			}
			if !tc.nudged {
				return
			}
			w.tick.Store(false)
			<-w.wake
			m.heartbeat(now.Add(stimeHeartbeat / 2)) // stime has not moved, but it was asked already
			if w.tick.Load() {
				t.Error("asked again within stimeHeartbeat")
			}
			m.heartbeat(now.Add(stimeHeartbeat))
			if !w.tick.Load() {
				t.Error("not asked again after stimeHeartbeat")
			}
		})
	}
}
