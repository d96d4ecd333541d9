package main

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	masterv1 "github.com/georep/georep/gen/georep/master/v1"
)

func TestAuditText(t *testing.T) {
	at := timestamppb.New(time.Date(2026, 12, 7, 16, 10, 6, 0, time.Local))
	next := timestamppb.New(time.Date(2026, 12, 8, 16, 10, 6, 0, time.Local))
	tests := []struct {
		name string
		a    *masterv1.AuditStatus
		want string
	}{
		{"running", &masterv1.AuditStatus{Started: at, Running: true, EntriesChecked: 5000},
			"audit running since 2026-12-07 16:10:06: 5000 entries checked, 0 differences, 0 repaired"},
		{"with contents", &masterv1.AuditStatus{Started: at, Finished: at, DurationSeconds: 0.033, Content: true, EntriesChecked: 9,
			FilesHashed: 6, BytesHashed: 24576, Differences: 3, Repaired: 3, ByKind: map[string]int64{"size": 1, "content": 2, "mtime": 0}, Next: next},
			"last audit with contents 2026-12-07 16:10:06, took 33ms: 9 entries checked, 6 files hashed (24.0 KiB), 3 differences (content 2, size 1), 3 repaired; next 2026-12-08 16:10:06"},
		{"stopped short", &masterv1.AuditStatus{Started: at, Finished: at, DurationSeconds: 2, EntriesChecked: 10, Differences: 1000, Error: "max-delete refused"},
			"last audit 2026-12-07 16:10:06, took 2s: 10 entries checked, 1000 differences, 0 repaired; stopped short: max-delete refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := auditText(tt.a); got != tt.want {
				t.Errorf("auditText =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}
