package master

import (
	"context"
	"errors"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	masterv1 "github.com/georep/georep/gen/georep/master/v1"
	"github.com/georep/georep/rpc/buildinfo"
	"github.com/georep/georep/rpc/gfid"
)

// statusService implements masterv1.MasterServiceServer over the monitor:
// it converts from proto, calls the monitor, converts back and maps errors.
type statusService struct {
	masterv1.UnimplementedMasterServiceServer
	mon *monitor
}

func (s *statusService) GetStatus(ctx context.Context, _ *masterv1.GetStatusRequest) (*masterv1.GetStatusResponse, error) {
	ws, paused, cp := s.mon.status()
	resp := &masterv1.GetStatusResponse{Paused: paused, Checkpoint: checkpointToProto(cp), Slave: s.mon.cfg.Slave,
		MasterVolume: s.mon.cfg.Source, Build: buildToProto(buildinfo.Read())}
	if v := s.mon.cfg.GlusterVolume; v != "" {
		resp.MasterVolume = v
	}
	for _, w := range ws {
		resp.Workers = append(resp.Workers, workerToProto(w))
	}
	return resp, nil
}

func buildToProto(b buildinfo.Info) *masterv1.BuildInfo {
	return &masterv1.BuildInfo{Version: b.Version, Commit: b.Commit, Time: b.Time, GoVersion: b.GoVersion}
}

func (s *statusService) SetCheckpoint(ctx context.Context, req *masterv1.SetCheckpointRequest) (*masterv1.SetCheckpointResponse, error) {
	var t time.Time
	if req.GetTime() != nil {
		if err := req.GetTime().CheckValid(); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "checkpoint time: %v", err)
		}
		t = req.GetTime().AsTime()
	}
	cp, err := s.mon.setCheckpoint(t)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &masterv1.SetCheckpointResponse{Checkpoint: checkpointToProto(cp)}, nil
}

func (s *statusService) WaitCheckpoint(_ *masterv1.WaitCheckpointRequest, stream grpc.ServerStreamingServer[masterv1.WaitCheckpointResponse]) error {
	err := s.mon.waitCheckpoint(stream.Context(), func(p checkpointProgress) error {
		return stream.Send(&masterv1.WaitCheckpointResponse{Checkpoint: checkpointToProto(p.Checkpoint),
			WorkersDone: int32(p.Done), WorkersTotal: int32(p.Total)})
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNoCheckpoint):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return err // already a status: the stream's own
}

func (s *statusService) ListFailures(ctx context.Context, _ *masterv1.ListFailuresRequest) (*masterv1.ListFailuresResponse, error) {
	fs, skips, err := s.mon.failuresAndSkips()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	resp := &masterv1.ListFailuresResponse{}
	for _, f := range fs {
		resp.Failures = append(resp.Failures, failureToProto(f.Brick, &f.failure))
	}
	for _, sk := range skips {
		resp.Skipped = append(resp.Skipped, skipToProto(sk))
	}
	return resp, nil
}

var failureClasses = map[failClass]masterv1.FailureClass{
	classTransient: masterv1.FailureClass_FAILURE_CLASS_TRANSIENT,
	classPermanent: masterv1.FailureClass_FAILURE_CLASS_PERMANENT,
}

func failureToProto(brick string, f *failure) *masterv1.Failure {
	return &masterv1.Failure{Brick: brick, Gfid: f.GFID.String(), Path: f.path(),
		Reason: f.Reason, Data: f.Data, Since: ts(f.Since), Last: ts(f.Last), Attempts: int32(f.Attempts),
		Class: failureClasses[f.class()], Errno: f.Errno, Side: string(f.Side)}
}

func skipToProto(sk workerSkip) *masterv1.SkippedFailure {
	return &masterv1.SkippedFailure{Failure: failureToProto(sk.Brick, &sk.failure), Time: ts(sk.Skipped), By: sk.By, Reason: sk.Why}
}

func (s *statusService) Audit(ctx context.Context, req *masterv1.AuditRequest) (*masterv1.AuditResponse, error) {
	err := s.mon.audit(ctx, req.GetContent(), req.GetWait())
	switch {
	case errors.Is(err, errNoAuditor):
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	case err != nil:
		return nil, status.FromContextError(err).Err()
	}
	ws, _, _ := s.mon.status()
	resp := &masterv1.AuditResponse{}
	for _, w := range ws {
		resp.Workers = append(resp.Workers, workerToProto(w))
	}
	return resp, nil
}

func (s *statusService) RetryFailures(ctx context.Context, _ *masterv1.RetryFailuresRequest) (*masterv1.RetryFailuresResponse, error) {
	n, unskipped, err := s.mon.retryFailures()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &masterv1.RetryFailuresResponse{Failures: int32(n), Unskipped: int32(unskipped)}, nil
}

func (s *statusService) SkipFailure(ctx context.Context, req *masterv1.SkipFailureRequest) (*masterv1.SkipFailureResponse, error) {
	g, err := gfid.Parse(req.GetGfid())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "gfid %q: %v", req.GetGfid(), err)
	}
	why := strings.TrimSpace(req.GetReason())
	if why == "" {
		return nil, status.Error(codes.InvalidArgument, "a reason is required: it is recorded in the skip log with who skipped the failure")
	}
	skips, err := s.mon.skipFailure(g, peerOf(ctx), why)
	switch {
	case errors.Is(err, errNotQueued):
		return nil, status.Error(codes.NotFound, err.Error())
	case err != nil:
		return nil, status.Error(codes.Internal, err.Error())
	}
	resp := &masterv1.SkipFailureResponse{}
	for _, sk := range skips {
		resp.Skipped = append(resp.Skipped, skipToProto(sk))
		resp.Logs = append(resp.Logs, sk.Log)
	}
	return resp, nil
}

func (s *statusService) Pause(ctx context.Context, _ *masterv1.PauseRequest) (*masterv1.PauseResponse, error) {
	if err := s.mon.pause(); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &masterv1.PauseResponse{}, nil
}

func (s *statusService) Resume(ctx context.Context, _ *masterv1.ResumeRequest) (*masterv1.ResumeResponse, error) {
	if err := s.mon.resume(); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &masterv1.ResumeResponse{}, nil
}

func (s *statusService) GetConfig(ctx context.Context, req *masterv1.GetConfigRequest) (*masterv1.GetConfigResponse, error) {
	vals, err := s.mon.getConfig(req.GetKey())
	if err != nil {
		return nil, configStatus(err)
	}
	resp := &masterv1.GetConfigResponse{}
	for _, v := range vals {
		resp.Values = append(resp.Values, configToProto(v))
	}
	return resp, nil
}

func (s *statusService) SetConfig(ctx context.Context, req *masterv1.SetConfigRequest) (*masterv1.SetConfigResponse, error) {
	v, err := s.mon.setConfig(req.GetKey(), req.GetValue())
	if err != nil {
		return nil, configStatus(err)
	}
	return &masterv1.SetConfigResponse{Value: configToProto(v)}, nil
}

func (s *statusService) ResetConfig(ctx context.Context, req *masterv1.ResetConfigRequest) (*masterv1.ResetConfigResponse, error) {
	v, err := s.mon.resetConfig(req.GetKey())
	if err != nil {
		return nil, configStatus(err)
	}
	return &masterv1.ResetConfigResponse{Value: configToProto(v)}, nil
}

func configToProto(v configValue) *masterv1.ConfigValue {
	return &masterv1.ConfigValue{Key: v.Key, Value: v.Value, Live: v.Live, Source: v.Source}
}

func configStatus(err error) error {
	switch {
	case errors.Is(err, errUnknownKey), errors.Is(err, errBadValue):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, errNotLive):
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func checkpointToProto(cp checkpoint) *masterv1.Checkpoint {
	if cp.Time.IsZero() {
		return nil
	}
	return &masterv1.Checkpoint{Time: ts(cp.Time), SetTime: ts(cp.SetAt), Completed: !cp.Completed.IsZero(),
		CompletionTime: ts(cp.Completed)}
}

var workerStates = map[string]masterv1.WorkerState{
	stateInitializing: masterv1.WorkerState_WORKER_STATE_INITIALIZING,
	stateActive:       masterv1.WorkerState_WORKER_STATE_ACTIVE,
	statePassive:      masterv1.WorkerState_WORKER_STATE_PASSIVE,
	stateFaulty:       masterv1.WorkerState_WORKER_STATE_FAULTY,
	statePaused:       masterv1.WorkerState_WORKER_STATE_PAUSED,
	stateStopped:      masterv1.WorkerState_WORKER_STATE_STOPPED,
}

var crawlStatuses = map[string]masterv1.CrawlStatus{
	"Hybrid":    masterv1.CrawlStatus_CRAWL_STATUS_HYBRID,
	"History":   masterv1.CrawlStatus_CRAWL_STATUS_HISTORY,
	"Changelog": masterv1.CrawlStatus_CRAWL_STATUS_CHANGELOG,
}

func workerToProto(w workerStatus) *masterv1.WorkerStatus {
	st := w.Stats
	p := &masterv1.WorkerStatus{
		MasterNode: w.Node, Brick: w.Brick, Slave: w.Slave, ReplicaSet: w.ReplicaSet,
		State: workerStates[w.State], CrawlStatus: crawlStatuses[st.CrawlStatus],
		LastSynced:   ts(st.LastSynced),
		EntryPending: st.EntriesPending, DataPending: st.FilesPending, MetaPending: st.MetaPending,
		DeletesPending: st.DeletesPending, Failures: st.Failures,
		LagSeconds: w.Lag.Seconds(), BytesPerSecond: w.BytesPerSec, FilesPerSecond: w.FilesPerSec,
		Reason:      w.Reason,
		FilesSynced: st.FilesSynced, BytesSynced: st.BytesSynced, EntriesSynced: st.EntriesSynced, DeletesSynced: st.DeletesSynced,
	}
	if !w.Checkpoint.Time.IsZero() {
		p.CheckpointTime = ts(w.Checkpoint.Time)
		p.CheckpointCompleted = !w.CheckpointDone.IsZero()
		p.CheckpointCompletionTime = ts(w.CheckpointDone)
	}
	if a := w.Audit; a != nil {
		p.Audit = &masterv1.AuditStatus{Started: ts(a.Started), Finished: ts(a.Finished), Content: a.Content,
			EntriesChecked: a.Entries, FilesHashed: a.Files, BytesHashed: a.Bytes, Differences: a.Differences,
			Repaired: a.Repaired, ByKind: a.ByKind, Running: a.Running, Error: a.Err, Next: ts(a.Next)}
		if !a.Finished.IsZero() && !a.Running {
			p.Audit.DurationSeconds = a.Finished.Sub(a.Started).Seconds()
		}
	}
	if g := w.Progress; g != nil {
		p.Progress = &masterv1.Progress{EntriesDone: g.EntriesDone, EntriesTotal: g.EntriesTotal,
			FilesDone: g.FilesDone, FilesTotal: g.FilesTotal, BytesDone: g.BytesDone, BytesTotal: g.BytesTotal,
			EtaSeconds: g.ETA.Seconds(), Started: ts(g.Started)}
	}
	return p
}
