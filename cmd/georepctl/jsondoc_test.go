package main

import (
	"bytes"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/georep/georep/cmd/georepctl/schema"
	masterv1 "github.com/georep/georep/gen/georep/master/v1"
)

// fullWorker sets every field of a worker, so that a document printed from
// it shows every field the schema has and the schema every field printed
// (the schema requires each property and allows no other).
func fullWorker() *masterv1.WorkerStatus {
	w := worker("node1", "/bricks/b1", masterv1.WorkerState_WORKER_STATE_ACTIVE, true)
	w.EntryPending, w.DataPending, w.MetaPending, w.DeletesPending, w.Failures = 1, 2, 3, 4, 5
	w.Reason, w.ReplicaSet = "last: slave restarted", "0"
	w.FilesSynced, w.BytesSynced, w.EntriesSynced, w.DeletesSynced = 10, 1<<40, 30, 40
	w.Progress = &masterv1.Progress{EntriesDone: 1, EntriesTotal: 2, FilesDone: 3, FilesTotal: 4, BytesDone: 5, BytesTotal: 6,
		EtaSeconds: 7, Started: ts0}
	w.Audit = &masterv1.AuditStatus{Started: ts0, Finished: timestamppb.New(t0.Add(1500)), DurationSeconds: 1.5, Content: true,
		EntriesChecked: 100, FilesHashed: 50, BytesHashed: 4096, Differences: 2, Repaired: 2,
		ByKind: map[string]int64{"mtime": 1, "content": 1}, Error: "slave went away", Next: ts0}
	return w
}

// TestJSONSchema: what status, failures, checkpoint, skip and audit print
// with --json is what georepctl.schema.json describes, for fully set
// answers, the golden session and workers in every state.
func TestJSONSchema(t *testing.T) {
	full := []answer[*masterv1.GetStatusResponse]{{Node: "n1:7101", Resp: &masterv1.GetStatusResponse{
		MasterVolume: "mvol", Slave: "s:7100", Paused: true,
		Checkpoint: &masterv1.Checkpoint{Time: ts0, SetTime: ts0, Completed: true, CompletionTime: ts0},
		Build:      &masterv1.BuildInfo{Version: "v1", Commit: "abc", Time: "2026-12-01T10:00:00Z", GoVersion: "go1.26"},
		Workers:    []*masterv1.WorkerStatus{fullWorker()},
	}}, {Node: "n2:7101", Err: errDown}}
	var states []*masterv1.WorkerStatus
	for st := range masterv1.WorkerState_name {
		states = append(states, &masterv1.WorkerStatus{State: masterv1.WorkerState(st)})
	}
	f := &masterv1.Failure{Brick: "n1:/b", Gfid: "b1fe9ad2-e49a-4195-9894-387c7019c226", Path: "p", Reason: "r", Data: true,
		Since: ts0, Last: ts0, Attempts: 3, Class: masterv1.FailureClass_FAILURE_CLASS_PERMANENT, Errno: "EPERM", Side: "slave"}
	sk := &masterv1.SkippedFailure{Failure: f, Time: ts0, By: "uid=0 gid=0 pid=1", Reason: "accepted"}
	failures := []answer[*masterv1.ListFailuresResponse]{
		{Node: "n1:7101", Resp: &masterv1.ListFailuresResponse{Failures: []*masterv1.Failure{f, {}}, Skipped: []*masterv1.SkippedFailure{sk}}},
		{Node: "n2:7101", Err: errSlow}}
	tests := []struct {
		name, def string
		print     func(w *bytes.Buffer) error
	}{
		{"status full", schema.Status, func(w *bytes.Buffer) error { return printClusterStatusJSON(w, full) }},
		{"status session", schema.Status, func(w *bytes.Buffer) error { return printClusterStatusJSON(w, sessionAnswers()) }},
		{"status states", schema.Status, func(w *bytes.Buffer) error {
			return printClusterStatusJSON(w, []answer[*masterv1.GetStatusResponse]{{Node: "n", Resp: &masterv1.GetStatusResponse{Workers: states}}})
		}},
		{"status none", schema.Status, func(w *bytes.Buffer) error { return printClusterStatusJSON(w, nil) }},
		{"failures", schema.Failures, func(w *bytes.Buffer) error { return printClusterFailuresJSON(w, failures) }},
		{"checkpoint full", schema.Checkpoint, func(w *bytes.Buffer) error { return printClusterCheckpointJSON(w, full) }},
		{"checkpoint session", schema.Checkpoint, func(w *bytes.Buffer) error { return printClusterCheckpointJSON(w, sessionAnswers()) }},
		{"skip", schema.Skip, func(w *bytes.Buffer) error {
			return printClusterSkipJSON(w, []answer[*masterv1.SkipFailureResponse]{{Node: "n1", Resp: &masterv1.SkipFailureResponse{
				Skipped: []*masterv1.SkippedFailure{sk}, Logs: []string{"/w/skipped.log"}}}})
		}},
		{"audit", schema.Audit, func(w *bytes.Buffer) error {
			return writeJSON(w, auditDocOf([]answer[*masterv1.AuditResponse]{{Node: "n1", Resp: &masterv1.AuditResponse{
				Workers: []*masterv1.WorkerStatus{fullWorker()}}}}))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := tc.print(&out); err != nil {
				t.Fatal(err)
			}
			if err := schema.Validate(tc.def, out.Bytes()); err != nil {
				t.Errorf("%v\n%s", err, out.String())
			}
		})
	}
}

// TestJSONSchemaRefuses: the schema is strict, so the test above can fail:
// a field missing, a field it does not know, a counter as a string (what
// protojson prints for int64), an enum name for a state.
func TestJSONSchemaRefuses(t *testing.T) {
	var out bytes.Buffer
	if err := printClusterFailuresJSON(&out, []answer[*masterv1.ListFailuresResponse]{{Node: "n", Resp: &masterv1.ListFailuresResponse{}}}); err != nil {
		t.Fatal(err)
	}
	good := out.String()
	if err := schema.Validate(schema.Failures, []byte(good)); err != nil {
		t.Fatalf("the base document: %v", err)
	}
	bad := map[string]string{
		"missing":  `{"schema_version":1,"nodes":[],"failures":[]}`,
		"unknown":  `{"schema_version":1,"nodes":[],"failures":[],"skipped":[],"extra":1}`,
		"string64": `{"schema_version":1,"nodes":[],"failures":[{"node":"n","brick":"b","gfid":"g","path":"","reason":"","data":false,"since":null,"last":null,"attempts":"3","class":"transient","errno":"","side":""}],"skipped":[]}`,
		"badtime":  `{"schema_version":1,"nodes":[],"failures":[{"node":"n","brick":"b","gfid":"g","path":"","reason":"","data":false,"since":"yesterday","last":null,"attempts":3,"class":"transient","errno":"","side":""}],"skipped":[]}`,
		"version":  `{"schema_version":2,"nodes":[],"failures":[],"skipped":[]}`,
	}
	for name, doc := range bad {
		if err := schema.Validate(schema.Failures, []byte(doc)); err == nil {
			t.Errorf("%s: accepted %s", name, doc)
		}
	}
	state := `{"schema_version":1,"master_volume":"","slave":"","paused":false,"checkpoint":null,"nodes":[],"workers":[` +
		`{"node":"","master_node":"","brick":"","slave":"","state":"WORKER_STATE_ACTIVE","crawl_status":"","last_synced":null,` +
		`"entry_pending":0,"data_pending":0,"meta_pending":0,"deletes_pending":0,"failures":0,"checkpoint_time":null,` +
		`"checkpoint_completed":false,"checkpoint_completion_time":null,"lag_seconds":0,"bytes_per_second":0,"files_per_second":0,` +
		`"reason":"","files_synced":0,"bytes_synced":0,"entries_synced":0,"deletes_synced":0,"replica_set":"","progress":null,"audit":null}]}`
	if err := schema.Validate(schema.Status, []byte(state)); err == nil {
		t.Error("a proto enum name as the state was accepted")
	}
	if err := schema.Validate(schema.Status, []byte(strings.Replace(state, "WORKER_STATE_ACTIVE", "Active", 1))); err != nil {
		t.Errorf("the same worker Active: %v", err)
	}
}
