package harness

import "encoding/json"

// AllSynced reports whether out, the output of `georepctl status --json`,
// shows at least one worker and every worker Active with a last_synced
// time: each first pass is over (its verify included) and its stime set.
// The document always holds the last_synced field (null until a pass
// ends), so a text search for it proves nothing.
func AllSynced(out string) bool {
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
	}
	return true
}
