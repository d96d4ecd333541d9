package harness

import (
	"testing"
	"time"
)

func TestAllSynced(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      bool
	}{
		{"no workers", `{"workers":[]}`, false},
		{"initializing", `{"workers":[{"state":"Initializing","last_synced":null}]}`, false},
		{"active, first pass running", `{"workers":[{"state":"Active","last_synced":null}]}`, false},
		{"active and synced", `{"workers":[{"state":"Active","last_synced":"2026-12-07T22:50:00Z"}]}`, true},
		{"one of two synced", `{"workers":[{"state":"Active","last_synced":"2026-12-07T22:50:00Z"},{"state":"Active","last_synced":null}]}`, false},
		{"not json", `Active last_synced`, false},
	} {
		if got := AllSynced(tc.doc); got != tc.want {
			t.Errorf("%s: AllSynced = %v, want %v", tc.name, got, tc.want)
		}
	}
	doc := `{"workers":[{"state":"Active","last_synced":"2026-12-07T22:50:00Z"}]}`
	if !AllSyncedSince(doc, time.Date(2026, 12, 7, 22, 50, 0, 0, time.UTC)) || AllSyncedSince(doc, time.Date(2026, 12, 7, 22, 50, 1, 0, time.UTC)) {
		t.Error("AllSyncedSince does not compare last_synced with since")
	}
}
