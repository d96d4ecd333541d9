package harness

import (
	"encoding/json"
	"time"
)

// AllSynced reports whether out, the output of `georepctl status --json`,
// shows at least one worker and every worker Active with a last_synced
// time: each first pass is over (its verify included) and its stime set.
// The document always holds the last_synced field (null until a pass
// ends), so a text search for it proves nothing.
func AllSynced(out string) bool { return AllSyncedSince(out, time.Time{}) }

// AllSyncedSince is AllSynced with every worker's last_synced at or after
// since: on a brick, the changelog that recorded changes made before the
// daemon started rolls over after its first pass and is applied after it
// (its data shipped again); waiting for stime to pass them leaves the
// master with nothing to do.
func AllSyncedSince(out string, since time.Time) bool {
	var doc struct {
		Workers []struct {
			State      string  `json:"state"`
			LastSynced *string `json:"last_synced"`
		} `json:"workers"`
	}
	if json.Unmarshal([]byte(out), &doc) != nil || len(doc.Workers) == 0 {
		return false
	}
	for _, w := range doc.Workers {
		if w.State != "Active" || w.LastSynced == nil || *w.LastSynced == "" {
			return false
		}
		if t, err := time.Parse(time.RFC3339Nano, *w.LastSynced); err != nil || t.Before(since) {
			return false
		}
	}
	return true
}
