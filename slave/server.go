package slave

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	slavev1 "github.com/georep/georep/gen/georep/slave/v1"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
	"github.com/georep/georep/rpc/wire"
)

// ProtocolVersion is the version of the slave protocol this server speaks.
const ProtocolVersion = 1

// sessionKey is the metadata key carrying the session id.
const sessionKey = "georep-session"

// Replica is the replica the slave applies the protocol to: a plain
// directory (*replica.Replica) or a GlusterFS volume (*glusterfs.Volume).
// Both apply the same semantics (package rpc/ops/opstest is their
// conformance suite).
//
// Contract: every method is safe for concurrent use. Batch methods
// (ApplyEntries, ApplyMeta, WriteFiles) apply items in order and return the
// failed ones (Failure.Index is the position in the batch); a failure does
// not stop the rest, and items not applied when ctx is done fail with
// ECANCELED. Errors of the other methods carry an errno (fs.ErrNotExist for
// an unknown gfid). DataDir is the absolute directory the slave's rsync
// receives into, where ab/<gfid> is the regular file of gfid; Root is the
// directory holding the slave's own state (.georep/volume-id,
// .georep/master-volume-id). After Close no method may be called.
type Replica interface {
	ApplyEntries(ctx context.Context, entries []ops.Entry) []ops.Failure
	ApplyMeta(ctx context.Context, metas []ops.Meta) []ops.Failure
	WriteFiles(ctx context.Context, files []ops.FileData) []ops.Failure
	Stat(ctx context.Context, g gfid.GFID) (ops.Attr, error)
	Entries(ctx context.Context, dir gfid.GFID) ([]ops.DirEntry, error)
	Purge(ctx context.Context, parent gfid.GFID, name string, only gfid.GFID) (uint64, error)
	SetXtime(ctx context.Context, g gfid.GFID, volumeID string, sec int64, nsec int32) error
	Xtime(ctx context.Context, g gfid.GFID, volumeID string) (sec int64, nsec int32, ok bool, err error)
	DataDir() string
	Root() string
	Close() error
}

// service implements slavev1.SlaveServiceServer: it validates, converts from
// proto, calls the replica, converts back and maps errors.
type service struct {
	slavev1.UnimplementedSlaveServiceServer
	replica  Replica
	sessions *sessions
	binding  *binding
	volumeID string
	rsync    string // path of rsync, "" when not installed
	// rsyncSlots bounds the Rsync streams running at once (nil: no bound).
	rsyncSlots chan struct{}
	maxBatch   int
	log        *slog.Logger
	writes     writing // the gfids WriteFile streams are filling
}

func (s *service) Handshake(ctx context.Context, req *slavev1.HandshakeRequest) (*slavev1.HandshakeResponse, error) {
	if req.GetProtocolVersion() != ProtocolVersion {
		return nil, status.Errorf(codes.FailedPrecondition, "protocol version %d not supported: this slave speaks %d", req.GetProtocolVersion(), ProtocolVersion)
	}
	if _, err := gfid.Parse(req.GetMasterVolumeId()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "master volume id: %v", err)
	}
	// A live session of another master is the first thing to report: it is
	// what the operator must know, and it may end by itself (Aborted: retry
	// later). A replica bound to another master volume will not change by
	// itself (FailedPrecondition).
	if err := s.sessions.heldByOther(req.GetMasterVolumeId()); err != nil {
		return nil, status.Error(codes.Aborted, err.Error())
	}
	var o opened
	err := s.binding.check(req.GetMasterVolumeId(), req.GetMasterNode(), func() (err error) {
		o, err = s.sessions.open(req.GetMasterVolumeId(), req.GetMasterNode(), req.GetReplicaSet(), req.GetWorkerId(),
			time.Duration(req.GetLeaseSeconds())*time.Second)
		return err
	})
	var held *errHeld
	var leaseHeld *errLeaseHeld
	var notEmpty *errNotEmpty
	switch {
	case errors.As(err, &held):
		return nil, status.Error(codes.Aborted, err.Error())
	case errors.As(err, &leaseHeld):
		return nil, leaseHeld.grpcStatus()
	case errors.As(err, &notEmpty):
		s.log.Error("first master refused: the replica root is not empty", "root", notEmpty.root,
			"foreign_entries", notEmpty.count, "first", notEmpty.names,
			"master_volume", req.GetMasterVolumeId(), "master_node", req.GetMasterNode(),
			"to_proceed", "check the directory, then restart georep-slave with --adopt")
		return nil, notEmpty.grpcStatus()
	case err != nil:
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	id, lease := o.id, o.lease
	s.log.Info("session opened", "master_volume", req.GetMasterVolumeId(), "master_node", req.GetMasterNode(), "lease", lease,
		"replica_set", req.GetReplicaSet(), "worker", req.GetWorkerId(), "lease_epoch", o.epoch)
	caps := []string{"xattrs", "mknod", "apply", "walk", "write-files-acl"}
	if s.rsync != "" {
		caps = append(caps, "rsync")
	}
	if _, ok := s.replica.(auditor); ok {
		caps = append(caps, "audit")
	}
	if _, ok := s.writesStreams(); ok {
		caps = append(caps, "write-file")
	}
	if os.Geteuid() == 0 {
		caps = append(caps, "owner") // owners are applied: the audit compares them
	}
	// The master empties the park at every session start; saying that it
	// is empty saves it a listing, one round trip.
	park, err := s.replica.Entries(ctx, gfid.Park)
	return &slavev1.HandshakeResponse{
		ProtocolVersion: ProtocolVersion,
		SlaveVolumeId:   s.volumeID,
		SessionId:       id,
		LeaseSeconds:    uint32(lease / time.Second),
		Capabilities:    caps,
		MaxBatch:        uint32(s.maxBatch),
		ParkEmpty:       err == nil && len(park) == 0,
		LeaseEpoch:      o.epoch,
		SetStimeSec:     unixOrZero(o.stime),
		SetStimeNsec:    nanoOrZero(o.stime),
	}, nil
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func nanoOrZero(t time.Time) int32 {
	if t.IsZero() {
		return 0
	}
	return int32(t.Nanosecond())
}

// Release ends the caller's session and gives its replica set's lease up.
func (s *service) Release(ctx context.Context, req *slavev1.ReleaseRequest) (*slavev1.ReleaseResponse, error) {
	why := req.GetReason()
	if why == "" {
		why = "released by the worker"
	}
	s.sessions.end(sessionOf(ctx), errors.New(why))
	return &slavev1.ReleaseResponse{}, nil
}

func (s *service) KeepAlive(ctx context.Context, req *slavev1.KeepAliveRequest) (*slavev1.KeepAliveResponse, error) {
	return &slavev1.KeepAliveResponse{
		SlaveVolumeId: s.volumeID,
		LeaseSeconds:  uint32(s.sessions.maxLease / time.Second),
	}, nil
}

func (s *service) EntryOps(ctx context.Context, req *slavev1.EntryOpsRequest) (*slavev1.EntryOpsResponse, error) {
	failures, err := s.entryOps(ctx, req)
	if err != nil {
		return nil, err
	}
	return &slavev1.EntryOpsResponse{Failures: failures}, nil
}

// entryOps applies the entries of req in order (EntryOps and Apply) and
// returns the failures; an error is the status of the whole call.
func (s *service) entryOps(ctx context.Context, req *slavev1.EntryOpsRequest) ([]*slavev1.EntryFailure, error) {
	if n := len(req.GetEntries()); n > s.maxBatch {
		return nil, status.Errorf(codes.InvalidArgument, "batch of %d entries exceeds the limit of %d", n, s.maxBatch)
	}
	var failures []*slavev1.EntryFailure
	entries := make([]ops.Entry, 0, len(req.GetEntries()))
	index := make([]int, 0, len(req.GetEntries())) // position in the request of each entry passed on
	for i, pe := range req.GetEntries() {
		e, err := wire.EntryFromProto(pe)
		if err != nil {
			failures = append(failures, refused(i, err))
			continue
		}
		entries = append(entries, e)
		index = append(index, i)
	}
	for _, f := range s.replica.ApplyEntries(ctx, entries) {
		f.Index = index[f.Index]
		failures = append(failures, wire.FailureToProto(f))
	}
	return failures, nil
}

func (s *service) MetaOps(ctx context.Context, req *slavev1.MetaOpsRequest) (*slavev1.MetaOpsResponse, error) {
	failures, err := s.metaOps(ctx, req)
	if err != nil {
		return nil, err
	}
	return &slavev1.MetaOpsResponse{Failures: failures}, nil
}

// metaOps applies the metas of req (MetaOps and Apply) and returns the
// failures; an error is the status of the whole call.
func (s *service) metaOps(ctx context.Context, req *slavev1.MetaOpsRequest) ([]*slavev1.EntryFailure, error) {
	if n := len(req.GetMetas()); n > s.maxBatch {
		return nil, status.Errorf(codes.InvalidArgument, "batch of %d metas exceeds the limit of %d", n, s.maxBatch)
	}
	var failures []*slavev1.EntryFailure
	metas := make([]ops.Meta, 0, len(req.GetMetas()))
	index := make([]int, 0, len(req.GetMetas()))
	for i, pm := range req.GetMetas() {
		m, err := wire.MetaFromProto(pm)
		if err != nil {
			failures = append(failures, refused(i, err))
			continue
		}
		metas = append(metas, m)
		index = append(index, i)
	}
	for _, f := range s.replica.ApplyMeta(ctx, metas) {
		f.Index = index[f.Index]
		failures = append(failures, wire.FailureToProto(f))
	}
	return failures, nil
}

// Apply applies the batches of the stream one after the other, in the
// order received, and answers each before it applies the next. The
// session is checked again before every batch (the stream may outlive it:
// another master may have taken over), and a batch is refused as its unary
// call would be; either ends the stream with that status.
func (s *service) Apply(stream slavev1.SlaveService_ApplyServer) error {
	ctx := stream.Context()
	id := sessionOf(ctx)
	for {
		t0 := time.Now()
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := s.sessions.check(id, false, true); err != nil {
			return status.Error(codes.FailedPrecondition, err.Error())
		}
		t1 := time.Now()
		var failures []*slavev1.EntryFailure
		switch b := req.GetBatch().(type) {
		case *slavev1.ApplyRequest_Entries:
			failures, err = s.entryOps(ctx, b.Entries)
		case *slavev1.ApplyRequest_Metas:
			failures, err = s.metaOps(ctx, b.Metas)
		default:
			err = status.Error(codes.InvalidArgument, "apply: a batch holds neither entries nor metas")
		}
		if err != nil {
			return err
		}
		s.log.Debug("apply batch", "entries", len(req.GetEntries().GetEntries()), "metas", len(req.GetMetas().GetMetas()),
			"failures", len(failures), "waited", t1.Sub(t0), "applied_in", time.Since(t1))
		if err := stream.Send(&slavev1.ApplyResponse{Failures: failures}); err != nil {
			return err
		}
	}
}

func (s *service) WriteFiles(ctx context.Context, req *slavev1.WriteFilesRequest) (*slavev1.WriteFilesResponse, error) {
	// The whole request is bounded by the gRPC maximum message size; the
	// batch size is bounded like EntryOps and MetaOps.
	if n := len(req.GetFiles()); n > s.maxBatch {
		return nil, status.Errorf(codes.InvalidArgument, "batch of %d files exceeds the limit of %d", n, s.maxBatch)
	}
	var failures []*slavev1.EntryFailure
	files := make([]ops.FileData, 0, len(req.GetFiles()))
	index := make([]int, 0, len(req.GetFiles()))
	for i, pf := range req.GetFiles() {
		fd, err := wire.FileDataFromProto(pf)
		if err != nil {
			failures = append(failures, refused(i, err))
			continue
		}
		if pf.GetMtime() == nil {
			fd.Mtime = time.Now()
		}
		files = append(files, fd)
		index = append(index, i)
	}
	for _, f := range s.replica.WriteFiles(ctx, files) {
		f.Index = index[f.Index]
		failures = append(failures, wire.FailureToProto(f))
	}
	return &slavev1.WriteFilesResponse{Failures: failures}, nil
}

func (s *service) SetXtime(ctx context.Context, req *slavev1.SetXtimeRequest) (*slavev1.SetXtimeResponse, error) {
	g, err := parseGFID("gfid", req.GetGfid())
	if err != nil {
		return nil, err
	}
	if _, err := gfid.Parse(req.GetVolumeId()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "volume id: %v", err)
	}
	if err := s.replica.SetXtime(ctx, g, req.GetVolumeId(), req.GetXtime().GetSec(), req.GetXtime().GetNsec()); err != nil {
		return nil, wire.ToStatus(err)
	}
	if g == gfid.Root {
		// The root's mark is the worker's stime: the replica set's, kept
		// in its lease where the set's next Active worker starts from.
		if err := s.sessions.setStime(sessionOf(ctx), time.Unix(req.GetXtime().GetSec(), int64(req.GetXtime().GetNsec()))); err != nil {
			return nil, status.Error(codes.FailedPrecondition, err.Error())
		}
	}
	return &slavev1.SetXtimeResponse{}, nil
}

func (s *service) Xtime(ctx context.Context, req *slavev1.XtimeRequest) (*slavev1.XtimeResponse, error) {
	g, err := parseGFID("gfid", req.GetGfid())
	if err != nil {
		return nil, err
	}
	if _, err := gfid.Parse(req.GetVolumeId()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "volume id: %v", err)
	}
	sec, nsec, ok, err := s.replica.Xtime(ctx, g, req.GetVolumeId())
	if err != nil {
		return nil, wire.ToStatus(err)
	}
	resp := &slavev1.XtimeResponse{}
	if ok {
		resp.Xtime = &slavev1.Timespec{Sec: sec, Nsec: nsec}
	}
	return resp, nil
}

func (s *service) Purge(ctx context.Context, req *slavev1.PurgeRequest) (*slavev1.PurgeResponse, error) {
	parent, err := parseGFID("pargfid", req.GetPargfid())
	if err != nil {
		return nil, err
	}
	var only gfid.GFID
	if req.GetGfid() != "" {
		if only, err = parseGFID("gfid", req.GetGfid()); err != nil {
			return nil, err
		}
	}
	name := string(req.GetName())
	if err := ops.ValidateName(name); err != nil {
		return nil, wire.ToStatus(fmt.Errorf("purge %s/%q: %w", parent, name, err)) // EINVAL, ENAMETOOLONG: InvalidArgument
	}
	n, err := s.replica.Purge(ctx, parent, name, only)
	if err != nil {
		return nil, wire.ToStatus(fmt.Errorf("purge %s/%q: %w", parent, name, err))
	}
	return &slavev1.PurgeResponse{Removed: n}, nil
}

func (s *service) Entries(ctx context.Context, req *slavev1.EntriesRequest) (*slavev1.EntriesResponse, error) {
	g, err := parseGFID("gfid", req.GetGfid())
	if err != nil {
		return nil, err
	}
	ents, err := s.replica.Entries(ctx, g)
	if err != nil {
		return nil, wire.ToStatus(err)
	}
	return &slavev1.EntriesResponse{Entries: wire.DirEntriesToProto(ents)}, nil
}

// Walk lists dir and the directories beneath it, depth first, the first
// subdirectory of a listing next, each gfid once (a directory copied with
// its gfid behind georep's back, even into itself, is listed once). A
// directory that cannot be listed is answered with its errno, and nothing
// beneath it is.
func (s *service) Walk(req *slavev1.WalkRequest, stream slavev1.SlaveService_WalkServer) error {
	root, err := parseGFID("gfid", req.GetGfid())
	if err != nil {
		return err
	}
	ctx := stream.Context()
	seen := map[gfid.GFID]bool{root: true}
	stack := []gfid.GFID{root}
	for len(stack) > 0 {
		dir := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		ents, err := s.replica.Entries(ctx, dir)
		if cerr := ctx.Err(); cerr != nil {
			return wire.ToStatus(cerr)
		}
		resp := &slavev1.WalkResponse{Gfid: dir.String()}
		if err != nil {
			resp.Errno, resp.Message = int32(ops.Errno(err)), err.Error()
		} else {
			resp.Entries = wire.DirEntriesToProto(ents)
			for i := len(ents) - 1; i >= 0; i-- {
				if e := ents[i]; e.Type == ops.TypeDir && !e.GFID.IsZero() && !seen[e.GFID] {
					seen[e.GFID] = true
					stack = append(stack, e.GFID)
				}
			}
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
	return nil
}

// auditor is a replica that describes directories for the master's audit
// (both backends do, through apply.Engine).
type auditor interface {
	Audit(ctx context.Context, dirs []ops.AuditDirRequest, limit int, content bool) ([]ops.AuditDir, error)
}

// The most entries one Audit call describes: without content, about 1.5 MB
// of answer; with content, data of up to that many files is read per call.
const (
	auditEntries        = 10000
	auditContentEntries = 1000
)

// Audit describes directories entry by entry for the master's audit. It
// reads only.
func (s *service) Audit(ctx context.Context, req *slavev1.AuditRequest) (*slavev1.AuditResponse, error) {
	a, ok := s.replica.(auditor)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this replica cannot be audited")
	}
	n := len(req.GetDirs())
	if n == 0 || n > s.maxBatch {
		return nil, status.Errorf(codes.InvalidArgument, "audit of %d directories: between 1 and %d", n, s.maxBatch)
	}
	dirs := make([]ops.AuditDirRequest, n)
	for i, d := range req.GetDirs() {
		g, err := parseGFID("gfid", d.GetGfid())
		if err != nil {
			return nil, err
		}
		after := string(d.GetAfter())
		if after != "" {
			if err := ops.ValidateName(after); err != nil {
				return nil, wire.ToStatus(fmt.Errorf("audit of %s after %q: %w", g, after, err))
			}
		}
		dirs[i] = ops.AuditDirRequest{GFID: g, After: after}
	}
	limit := auditEntries
	if req.GetContent() {
		limit = auditContentEntries
	}
	out, err := a.Audit(ctx, dirs, limit, req.GetContent())
	if err != nil {
		return nil, wire.ToStatus(err)
	}
	return &slavev1.AuditResponse{Dirs: wire.AuditDirsToProto(out)}, nil
}

func (s *service) Stat(ctx context.Context, req *slavev1.StatRequest) (*slavev1.StatResponse, error) {
	if n := len(req.GetGfids()); n > s.maxBatch {
		return nil, status.Errorf(codes.InvalidArgument, "stat of %d gfids exceeds the limit of %d", n, s.maxBatch)
	}
	resp := &slavev1.StatResponse{Results: make([]*slavev1.StatResult, len(req.GetGfids()))}
	for i, text := range req.GetGfids() {
		g, err := gfid.Parse(text)
		if err != nil {
			resp.Results[i] = wire.StatResultToProto(text, ops.Attr{}, ops.ErrInvalid)
			continue
		}
		a, err := s.replica.Stat(ctx, g)
		resp.Results[i] = wire.StatResultToProto(text, a, err)
	}
	return resp, nil
}

func (s *service) Rsync(stream slavev1.SlaveService_RsyncServer) error {
	if s.rsync == "" {
		return status.Error(codes.FailedPrecondition, "rsync not found on the slave: install the Debian package rsync")
	}
	if s.rsyncSlots != nil {
		select {
		case s.rsyncSlots <- struct{}{}:
			defer func() { <-s.rsyncSlots }()
		default:
			return status.Errorf(codes.ResourceExhausted, "%d rsync streams are already running, the slave's max-rsync-streams: retry when one ends", cap(s.rsyncSlots))
		}
	}
	return ServeRsync(stream, s.replica.DataDir(), s.rsync, s.log)
}

// mutating lists the methods that need the caller to hold the session.
var mutating = map[string]bool{
	slavev1.SlaveService_KeepAlive_FullMethodName:  true,
	slavev1.SlaveService_EntryOps_FullMethodName:   true,
	slavev1.SlaveService_MetaOps_FullMethodName:    true,
	slavev1.SlaveService_SetXtime_FullMethodName:   true,
	slavev1.SlaveService_Purge_FullMethodName:      true,
	slavev1.SlaveService_WriteFiles_FullMethodName: true,
	slavev1.SlaveService_Rsync_FullMethodName:      true,
	slavev1.SlaveService_WriteFile_FullMethodName:  true,
	slavev1.SlaveService_Apply_FullMethodName:      true,
	slavev1.SlaveService_Release_FullMethodName:    true,
}

// authorize checks the session of a mutating call (and, but for
// KeepAlive, that it still holds its replica set's lease) and returns the
// context the call runs in: done when the call's is, or when the session
// ends (expired, taken over, fenced), so that what it runs stops with it.
func (s *service) authorize(ctx context.Context, method string) (context.Context, context.CancelFunc, error) {
	if !mutating[method] {
		return ctx, func() {}, nil
	}
	keepAlive := method == slavev1.SlaveService_KeepAlive_FullMethodName
	sctx, err := s.sessions.check(sessionOf(ctx), keepAlive, !keepAlive)
	if err != nil {
		return nil, nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(sctx, func() { cancel(context.Cause(sctx)) })
	return ctx, func() { stop(); cancel(nil) }, nil
}

// sessionOf is the session id a call carries ("" when none).
func sessionOf(ctx context.Context) string {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(sessionKey); len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

func (s *service) unaryAuth(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, done, err := s.authorize(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	defer done()
	return handler(ctx, req)
}

func (s *service) streamAuth(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, done, err := s.authorize(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	defer done()
	return handler(srv, &sessionStream{ServerStream: ss, ctx: ctx})
}

// sessionStream is a stream whose context ends with its session.
type sessionStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *sessionStream) Context() context.Context { return s.ctx }

func parseGFID(field, text string) (gfid.GFID, error) {
	g, err := gfid.Parse(text)
	if err != nil {
		return g, status.Errorf(codes.InvalidArgument, "%s: %v", field, err)
	}
	return g, nil
}

// refused is the failure of item i of a batch whose request did not convert
// (an unknown op, a gfid that does not parse).
func refused(i int, err error) *slavev1.EntryFailure {
	return wire.FailureToProto(ops.Failure{Index: i, Errno: ops.ErrInvalid, Message: err.Error()})
}
