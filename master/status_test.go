package master

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testMonitor returns a monitor on a fresh work dir with one worker per
// name, each with a work dir of its own.
func testMonitor(t *testing.T, cfg Config, names ...string) (*monitor, []*worker) {
	t.Helper()
	wd, err := openWorkDir(filepath.Join(t.TempDir(), "work"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wd.close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.WorkDir = wd.dir
	m, err := newMonitor(cfg, wd, log)
	if err != nil {
		t.Fatal(err)
	}
	var ws []*worker
	for _, n := range names {
		bwd, err := openWorkDir(wd.path("bricks/" + brickDirName(n)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { bwd.close() })
		w := &worker{cfg: cfg, log: log, wd: bwd, wake: make(chan struct{}, 1), stats: bwd.loadStats()}
		m.add(w, n)
		ws = append(ws, w)
	}
	return m, ws
}

func TestCheckpoint(t *testing.T) {
	cp := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	before, after := cp.Add(-time.Second), cp.Add(time.Second)
	type worker struct {
		state      string
		lastSynced time.Time
	}
	for _, tc := range []struct {
		name     string
		workers  []worker
		done     bool
		reached  int
		nudged   int // workers asked for a pass
		setLater bool
	}{
		{name: "one worker past it", workers: []worker{{stateActive, after}}, done: true, reached: 1},
		{name: "exactly at it", workers: []worker{{stateActive, cp}}, done: true, reached: 1},
		{name: "one worker short of it", workers: []worker{{stateActive, before}}, nudged: 1},
		{name: "never synced", workers: []worker{{stateInitializing, time.Time{}}}, nudged: 1},
		{name: "passive does not count", workers: []worker{{stateActive, after}, {statePassive, before}}, done: true, reached: 1},
		{name: "faulty counts", workers: []worker{{stateActive, after}, {stateFaulty, before}}, reached: 1, nudged: 1},
		{name: "only passive workers", workers: []worker{{statePassive, after}}},
		{name: "in the future: not nudged", workers: []worker{{stateActive, before}}, setLater: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			names := make([]string, len(tc.workers))
			for i := range names {
				names[i] = "node:/brick" + string(rune('a'+i))
			}
			m, ws := testMonitor(t, DefaultConfig(), names...)
			for i, w := range ws {
				w.stats.WorkerStatus, w.stats.LastSynced = tc.workers[i].state, tc.workers[i].lastSynced
				if err := w.wd.saveStats(w.stats); err != nil {
					t.Fatal(err)
				}
			}
			now := cp.Add(time.Minute)
			if tc.setLater {
				now = cp.Add(-time.Minute)
			}
			m.now = func() time.Time { return now }
			if _, err := m.setCheckpoint(cp); err != nil {
				t.Fatal(err)
			}
			pending := m.checkCheckpoint(now)
			p, _ := m.checkpointProgress()
			if got := !p.Checkpoint.Completed.IsZero(); got != tc.done {
				t.Errorf("completed = %v, want %v", got, tc.done)
			}
			if p.Done != tc.reached {
				t.Errorf("%d workers reached it, want %d", p.Done, tc.reached)
			}
			if len(pending) != tc.nudged {
				t.Errorf("%d workers to nudge, want %d", len(pending), tc.nudged)
			}
			// Persisted, completion time included.
			saved, err := loadCheckpoint(m.wd.path("checkpoint"))
			if err != nil {
				t.Fatal(err)
			}
			if !saved.Time.Equal(cp) || saved.Completed.IsZero() == tc.done {
				t.Errorf("saved checkpoint %+v", saved)
			}
			if tc.done && !saved.Completed.Equal(now) {
				t.Errorf("completion time %s, want %s", saved.Completed, now)
			}
		})
	}
}

func TestWaitCheckpoint(t *testing.T) {
	m, ws := testMonitor(t, DefaultConfig(), "/src")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := m.waitCheckpoint(ctx, func(checkpointProgress) error { return nil }); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("wait without a checkpoint: %v", err)
	}
	cp, err := m.setCheckpoint(time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { m.run(ctx) })
	// The worker syncs past the checkpoint a little later, from its own
	// goroutine, while the status is read concurrently (-race).
	wg.Go(func() {
		time.Sleep(300 * time.Millisecond)
		ws[0].stats.WorkerStatus, ws[0].stats.LastSynced = stateActive, cp.Time.Add(time.Millisecond)
		_ = ws[0].wd.saveStats(ws[0].stats)
	})
	wg.Go(func() {
		for ctx.Err() == nil {
			m.status()
			time.Sleep(10 * time.Millisecond)
		}
	})
	var last checkpointProgress
	err = m.waitCheckpoint(ctx, func(p checkpointProgress) error { last = p; return nil })
	cancel()
	wg.Wait()
	if err != nil || last.Checkpoint.Completed.IsZero() || last.Done != 1 || last.Total != 1 {
		t.Fatalf("wait: %v, last %+v", err, last)
	}
}

func TestPauseGate(t *testing.T) {
	m, ws := testMonitor(t, DefaultConfig(), "/src")
	if err := m.pause(); err != nil {
		t.Fatal(err)
	}
	passed := make(chan error, 1)
	go func() { passed <- m.gate(t.Context(), ws[0].entry) }()
	deadline := time.Now().Add(5 * time.Second)
	for !ws[0].entry.parked.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the worker did not park at the gate")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st, paused, _ := m.status(); !paused || st[0].State != statePaused {
		t.Fatalf("paused status: %v %+v", paused, st)
	}
	// A restarted master is still paused.
	m2, err := newMonitor(m.cfg, m.wd, m.log)
	if err != nil || !m2.paused {
		t.Fatalf("pause not persisted: %v", err)
	}
	if err := m.resume(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-passed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("resume did not open the gate")
	}
}

func TestSetConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.LogLevel = new(slog.LevelVar)
	m, ws := testMonitor(t, cfg, "/src")
	for _, tc := range []struct {
		key, value string
		err        error
		msg        string
	}{
		{key: "change-interval", value: "2s"},
		{key: "change-interval", value: "10ms", err: errBadValue, msg: `change-interval: "10ms"`},
		{key: "change-interval", value: "soon", err: errBadValue, msg: `change-interval: "soon"`},
		{key: "log-level", value: "debug"},
		{key: "bandwidth-limit", value: "20MiB/s"},
		{key: "bandwidth-limit", value: "none"},
		{key: "bandwidth-limit", value: "100Mbit/s"},
		{key: "bandwidth-limit", value: "fast", err: errBadValue, msg: `bandwidth-limit: "fast" is not a rate`},
		{key: "log-level", value: "loud", err: errBadValue, msg: `log-level: "loud" is not one of debug, info, warn, error`},
		{key: "sync-jobs", value: "4", err: errNotLive, msg: "sync-jobs cannot be changed while the master runs"},
		{key: "slave", value: "x:1", err: errNotLive, msg: "slave cannot be changed"},
		{key: "no-such-key", value: "1", err: errUnknownKey, msg: `unknown key "no-such-key"`},
	} {
		t.Run(tc.key+"="+tc.value, func(t *testing.T) {
			v, err := m.setConfig(tc.key, tc.value)
			if tc.err == nil {
				if err != nil || v.Value != tc.value || !v.Live {
					t.Fatalf("setConfig = %+v, %v", v, err)
				}
				return
			}
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("setConfig error %v, want %v saying %q", err, tc.err, tc.msg)
			}
		})
	}
	if got := ws[0].changeInterval(); got != 2*time.Second {
		t.Errorf("the worker's change-interval is %s after setting 2s", got)
	}
	if cfg.LogLevel.Level() != slog.LevelDebug {
		t.Errorf("log level %s after setting debug", cfg.LogLevel.Level())
	}
	if got := m.bw.Rate(); got != 100e6/8 {
		t.Errorf("the bandwidth limit is %s after setting 100Mbit/s", got)
	}
	all, err := m.getConfig("")
	if err != nil || len(all) < 20 {
		t.Fatalf("getConfig(\"\") = %d keys, %v", len(all), err)
	}
}

func TestProgressLine(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := &progress{start: start, entriesTotal: 100, filesTotal: 80, bytesTotal: 8 << 20}
	p.entries.Store(100)
	p.files.Store(40)
	p.bytes.Store(4 << 20)
	st := p.status(start.Add(10 * time.Second))
	if st.ETA != 10*time.Second {
		t.Errorf("ETA %s, want 10s (half the bytes in 10 s)", st.ETA)
	}
	line := progressLine([]workerStatus{{Progress: st, BytesPerSec: 400 << 10}})
	for _, want := range []string{"[===============               ]", " 50%", "entries 100/100", "files 40/80", "4.0 MiB/8.0 MiB", "400.0 KiB/s", "ETA 10s"} {
		if !strings.Contains(line, want) {
			t.Errorf("progress line %q lacks %q", line, want)
		}
	}
	if l := progressLine([]workerStatus{{}}); l != "" {
		t.Errorf("progress line with nothing in flight: %q", l)
	}
}

// TestStatusStarting: before its first worker is set up, a master shows one
// worker Initializing, named after its source or volume, not none; once a
// worker is added, only the workers.
func TestStatusStarting(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"plain directory", Config{Source: "/data"}, "/data"},
		{"GlusterFS volume", Config{GlusterVolume: "mvol"}, "mvol"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := testMonitor(t, tc.cfg)
			ws, _, _ := m.status()
			if len(ws) != 1 || ws[0].Brick != tc.want || ws[0].State != stateInitializing || !strings.HasPrefix(ws[0].Reason, "starting") {
				t.Fatalf("status while starting: %+v", ws)
			}
			m, _ = testMonitor(t, tc.cfg, "host:/b1")
			if ws, _, _ = m.status(); len(ws) != 1 || ws[0].Brick != "host:/b1" {
				t.Fatalf("status with a worker: %+v", ws)
			}
		})
	}
}
