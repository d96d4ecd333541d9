package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	masterv1 "github.com/georep/georep/gen/georep/master/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s--- want\n%s", name, got, want)
	}
}

var (
	t0       = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	ts0      = timestamppb.New(t0)
	errDown  = status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp 10.0.0.3:7101: connect: connection refused"`)
	errSlow  = fmt.Errorf("%w: no answer within 5s", errNoAnswer)
	errOther = status.Error(codes.Internal, "checkpoint: disk full")
)

func worker(node, brick string, st masterv1.WorkerState, done bool) *masterv1.WorkerStatus {
	w := &masterv1.WorkerStatus{MasterNode: node, Brick: node + ":" + brick, Slave: "backup:7100", State: st,
		CrawlStatus: masterv1.CrawlStatus_CRAWL_STATUS_CHANGELOG, LastSynced: timestamppb.New(t0.Add(time.Minute)),
		CheckpointTime: ts0, CheckpointCompleted: done, LagSeconds: 2, FilesPerSecond: 10, BytesPerSecond: 4096}
	if done {
		w.CheckpointCompletionTime = timestamppb.New(t0.Add(30 * time.Second))
	}
	if st == masterv1.WorkerState_WORKER_STATE_PASSIVE {
		w.CrawlStatus, w.LastSynced, w.CheckpointCompleted, w.CheckpointCompletionTime = 0, nil, false, nil
	}
	return w
}

// sessionAnswers are three nodes of a 2 x 3 volume: two answer, one is down.
func sessionAnswers() []answer[*masterv1.GetStatusResponse] {
	cp := func(done bool) *masterv1.Checkpoint {
		c := &masterv1.Checkpoint{Time: ts0, SetTime: ts0, Completed: done}
		if done {
			c.CompletionTime = timestamppb.New(t0.Add(30 * time.Second))
		}
		return c
	}
	faulty := worker("node2", "/bricks/b2", masterv1.WorkerState_WORKER_STATE_FAULTY, false)
	faulty.Reason = "handshake with slave backup:7100: connection refused"
	active := worker("node2", "/bricks/b1", masterv1.WorkerState_WORKER_STATE_ACTIVE, false)
	active.Progress = &masterv1.Progress{EntriesDone: 10, EntriesTotal: 20, FilesDone: 5, FilesTotal: 10, BytesDone: 1 << 20,
		BytesTotal: 2 << 20, Started: timestamppb.New(t0), EtaSeconds: 60}
	return []answer[*masterv1.GetStatusResponse]{
		{Node: "node1:7101", Resp: &masterv1.GetStatusResponse{MasterVolume: "mvol", Slave: "backup:7100", Checkpoint: cp(true),
			Workers: []*masterv1.WorkerStatus{
				worker("node1", "/bricks/b1", masterv1.WorkerState_WORKER_STATE_ACTIVE, true),
				worker("node1", "/bricks/b2", masterv1.WorkerState_WORKER_STATE_PASSIVE, false),
			}}},
		{Node: "node2:7101", Resp: &masterv1.GetStatusResponse{MasterVolume: "mvol", Slave: "backup:7100", Checkpoint: cp(false), Paused: true,
			Workers: []*masterv1.WorkerStatus{active, faulty}}},
		{Node: "node3:7101", Err: errDown},
	}
}

func TestPrintCluster(t *testing.T) {
	now := t0.Add(10 * time.Second)
	failures := []answer[*masterv1.ListFailuresResponse]{
		{Node: "node1:7101", Resp: &masterv1.ListFailuresResponse{}},
		{Node: "node2:7101", Resp: &masterv1.ListFailuresResponse{
			Failures: []*masterv1.Failure{{Brick: "node2:/bricks/b1", Gfid: "b1fe9ad2-e49a-4195-9894-387c7019c226", Path: "bad",
				Reason: "meta: xattr reserved", Since: ts0, Attempts: 2, Class: masterv1.FailureClass_FAILURE_CLASS_PERMANENT,
				Errno: "EPERM", Side: "slave"}},
			Skipped: []*masterv1.SkippedFailure{{Failure: &masterv1.Failure{Brick: "node2:/bricks/b2",
				Gfid: "0a6fcd2f-6d0e-4bd8-93d3-6bb0e3c0d9f8", Path: "x"}, Time: ts0, By: "uid 0 pid 42", Reason: "accepted"}},
		}},
		{Node: "node3:7101", Err: errSlow},
	}
	config := []answer[*masterv1.GetConfigResponse]{
		{Node: "node1:7101", Resp: &masterv1.GetConfigResponse{Values: []*masterv1.ConfigValue{
			{Key: "change-interval", Value: "5s", Live: true, Source: "default"}, {Key: "sync-jobs", Value: "3", Source: "file"},
			{Key: "max-delete", Value: "50%", Live: true, Source: "live"}, {Key: "rsync-options", Source: "default"}}}},
		{Node: "node2:7101", Resp: &masterv1.GetConfigResponse{Values: []*masterv1.ConfigValue{
			{Key: "change-interval", Value: "5s", Live: true, Source: "flag"}, {Key: "sync-jobs", Value: "4", Source: "file"},
			{Key: "rsync-options", Source: "default"}}}},
		{Node: "node3:7101", Err: errOther},
	}
	tests := []struct {
		name  string
		print func(w, errw *bytes.Buffer) error
	}{
		{"status.txt", func(w, _ *bytes.Buffer) error { return printClusterStatus(w, sessionAnswers(), now) }},
		{"status.json", func(w, _ *bytes.Buffer) error { return printClusterStatusJSON(w, sessionAnswers()) }},
		{"checkpoint.txt", func(w, _ *bytes.Buffer) error { return printClusterCheckpoint(w, sessionAnswers()) }},
		{"checkpoint.json", func(w, _ *bytes.Buffer) error { return printClusterCheckpointJSON(w, sessionAnswers()) }},
		{"failures.txt", func(w, _ *bytes.Buffer) error { return printClusterFailures(w, failures) }},
		{"failures.json", func(w, _ *bytes.Buffer) error { return printClusterFailuresJSON(w, failures) }},
		{"config.txt", func(w, errw *bytes.Buffer) error { return printClusterConfig(w, errw, config, "") }},
		{"config.json", func(w, _ *bytes.Buffer) error { return printClusterConfigJSON(w, config) }},
		{"report.txt", func(w, errw *bytes.Buffer) error {
			printReport(w, errw, []answer[*masterv1.PauseResponse]{{Node: "node1:7101"}, {Node: "node2:7101", Err: errOther},
				{Node: "node3:7101", Err: errDown}}, "paused", func(*masterv1.PauseResponse) string { return "paused" })
			return nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errw bytes.Buffer
			if err := tc.print(&out, &errw); err != nil {
				t.Fatal(err)
			}
			got := out.String()
			if errw.Len() > 0 {
				got += "--- stderr\n" + errw.String()
			}
			golden(t, "cluster-"+tc.name, got)
		})
	}
}

func TestSessionCheckpoint(t *testing.T) {
	at := func(d time.Duration, done bool) answer[*masterv1.GetStatusResponse] {
		cp := &masterv1.Checkpoint{Time: timestamppb.New(t0.Add(d)), SetTime: ts0, Completed: done}
		if done {
			cp.CompletionTime = timestamppb.New(t0.Add(d + time.Minute))
		}
		return answer[*masterv1.GetStatusResponse]{Resp: &masterv1.GetStatusResponse{Checkpoint: cp}}
	}
	none := answer[*masterv1.GetStatusResponse]{Resp: &masterv1.GetStatusResponse{}}
	down := answer[*masterv1.GetStatusResponse]{Err: errDown}
	tests := []struct {
		name     string
		as       []answer[*masterv1.GetStatusResponse]
		nilCP    bool
		time     bool // the time is set (the nodes agree)
		complete bool
	}{
		{name: "none", as: []answer[*masterv1.GetStatusResponse]{none, none}, nilCP: true},
		{name: "all complete", as: []answer[*masterv1.GetStatusResponse]{at(0, true), at(0, true)}, time: true, complete: true},
		{name: "one not", as: []answer[*masterv1.GetStatusResponse]{at(0, true), at(0, false)}, time: true},
		{name: "one down", as: []answer[*masterv1.GetStatusResponse]{at(0, true), down}, time: true},
		{name: "one without", as: []answer[*masterv1.GetStatusResponse]{at(0, true), none}, time: true},
		{name: "times differ", as: []answer[*masterv1.GetStatusResponse]{at(0, true), at(time.Second, true)}, complete: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cp := sessionCheckpoint(tc.as)
			if tc.nilCP {
				if cp != nil {
					t.Errorf("checkpoint %v, want none", cp)
				}
				return
			}
			if cp == nil || (cp.GetTime() != nil) != tc.time || cp.GetCompleted() != tc.complete {
				t.Errorf("checkpoint %v: want time %v, complete %v", cp, tc.time, tc.complete)
			}
			if tc.complete && !cp.GetCompletionTime().AsTime().Equal(t0.Add(time.Minute+cpOffset(tc.as))) {
				t.Errorf("completion time %v, want the latest", cp.GetCompletionTime().AsTime())
			}
		})
	}
}

// cpOffset is how far the latest checkpoint of as is after t0.
func cpOffset(as []answer[*masterv1.GetStatusResponse]) time.Duration {
	var d time.Duration
	for _, a := range as {
		if x := a.Resp.GetCheckpoint().GetTime().AsTime().Sub(t0); x > d {
			d = x
		}
	}
	return d
}

func TestReachable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, true}, {errDown, false}, {errSlow, false}, {errOther, true}, {errors.New("x"), true},
	}
	for _, tc := range tests {
		if got := reachable(tc.err); got != tc.want {
			t.Errorf("reachable(%v) = %v", tc.err, got)
		}
	}
}
