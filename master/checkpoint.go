package master

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// checkpoint is gsyncd's checkpoint: a time the operator wants the slave to
// have reached. A worker has reached it once its stime (last synced) is at
// or after it; the checkpoint is complete when every worker that syncs
// (not Passive, not stopped) has. Kept in <work-dir>/checkpoint.
type checkpoint struct {
	Time  time.Time `json:"time"`
	SetAt time.Time `json:"set_at"`
	// Completed is when the checkpoint was found complete (zero: not yet).
	Completed time.Time `json:"completed,omitzero"`
	// Workers holds when each worker reached it.
	Workers map[string]time.Time `json:"workers,omitempty"`
}

// ErrNoCheckpoint is returned when waiting without a checkpoint set.
var ErrNoCheckpoint = errors.New("no checkpoint is set (georepctl checkpoint set now)")

func loadCheckpoint(path string) (checkpoint, error) {
	var cp checkpoint
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cp, nil
	}
	if err != nil {
		return cp, fmt.Errorf("checkpoint: %w", err)
	}
	if err := json.Unmarshal(b, &cp); err != nil {
		return cp, fmt.Errorf("checkpoint %s: %w (remove it, or set a new checkpoint)", path, err)
	}
	return cp, nil
}

// setCheckpoint replaces the checkpoint with one at t (zero: now).
func (m *monitor) setCheckpoint(t time.Time) (checkpoint, error) {
	now := m.now()
	if t.IsZero() {
		t = now
	}
	cp := checkpoint{Time: t.UTC(), SetAt: now.UTC()}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := writeJSON(m.wd.path("checkpoint"), cp); err != nil {
		return checkpoint{}, err
	}
	m.cp = cp
	m.broadcast()
	m.log.Info("checkpoint set", "checkpoint", cp.Time.Format(time.RFC3339))
	return cp, nil
}

// clearCheckpoint removes the checkpoint (config reset checkpoint).
func (m *monitor) clearCheckpoint() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := os.Remove(m.wd.path("checkpoint")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("clearing the checkpoint: %w", err)
	}
	had := !m.cp.Time.IsZero()
	m.cp = checkpoint{}
	m.broadcast()
	if had {
		m.log.Info("checkpoint cleared")
	}
	return nil
}

// broadcast wakes whoever waits on the checkpoint (m.mu held).
func (m *monitor) broadcast() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// counts says whether a worker in state takes part in the checkpoint.
func counts(state string) bool {
	return state != statePassive && state != stateStopped
}

// checkCheckpoint records the workers that have reached the checkpoint,
// and its completion once all have. It returns the workers still short of
// it, once the checkpoint time has come.
func (m *monitor) checkCheckpoint(now time.Time) []*worker {
	m.mu.Lock()
	defer m.mu.Unlock()
	cp := m.cp
	if cp.Time.IsZero() || !cp.Completed.IsZero() {
		return nil
	}
	var pending []*worker
	dirty, all, n := false, true, 0
	for _, e := range m.workers {
		st := e.w.snapshot(now).Stats
		if e.exited.Load() || !counts(st.WorkerStatus) {
			continue
		}
		n++
		if _, ok := cp.Workers[e.name]; ok {
			continue
		}
		if !st.LastSynced.IsZero() && !st.LastSynced.Before(cp.Time) {
			if cp.Workers == nil {
				cp.Workers = map[string]time.Time{}
			}
			cp.Workers[e.name] = now.UTC()
			dirty = true
			continue
		}
		all = false
		if !now.Before(cp.Time) {
			pending = append(pending, e.w)
		}
	}
	if all && n > 0 {
		cp.Completed = now.UTC()
		dirty = true
		m.log.Info("checkpoint completed", "checkpoint", cp.Time.Format(time.RFC3339), "completion_time", cp.Completed.Format(time.RFC3339))
		m.checkpointEvent(cp)
	}
	if dirty {
		if err := writeJSON(m.wd.path("checkpoint"), cp); err != nil {
			m.log.Warn("saving the checkpoint", "err", err)
		}
		m.cp = cp
		m.broadcast()
	}
	return pending
}

// checkpointProgress is what a waiter is told.
type checkpointProgress struct {
	Checkpoint  checkpoint
	Done, Total int
}

func (m *monitor) checkpointProgress() (checkpointProgress, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := checkpointProgress{Checkpoint: m.cp}
	now := m.now()
	for _, e := range m.workers {
		if e.exited.Load() || !counts(e.w.snapshot(now).Stats.WorkerStatus) {
			continue
		}
		p.Total++
		if _, ok := m.cp.Workers[e.name]; ok {
			p.Done++
		}
	}
	return p, m.changed
}

// waitCheckpoint calls report with the checkpoint's progress when it
// changes, and at least every second, until it is complete (nil), ctx is
// done, or report fails. ErrNoCheckpoint without a checkpoint.
func (m *monitor) waitCheckpoint(ctx context.Context, report func(checkpointProgress) error) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		p, changed := m.checkpointProgress()
		if p.Checkpoint.Time.IsZero() {
			return ErrNoCheckpoint
		}
		if err := report(p); err != nil {
			return err
		}
		if !p.Checkpoint.Completed.IsZero() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-t.C:
		}
	}
}
