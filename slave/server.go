package slave

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	slavev1 "github.com/georep/georep/gen/georep/slave/v1"
	"github.com/georep/georep/rpc"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
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
	var id string
	var lease time.Duration
	err := s.binding.check(req.GetMasterVolumeId(), req.GetMasterNode(), func() (err error) {
		id, lease, err = s.sessions.open(req.GetMasterVolumeId(), req.GetMasterNode(), time.Duration(req.GetLeaseSeconds())*time.Second)
		return err
	})
	var held *errHeld
	var notEmpty *errNotEmpty
	switch {
	case errors.As(err, &held):
		return nil, status.Error(codes.Aborted, err.Error())
	case errors.As(err, &notEmpty):
		s.log.Error("first master refused: the replica root is not empty", "root", notEmpty.root,
			"foreign_entries", notEmpty.count, "first", notEmpty.names,
			"master_volume", req.GetMasterVolumeId(), "master_node", req.GetMasterNode(),
			"to_proceed", "check the directory, then restart georep-slave with --adopt")
		return nil, notEmpty.grpcStatus()
	case err != nil:
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	s.log.Info("session opened", "master_volume", req.GetMasterVolumeId(), "master_node", req.GetMasterNode(), "lease", lease)
	caps := []string{"xattrs", "mknod"}
	if s.rsync != "" {
		caps = append(caps, "rsync")
	}
	return &slavev1.HandshakeResponse{
		ProtocolVersion: ProtocolVersion,
		SlaveVolumeId:   s.volumeID,
		SessionId:       id,
		LeaseSeconds:    uint32(lease / time.Second),
		Capabilities:    caps,
		MaxBatch:        uint32(s.maxBatch),
	}, nil
}

func (s *service) KeepAlive(ctx context.Context, req *slavev1.KeepAliveRequest) (*slavev1.KeepAliveResponse, error) {
	return &slavev1.KeepAliveResponse{
		SlaveVolumeId: s.volumeID,
		LeaseSeconds:  uint32(s.sessions.maxLease / time.Second),
	}, nil
}

func (s *service) EntryOps(ctx context.Context, req *slavev1.EntryOpsRequest) (*slavev1.EntryOpsResponse, error) {
	if n := len(req.GetEntries()); n > s.maxBatch {
		return nil, status.Errorf(codes.InvalidArgument, "batch of %d entries exceeds the limit of %d", n, s.maxBatch)
	}
	var failures []*slavev1.EntryFailure
	entries := make([]ops.Entry, 0, len(req.GetEntries()))
	index := make([]int, 0, len(req.GetEntries())) // position in the request of each entry passed on
	for i, pe := range req.GetEntries() {
		e, err := entryFromProto(pe)
		if err != nil {
			failures = append(failures, &slavev1.EntryFailure{Index: uint32(i), Errno: int32(syscall.EINVAL), Message: err.Error()})
			continue
		}
		entries = append(entries, e)
		index = append(index, i)
	}
	for _, f := range s.replica.ApplyEntries(ctx, entries) {
		failures = append(failures, failureToProto(f, index[f.Index]))
	}
	return &slavev1.EntryOpsResponse{Failures: failures}, nil
}

func (s *service) MetaOps(ctx context.Context, req *slavev1.MetaOpsRequest) (*slavev1.MetaOpsResponse, error) {
	if n := len(req.GetMetas()); n > s.maxBatch {
		return nil, status.Errorf(codes.InvalidArgument, "batch of %d metas exceeds the limit of %d", n, s.maxBatch)
	}
	var failures []*slavev1.EntryFailure
	metas := make([]ops.Meta, 0, len(req.GetMetas()))
	index := make([]int, 0, len(req.GetMetas()))
	for i, pm := range req.GetMetas() {
		m, err := metaFromProto(pm)
		if err != nil {
			failures = append(failures, &slavev1.EntryFailure{Index: uint32(i), Errno: int32(syscall.EINVAL), Message: err.Error()})
			continue
		}
		metas = append(metas, m)
		index = append(index, i)
	}
	for _, f := range s.replica.ApplyMeta(ctx, metas) {
		failures = append(failures, failureToProto(f, index[f.Index]))
	}
	return &slavev1.MetaOpsResponse{Failures: failures}, nil
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
		g, err := gfid.Parse(pf.GetGfid())
		if err != nil {
			failures = append(failures, &slavev1.EntryFailure{Index: uint32(i), Errno: int32(syscall.EINVAL), Message: fmt.Sprintf("write: gfid: %v", err)})
			continue
		}
		fd := ops.FileData{GFID: g, Data: pf.GetData(), Mode: pf.GetMode(), UID: pf.GetUid(), GID: pf.GetGid()}
		if t := pf.GetMtime(); t != nil {
			fd.Mtime = time.Unix(t.GetSec(), int64(t.GetNsec()))
		} else {
			fd.Mtime = time.Now()
		}
		files = append(files, fd)
		index = append(index, i)
	}
	for _, f := range s.replica.WriteFiles(ctx, files) {
		failures = append(failures, failureToProto(f, index[f.Index]))
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
		return nil, rpc.Error(err)
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
		return nil, rpc.Error(err)
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
		return nil, status.Errorf(codes.InvalidArgument, "purge %s/%q: %v", parent, name, err)
	}
	n, err := s.replica.Purge(ctx, parent, name, only)
	if err != nil {
		return nil, rpc.Error(fmt.Errorf("purge %s/%q: %w", parent, name, err))
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
		return nil, rpc.Error(err)
	}
	resp := &slavev1.EntriesResponse{Entries: make([]*slavev1.DirEntry, len(ents))}
	for i, e := range ents {
		de := &slavev1.DirEntry{Name: []byte(e.Name), Type: slavev1.FileType(e.Type)}
		if !e.GFID.IsZero() {
			de.Gfid = e.GFID.String()
		}
		resp.Entries[i] = de
	}
	return resp, nil
}

func (s *service) Stat(ctx context.Context, req *slavev1.StatRequest) (*slavev1.StatResponse, error) {
	if n := len(req.GetGfids()); n > s.maxBatch {
		return nil, status.Errorf(codes.InvalidArgument, "stat of %d gfids exceeds the limit of %d", n, s.maxBatch)
	}
	resp := &slavev1.StatResponse{Results: make([]*slavev1.StatResult, len(req.GetGfids()))}
	for i, text := range req.GetGfids() {
		r := &slavev1.StatResult{Gfid: text}
		resp.Results[i] = r
		g, err := gfid.Parse(text)
		if err != nil {
			r.Errno = int32(syscall.EINVAL)
			continue
		}
		a, err := s.replica.Stat(ctx, g)
		if err != nil {
			r.Errno = int32(errnoOf(err))
			continue
		}
		r.Attr = attrToProto(a)
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
}

func (s *service) authorize(ctx context.Context, method string) error {
	if !mutating[method] {
		return nil
	}
	var id string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(sessionKey); len(v) > 0 {
			id = v[0]
		}
	}
	if err := s.sessions.check(id, method == slavev1.SlaveService_KeepAlive_FullMethodName); err != nil {
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	return nil
}

func (s *service) unaryAuth(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := s.authorize(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (s *service) streamAuth(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := s.authorize(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}

func parseGFID(field, text string) (gfid.GFID, error) {
	g, err := gfid.Parse(text)
	if err != nil {
		return g, status.Errorf(codes.InvalidArgument, "%s: %v", field, err)
	}
	return g, nil
}

var opFromProto = map[slavev1.EntryOp]ops.Op{
	slavev1.EntryOp_ENTRY_OP_CREATE:  ops.OpCreate,
	slavev1.EntryOp_ENTRY_OP_MKDIR:   ops.OpMkdir,
	slavev1.EntryOp_ENTRY_OP_MKNOD:   ops.OpMknod,
	slavev1.EntryOp_ENTRY_OP_LINK:    ops.OpLink,
	slavev1.EntryOp_ENTRY_OP_SYMLINK: ops.OpSymlink,
	slavev1.EntryOp_ENTRY_OP_RENAME:  ops.OpRename,
	slavev1.EntryOp_ENTRY_OP_UNLINK:  ops.OpUnlink,
	slavev1.EntryOp_ENTRY_OP_RMDIR:   ops.OpRmdir,
}

func entryFromProto(pe *slavev1.Entry) (ops.Entry, error) {
	op, ok := opFromProto[pe.GetOp()]
	if !ok {
		return ops.Entry{}, fmt.Errorf("unknown entry op %v", pe.GetOp())
	}
	g, err := gfid.Parse(pe.GetGfid())
	if err != nil {
		return ops.Entry{}, fmt.Errorf("%s: gfid: %w", op, err)
	}
	parent, err := gfid.Parse(pe.GetPargfid())
	if err != nil {
		return ops.Entry{}, fmt.Errorf("%s %s: pargfid: %w", op, g, err)
	}
	e := ops.Entry{
		Op: op, GFID: g, Parent: parent, Name: string(pe.GetName()),
		Mode: pe.GetMode(), UID: pe.GetUid(), GID: pe.GetGid(), Rdev: pe.GetRdev(),
		Target: string(pe.GetLinkTarget()),
	}
	if op == ops.OpRename {
		if e.NewParent, err = gfid.Parse(pe.GetNewPargfid()); err != nil {
			return ops.Entry{}, fmt.Errorf("%s %s: new pargfid: %w", op, g, err)
		}
		e.NewName = string(pe.GetNewName())
	}
	return e, nil
}

func metaFromProto(pm *slavev1.Meta) (ops.Meta, error) {
	g, err := gfid.Parse(pm.GetGfid())
	if err != nil {
		return ops.Meta{}, fmt.Errorf("meta: gfid: %w", err)
	}
	m := ops.Meta{
		GFID:    g,
		SetMode: pm.GetSetMode(), Mode: pm.GetMode(),
		SetOwner: pm.GetSetOwner(), UID: pm.GetUid(), GID: pm.GetGid(),
		SetXattrs: pm.GetSetXattrs(),
	}
	if t := pm.GetAtime(); t != nil {
		at := time.Unix(t.GetSec(), int64(t.GetNsec()))
		m.Atime = &at
	}
	if t := pm.GetMtime(); t != nil {
		mt := time.Unix(t.GetSec(), int64(t.GetNsec()))
		m.Mtime = &mt
	}
	if m.SetXattrs {
		m.Xattrs = make(map[string][]byte, len(pm.GetXattrs()))
		for _, x := range pm.GetXattrs() {
			m.Xattrs[x.GetName()] = x.GetValue()
		}
	}
	return m, nil
}

func failureToProto(f ops.Failure, index int) *slavev1.EntryFailure {
	pf := &slavev1.EntryFailure{Index: uint32(index), Errno: int32(f.Errno), Message: f.Message}
	if !f.Existing.IsZero() {
		pf.ExistingGfid = f.Existing.String()
	}
	return pf
}

func attrToProto(a ops.Attr) *slavev1.Attr {
	return &slavev1.Attr{
		Type: slavev1.FileType(a.Type), Mode: a.Mode, Uid: a.UID, Gid: a.GID, Size: a.Size,
		Mtime: &slavev1.Timespec{Sec: a.Mtime.Unix(), Nsec: int32(a.Mtime.Nanosecond())},
		Nlink: a.Nlink, Rdev: a.Rdev, LinkTarget: []byte(a.Target),
	}
}

func errnoOf(err error) syscall.Errno {
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
		return errno
	case errors.Is(err, fs.ErrNotExist):
		return syscall.ENOENT
	}
	return syscall.EIO
}
