package main

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	masterv1 "github.com/georep/georep/gen/georep/master/v1"
)

// fakeMaster is a master's status service holding what a test gives it.
// Its checkpoint completes completeAfter GetStatus calls after it is set
// (0: never by itself). Safe for concurrent use.
type fakeMaster struct {
	masterv1.UnimplementedMasterServiceServer

	mu            sync.Mutex
	node          string
	workers       []*masterv1.WorkerStatus
	paused        bool
	cp            *masterv1.Checkpoint
	completeAfter int
	sinceSet      int
	config        map[string]string
	setKeys       map[string]string // what config set changed, and its value before (a reset's)
	failures      []*masterv1.Failure
	skipped       []*masterv1.SkippedFailure
	delay         time.Duration // before every answer
	setTimes      []time.Time   // every SetCheckpoint's time
}

func newFakeMaster(node string, workers ...string) *fakeMaster {
	f := &fakeMaster{node: node, config: map[string]string{"change-interval": "5s", "log-level": "info", "checkpoint": ""},
		setKeys: map[string]string{}}
	for _, b := range workers {
		f.workers = append(f.workers, &masterv1.WorkerStatus{MasterNode: node, Brick: b, Slave: "slave:7100",
			State: masterv1.WorkerState_WORKER_STATE_ACTIVE, CrawlStatus: masterv1.CrawlStatus_CRAWL_STATUS_CHANGELOG,
			LastSynced: timestamppb.New(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))})
	}
	return f
}

// serve serves f on addr ("127.0.0.1:0" for any port) until the test ends
// and returns the address.
func (f *fakeMaster) serve(t *testing.T, addr string) string {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	masterv1.RegisterMasterServiceServer(srv, f)
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return lis.Addr().String()
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

func (f *fakeMaster) wait(ctx context.Context) error {
	f.mu.Lock()
	d := f.delay
	f.mu.Unlock()
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

func (f *fakeMaster) GetStatus(ctx context.Context, _ *masterv1.GetStatusRequest) (*masterv1.GetStatusResponse, error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cp != nil && !f.cp.GetCompleted() {
		f.sinceSet++
		if f.completeAfter > 0 && f.sinceSet >= f.completeAfter {
			f.cp.Completed, f.cp.CompletionTime = true, timestamppb.New(f.cp.GetTime().AsTime().Add(time.Second))
			for _, w := range f.workers {
				w.CheckpointCompleted, w.CheckpointCompletionTime = true, f.cp.CompletionTime
			}
		}
	}
	resp := &masterv1.GetStatusResponse{Paused: f.paused, Checkpoint: f.cp, MasterVolume: "mvol", Slave: "slave:7100"}
	for _, w := range f.workers {
		resp.Workers = append(resp.Workers, w)
	}
	return proto.Clone(resp).(*masterv1.GetStatusResponse), nil
}

func (f *fakeMaster) SetCheckpoint(ctx context.Context, req *masterv1.SetCheckpointRequest) (*masterv1.SetCheckpointResponse, error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if req.GetTime() == nil {
		return nil, status.Error(codes.InvalidArgument, "the fake wants an absolute time")
	}
	f.setTimes = append(f.setTimes, req.GetTime().AsTime())
	f.cp = &masterv1.Checkpoint{Time: req.GetTime(), SetTime: req.GetTime()}
	f.sinceSet = 0
	for _, w := range f.workers {
		w.CheckpointTime, w.CheckpointCompleted, w.CheckpointCompletionTime = req.GetTime(), false, nil
	}
	return &masterv1.SetCheckpointResponse{Checkpoint: proto.Clone(f.cp).(*masterv1.Checkpoint)}, nil
}

func (f *fakeMaster) Pause(ctx context.Context, _ *masterv1.PauseRequest) (*masterv1.PauseResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paused = true
	return &masterv1.PauseResponse{}, nil
}

func (f *fakeMaster) Resume(ctx context.Context, _ *masterv1.ResumeRequest) (*masterv1.ResumeResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paused = false
	return &masterv1.ResumeResponse{}, nil
}

func (f *fakeMaster) GetConfig(ctx context.Context, req *masterv1.GetConfigRequest) (*masterv1.GetConfigResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &masterv1.GetConfigResponse{}
	for _, k := range []string{"change-interval", "checkpoint", "log-level"} {
		if req.GetKey() == "" || req.GetKey() == k {
			resp.Values = append(resp.Values, f.value(k))
		}
	}
	if len(resp.Values) == 0 {
		return nil, status.Errorf(codes.InvalidArgument, "unknown key %q", req.GetKey())
	}
	return resp, nil
}

func (f *fakeMaster) SetConfig(ctx context.Context, req *masterv1.SetConfigRequest) (*masterv1.SetConfigResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.config[req.GetKey()]; !ok {
		return nil, status.Errorf(codes.FailedPrecondition, "%s cannot be changed while the master runs", req.GetKey())
	}
	if _, ok := f.setKeys[req.GetKey()]; !ok {
		f.setKeys[req.GetKey()] = f.config[req.GetKey()]
	}
	f.config[req.GetKey()] = req.GetValue()
	return &masterv1.SetConfigResponse{Value: f.value(req.GetKey())}, nil
}

func (f *fakeMaster) ResetConfig(ctx context.Context, req *masterv1.ResetConfigRequest) (*masterv1.ResetConfigResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.config[req.GetKey()]; !ok {
		return nil, status.Errorf(codes.FailedPrecondition, "%s cannot be changed while the master runs", req.GetKey())
	}
	if was, ok := f.setKeys[req.GetKey()]; ok {
		f.config[req.GetKey()] = was
		delete(f.setKeys, req.GetKey())
	}
	return &masterv1.ResetConfigResponse{Value: f.value(req.GetKey())}, nil
}

// value is key's ConfigValue (f.mu held): source live once set.
func (f *fakeMaster) value(key string) *masterv1.ConfigValue {
	src := "default"
	if _, ok := f.setKeys[key]; ok {
		src = "live"
	}
	return &masterv1.ConfigValue{Key: key, Value: f.config[key], Live: true, Source: src}
}

func (f *fakeMaster) ListFailures(ctx context.Context, _ *masterv1.ListFailuresRequest) (*masterv1.ListFailuresResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return proto.Clone(&masterv1.ListFailuresResponse{Failures: f.failures, Skipped: f.skipped}).(*masterv1.ListFailuresResponse), nil
}

func (f *fakeMaster) SkipFailure(ctx context.Context, req *masterv1.SkipFailureRequest) (*masterv1.SkipFailureResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, fl := range f.failures {
		if fl.GetGfid() == req.GetGfid() {
			f.failures = append(f.failures[:i], f.failures[i+1:]...)
			sk := &masterv1.SkippedFailure{Failure: fl, By: "uid 0", Reason: req.GetReason()}
			f.skipped = append(f.skipped, sk)
			return &masterv1.SkipFailureResponse{Skipped: []*masterv1.SkippedFailure{sk}, Logs: []string{"/work/" + f.node + "/skipped.log"}}, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "gfid %s is in no failure queue", req.GetGfid())
}

func (f *fakeMaster) checkpointTimes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.setTimes...)
}

func (f *fakeMaster) isPaused() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.paused
}
