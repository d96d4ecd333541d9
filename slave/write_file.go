package slave

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	slavev1 "github.com/georep/georep/gen/georep/slave/v1"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/rawcodec"
	"github.com/georep/georep/rpc/wire"
	"github.com/georep/georep/slave/apply"
)

// streamWriter is a replica that fills new files from a stream
// (apply.Engine with Config.StreamWrites: the plain replica).
type streamWriter interface {
	WritesStreams() bool
	OpenWriter(g gfid.GFID, size int64) (*apply.FileWriter, error)
}

// writesStreams reports whether the replica serves WriteFile.
func (s *service) writesStreams() (streamWriter, bool) {
	w, ok := s.replica.(streamWriter)
	return w, ok && w.WritesStreams()
}

// dataField is WriteFileRequest's data field: rawcodec leaves a message of
// it alone in the frames gRPC read it into, which WriteFile writes to the
// file with writev.
var dataField = protowire.Number((&slavev1.WriteFileRequest{}).ProtoReflect().Descriptor().Fields().ByName("data").Number())

// writing holds the gfids a WriteFile stream is filling, so that two
// streams never write one file at once (each would see it empty).
type writing struct {
	mu   sync.Mutex
	gfid map[gfid.GFID]bool
}

func (w *writing) take(g gfid.GFID) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.gfid[g] {
		return false
	}
	if w.gfid == nil {
		w.gfid = map[gfid.GFID]bool{}
	}
	w.gfid[g] = true
	return true
}

func (w *writing) put(g gfid.GFID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.gfid, g)
}

// WriteFile fills one empty regular file from the stream: Start, data in
// order, End (see the protocol). Whatever ends the stream before End's
// attributes are set (the master's cancel, a cut connection, the session's
// end, a refusal) leaves the file empty again.
func (s *service) WriteFile(stream slavev1.SlaveService_WriteFileServer) error {
	sw, ok := s.writesStreams()
	if !ok {
		return status.Error(codes.Unimplemented, "this replica does not write files from a stream: use rsync")
	}
	first, err := stream.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return status.Error(codes.InvalidArgument, "write file: stream closed before Start")
		}
		return err
	}
	start := first.GetStart()
	if start == nil {
		return status.Error(codes.InvalidArgument, "write file: the first message must be Start")
	}
	g, err := parseGFID("write file: gfid", start.GetGfid())
	if err != nil {
		return err
	}
	if start.GetSize() > 1<<62 {
		return status.Errorf(codes.InvalidArgument, "write file %s: size %d", g, start.GetSize())
	}
	if !s.writes.take(g) {
		return status.Errorf(codes.Aborted, "write file %s: another stream is writing it", g)
	}
	defer s.writes.put(g)
	w, err := sw.OpenWriter(g, int64(start.GetSize()))
	if err != nil {
		return wire.ToStatus(fmt.Errorf("write file: %w", err))
	}
	committed := false
	defer func() {
		if !committed {
			w.Abort()
		}
	}()
	m := new(slavev1.WriteFileRequest)
	raw := rawcodec.Bytes{Field: dataField, Other: m}
	var iov [][]byte
	for {
		proto.Reset(m)
		err := stream.RecvMsg(&raw)
		if errors.Is(err, io.EOF) {
			return status.Errorf(codes.Aborted, "write file %s: stream ended without End; the file is left empty", g)
		}
		if err != nil {
			return err
		}
		if raw.Raw {
			iov = iov[:0]
			for _, b := range raw.Data {
				if d := b.ReadOnlyData(); len(d) > 0 {
					iov = append(iov, d)
				}
			}
			err := w.Write(iov)
			raw.Data.Free()
			if err != nil {
				return wire.ToStatus(fmt.Errorf("write file: %w", err))
			}
			continue
		}
		switch msg := m.GetMsg().(type) {
		case *slavev1.WriteFileRequest_Data:
			if err := w.Write([][]byte{msg.Data}); err != nil {
				return wire.ToStatus(fmt.Errorf("write file: %w", err))
			}
		case *slavev1.WriteFileRequest_End:
			a := wire.FileAttrsFromProto(msg.End)
			if msg.End.GetMtime() == nil {
				return status.Errorf(codes.InvalidArgument, "write file %s: End without mtime", g)
			}
			if err := stream.Context().Err(); err != nil {
				return status.FromContextError(err).Err()
			}
			committed = true
			if err := w.Commit(a); err != nil {
				return wire.ToStatus(fmt.Errorf("write file: %w", err))
			}
			return stream.SendAndClose(&slavev1.WriteFileResponse{})
		default:
			return status.Errorf(codes.InvalidArgument, "write file %s: a second Start, or an empty message", g)
		}
	}
}
