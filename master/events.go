package master

import (
	"bufio"
	"os"
	"strings"

	"github.com/georep/georep/master/events"
)

// The events a master announces (master/events): gsyncd's worker states and
// checkpoint completion, with gsyncd's fields, and the guard refusals.

// glusterdInfo is where glusterd keeps this node's UUID.
var glusterdInfo = "/var/lib/glusterd/glusterd.info"

// glusterdUUID reads UUID= from glusterd.info ("" when there is none: not a
// GlusterFS node).
func glusterdUUID(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "UUID="); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// eventFields are the fields gsyncd's events carry for a worker: the
// master volume (or source), this node, the slave and the brick.
func (m *monitor) eventFields(w *worker) []events.Field {
	primary := m.cfg.Source
	if m.cfg.GlusterVolume != "" {
		primary = m.cfg.GlusterVolume
	}
	host, vol := m.cfg.Slave, ""
	if c := w.client; c != nil && len(c.eps) > 0 {
		host, vol = c.current().addr, c.slaveVolume()
	}
	brick := m.cfg.Source
	if w.brick != nil {
		brick = w.brick.path
	}
	return []events.Field{{Key: "primary_volume", Value: primary}, {Key: "primary_node", Value: m.node},
		{Key: "primary_node_id", Value: m.nodeID}, {Key: "secondary_host", Value: host},
		{Key: "secondary_volume", Value: vol}, {Key: "brick_path", Value: brick}}
}

// stateEvent announces a worker that turned Active, Passive or Faulty.
func (m *monitor) stateEvent(w *worker, state, why string) {
	if !m.events.Enabled() {
		return
	}
	var typ events.Type
	switch state {
	case stateActive:
		typ = events.Active
	case statePassive:
		typ = events.Passive
	case stateFaulty:
		typ = events.Faulty
	default:
		return
	}
	fields := m.eventFields(w)
	if typ == events.Faulty {
		// gsyncd's FAULTY names the slave node it was on; the reason is georep's.
		fields = append(fields, events.Field{Key: "current_secondary_host", Value: fields[3].Value}, events.Field{Key: "reason", Value: why})
	}
	m.events.Emit(events.Event{Type: typ, Fields: fields})
}

// guardEvent announces a pass a safety guard refused.
func (m *monitor) guardEvent(w *worker, g *GuardError) {
	if !m.events.Enabled() {
		return
	}
	fields := append(m.eventFields(w), events.Field{Key: "guard", Value: g.Guard}, events.Field{Key: "reason", Value: g.Detail},
		events.Field{Key: "proceed", Value: g.Proceed})
	m.events.Emit(events.Event{Type: events.GuardRefused, Fields: fields})
}

// checkpointEvent announces a completed checkpoint (gsyncd's fields:
// seconds since the epoch).
func (m *monitor) checkpointEvent(cp checkpoint) {
	primary := m.cfg.Source
	if m.cfg.GlusterVolume != "" {
		primary = m.cfg.GlusterVolume
	}
	m.events.Emit(events.Event{Type: events.CheckpointCompleted, Fields: []events.Field{
		{Key: "primary_volume", Value: primary}, {Key: "primary_node", Value: m.node}, {Key: "primary_node_id", Value: m.nodeID},
		{Key: "secondary_host", Value: m.cfg.Slave}, {Key: "checkpoint_time", Value: events.Unix(cp.Time)},
		{Key: "checkpoint_completion_time", Value: events.Unix(cp.Completed)},
	}})
}
