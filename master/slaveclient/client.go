// Package slaveclient is the master's end of the slave protocol
// (gen/georep/slave/v1) for the calls of an open session: entry ops, meta
// ops (one call each, or many batches on one ordered Apply stream),
// whole-file writes, directory listings (one, or a whole tree with Walk),
// purges, stats and xtimes, in
// the domain vocabulary of package rpc/ops. Every request and answer goes
// through package rpc/wire, and every error through wire.FromStatus, so a
// caller tests what failed with errors.Is against the ops sentinels
// (ops.ErrStale, ops.ErrNotDir, fs.ErrNotExist, ...), never with gRPC codes.
//
// Opening, renewing and losing the session (Handshake, KeepAlive) is the
// master's (master/slave.go): Client only attaches the current session id to
// each call. It is the master half of gsyncd's repce.py RepceClient with the
// calls resource.py Server answers.
package slaveclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protowire"

	slavev1 "github.com/georep/georep/gen/georep/slave/v1"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
	"github.com/georep/georep/rpc/rawcodec"
	"github.com/georep/georep/rpc/wire"
)

// SessionKey is the request metadata key that carries the session id.
const SessionKey = "georep-session"

// Client makes the calls of one slave session. Its methods are safe for
// concurrent use. Per-item failures of a batch are data (ops.Failure, Index
// counting from 0 in the batch sent, in the order of the items); an error
// means the whole call failed and nothing can be assumed about which items
// were applied.
type Client struct {
	api     slavev1.SlaveServiceClient
	session func() string // the current session id
}

// New returns a Client calling the slave on conn; session returns the id of
// the session to attach (it may change between calls when the session is
// opened again).
func New(conn grpc.ClientConnInterface, session func() string) *Client {
	return &Client{api: slavev1.NewSlaveServiceClient(conn), session: session}
}

func (c *Client) ctx(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, SessionKey, c.session())
}

// failures converts a batch's failures back, in the order of the items
// (the slave lists those it refused before converting them first); a
// failure the slave reported beyond the batch is an error of the whole
// call.
func failures(call string, pfs []*slavev1.EntryFailure, n int) ([]ops.Failure, error) {
	fs, err := wire.FailuresFromProto(pfs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", call, err)
	}
	for _, f := range fs {
		if f.Index < 0 || f.Index >= n {
			return nil, fmt.Errorf("%s: slave reported a failure for item %d of a batch of %d", call, f.Index, n)
		}
	}
	slices.SortStableFunc(fs, func(a, b ops.Failure) int { return a.Index - b.Index })
	return fs, nil
}

// EntryOps applies entries in order.
func (c *Client) EntryOps(ctx context.Context, entries []ops.Entry) ([]ops.Failure, error) {
	resp, err := c.api.EntryOps(c.ctx(ctx), &slavev1.EntryOpsRequest{Entries: wire.EntriesToProto(entries)})
	if err != nil {
		return nil, fmt.Errorf("entry ops: %w", wire.FromStatus(err))
	}
	return failures("entry ops", resp.GetFailures(), len(entries))
}

// MetaOps applies metas.
func (c *Client) MetaOps(ctx context.Context, metas []ops.Meta) ([]ops.Failure, error) {
	resp, err := c.api.MetaOps(c.ctx(ctx), &slavev1.MetaOpsRequest{Metas: wire.MetasToProto(metas)})
	if err != nil {
		return nil, fmt.Errorf("meta ops: %w", wire.FromStatus(err))
	}
	return failures("meta ops", resp.GetFailures(), len(metas))
}

// WriteFiles replaces the whole content of regular files the slave holds
// and sets their mode, owner and mtime.
func (c *Client) WriteFiles(ctx context.Context, files []ops.FileData) ([]ops.Failure, error) {
	resp, err := c.api.WriteFiles(c.ctx(ctx), &slavev1.WriteFilesRequest{Files: wire.FilesToProto(files)})
	if err != nil {
		return nil, fmt.Errorf("write files: %w", wire.FromStatus(err))
	}
	return failures("write files", resp.GetFailures(), len(files))
}

// fileChunk is the most file data one WriteFile message carries.
const fileChunk = 1 << 20

// filePool holds the buffers WriteFile reads a file into: each goes to
// gRPC as it is (rawcodec, no copy) and comes back once written.
var filePool = rawcodec.NewPool(fileChunk)

// fileDataField is WriteFileRequest's data field: a message of it alone
// is what rawcodec sends from the buffers read.
var fileDataField = protowire.Number((&slavev1.WriteFileRequest{}).ProtoReflect().Descriptor().Fields().ByName("data").Number())

// WriteFile fills the empty regular file g on the slave (capability
// "write-file") with exactly size bytes read from r, in order, then gives
// it the attributes attrs returns, which it calls once r is read (so that
// they are those of what was read). An error of r or attrs, or r ending
// before size bytes, ends the stream without End: the slave leaves the
// file empty. A file that holds data on the slave fails at once with an
// error matching syscall.EEXIST.
func (c *Client) WriteFile(ctx context.Context, g gfid.GFID, size int64, r io.Reader, attrs func() (ops.FileAttrs, error)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // a stream given up: the slave sees it cancelled
	stream, err := c.api.WriteFile(c.ctx(ctx))
	if err != nil {
		return fmt.Errorf("write file %s: %w", g, wire.FromStatus(err))
	}
	// closed: the slave ended the call (a refusal); its status says why.
	closed := func(err error) error {
		if errors.Is(err, io.EOF) {
			_, err = stream.CloseAndRecv()
		}
		return fmt.Errorf("write file %s: %w", g, wire.FromStatus(err))
	}
	start := &slavev1.WriteFileRequest{Msg: &slavev1.WriteFileRequest_Start{Start: &slavev1.WriteFileStart{Gfid: g.String(), Size: uint64(size)}}}
	if err := stream.Send(start); err != nil {
		return closed(err)
	}
	for left := size; left > 0; {
		n := int(min(left, fileChunk))
		buf := filePool.Get(n)
		if _, err := io.ReadFull(r, *buf); err != nil {
			filePool.Put(buf)
			return fmt.Errorf("write file %s: read at %d of %d bytes: %w", g, size-left, size, err)
		}
		left -= int64(n)
		// The wire bytes of WriteFileRequest{Data: buf}; gRPC frees buf.
		if err := stream.SendMsg(&rawcodec.Bytes{Field: fileDataField, Data: mem.BufferSlice{mem.NewBuffer(buf, filePool)}}); err != nil {
			return closed(err)
		}
	}
	a, err := attrs()
	if err != nil {
		return fmt.Errorf("write file %s: %w", g, err)
	}
	if err := stream.Send(&slavev1.WriteFileRequest{Msg: &slavev1.WriteFileRequest_End{End: wire.FileAttrsToProto(a)}}); err != nil {
		return closed(err)
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		return fmt.Errorf("write file %s: %w", g, wire.FromStatus(err))
	}
	return nil
}

// Entries lists the directory dir.
func (c *Client) Entries(ctx context.Context, dir gfid.GFID) ([]ops.DirEntry, error) {
	resp, err := c.api.Entries(c.ctx(ctx), &slavev1.EntriesRequest{Gfid: dir.String()})
	if err != nil {
		return nil, fmt.Errorf("entries of %s: %w", dir, wire.FromStatus(err))
	}
	ents, err := wire.DirEntriesFromProto(resp.GetEntries())
	if err != nil {
		return nil, fmt.Errorf("entries of %s: %w", dir, err)
	}
	return ents, nil
}

// Walk lists dir and every directory beneath it (the slave's capability
// "walk"), depth first, a directory after its parent, and hands each
// listing to fn as it arrives: its entries, or the error the slave could
// not list it with (errors.Is against fs.ErrNotExist, ops.ErrNotDir,
// ops.ErrStale as for Entries; nothing beneath it follows). An error of fn
// ends the walk and is returned.
func (c *Client) Walk(ctx context.Context, dir gfid.GFID, fn func(dir gfid.GFID, ents []ops.DirEntry, err error) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.api.Walk(c.ctx(ctx), &slavev1.WalkRequest{Gfid: dir.String()})
	if err != nil {
		return fmt.Errorf("walk %s: %w", dir, wire.FromStatus(err))
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("walk %s: %w", dir, wire.FromStatus(err))
		}
		g, err := gfid.Parse(resp.GetGfid())
		if err != nil {
			return fmt.Errorf("walk %s: a listing of gfid %q: %w", dir, resp.GetGfid(), err)
		}
		var ents []ops.DirEntry
		var lerr error
		if e := resp.GetErrno(); e != 0 {
			lerr = fmt.Errorf("entries of %s: %s: %w", g, resp.GetMessage(), syscall.Errno(e))
		} else if ents, err = wire.DirEntriesFromProto(resp.GetEntries()); err != nil {
			return fmt.Errorf("walk %s: entries of %s: %w", dir, g, err)
		}
		if err := fn(g, ents, lerr); err != nil {
			return err
		}
	}
}

// Audit describes directories entry by entry (the slave's capability
// "audit"): for each of dirs in order, its names after After, with
// attributes, inode numbers, xattr digests and, with content, digests of
// the regular files' data. The slave may answer fewer directories than
// asked: the last one answered then has More set.
func (c *Client) Audit(ctx context.Context, dirs []ops.AuditDirRequest, content bool) ([]ops.AuditDir, error) {
	req := &slavev1.AuditRequest{Content: content, Dirs: make([]*slavev1.AuditDirRequest, len(dirs))}
	for i, d := range dirs {
		req.Dirs[i] = &slavev1.AuditDirRequest{Gfid: d.GFID.String(), After: []byte(d.After)}
	}
	resp, err := c.api.Audit(c.ctx(ctx), req)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", wire.FromStatus(err))
	}
	out, err := wire.AuditDirsFromProto(resp.GetDirs())
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if len(out) > len(dirs) {
		return nil, fmt.Errorf("audit: the slave answered %d directories of %d asked", len(out), len(dirs))
	}
	for i, d := range out {
		if d.GFID != dirs[i].GFID {
			return nil, fmt.Errorf("audit: the slave answered directory %s where %s was asked", d.GFID, dirs[i].GFID)
		}
		if d.More && i != len(out)-1 {
			return nil, fmt.Errorf("audit: the slave cut directory %s short but answered the next", d.GFID)
		}
	}
	return out, nil
}

// Purge removes name in parent with everything beneath it (only when it
// holds the gfid only, unless only is zero) and returns how many inodes
// it removed.
func (c *Client) Purge(ctx context.Context, parent gfid.GFID, name string, only gfid.GFID) (uint64, error) {
	req := &slavev1.PurgeRequest{Pargfid: parent.String(), Name: []byte(name)}
	if !only.IsZero() {
		req.Gfid = only.String()
	}
	resp, err := c.api.Purge(c.ctx(ctx), req)
	if err != nil {
		return 0, fmt.Errorf("purge %s/%q: %w", parent, name, wire.FromStatus(err))
	}
	return resp.GetRemoved(), nil
}

// Stat returns the attributes of the inode g.
func (c *Client) Stat(ctx context.Context, g gfid.GFID) (ops.Attr, error) {
	resp, err := c.api.Stat(c.ctx(ctx), &slavev1.StatRequest{Gfids: []string{g.String()}})
	if err != nil {
		return ops.Attr{}, fmt.Errorf("stat %s: %w", g, wire.FromStatus(err))
	}
	rs := resp.GetResults()
	if len(rs) != 1 {
		return ops.Attr{}, fmt.Errorf("stat %s: slave answered %d results for 1 gfid", g, len(rs))
	}
	return wire.StatResultFromProto(rs[0])
}

// SetXtime marks the inode g with the xtime sec.nsec of the master volume
// volumeID (the slave refuses an nsec outside 0..999999999).
func (c *Client) SetXtime(ctx context.Context, g gfid.GFID, volumeID string, sec int64, nsec int32) error {
	_, err := c.api.SetXtime(c.ctx(ctx), &slavev1.SetXtimeRequest{
		Gfid: g.String(), VolumeId: volumeID, Xtime: &slavev1.Timespec{Sec: sec, Nsec: nsec},
	})
	if err != nil {
		return fmt.Errorf("set xtime: %w", wire.FromStatus(err))
	}
	return nil
}

// Xtime returns the xtime of the master volume volumeID on the inode g; ok
// is false when the inode carries none.
func (c *Client) Xtime(ctx context.Context, g gfid.GFID, volumeID string) (sec int64, nsec int32, ok bool, err error) {
	resp, err := c.api.Xtime(c.ctx(ctx), &slavev1.XtimeRequest{Gfid: g.String(), VolumeId: volumeID})
	if err != nil {
		return 0, 0, false, fmt.Errorf("xtime: %w", wire.FromStatus(err))
	}
	x := resp.GetXtime()
	if x == nil {
		return 0, 0, false, nil
	}
	return x.GetSec(), x.GetNsec(), true, nil
}

// Batches is an ordered pipeline of entry-op and meta-op batches on one
// Apply stream: the slave applies each batch after every batch sent before
// it, and Recv returns the answers in the order the batches were sent. The
// batches go without waiting for the answers, so however many there are,
// they cost one round trip. One goroutine may send (Entries, Metas,
// CloseSend) while another receives.
type Batches struct {
	stream slavev1.SlaveService_ApplyClient
	cancel context.CancelFunc

	mu    sync.Mutex
	sizes []int // of the batches sent and not answered yet, in order
}

// Apply opens an ordered pipeline of batches (the slave's capability
// "apply"). Close releases it.
func (c *Client) Apply(ctx context.Context) (*Batches, error) {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := c.api.Apply(c.ctx(ctx))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("apply: %w", wire.FromStatus(err))
	}
	return &Batches{stream: stream, cancel: cancel}, nil
}

// Entries sends a batch of entry ops, applied in order after every batch
// sent before it.
func (b *Batches) Entries(entries []ops.Entry) error {
	return b.send(len(entries), &slavev1.ApplyRequest{Batch: &slavev1.ApplyRequest_Entries{
		Entries: &slavev1.EntryOpsRequest{Entries: wire.EntriesToProto(entries)}}})
}

// Metas sends a batch of meta ops, applied after every batch sent before
// it.
func (b *Batches) Metas(metas []ops.Meta) error {
	return b.send(len(metas), &slavev1.ApplyRequest{Batch: &slavev1.ApplyRequest_Metas{
		Metas: &slavev1.MetaOpsRequest{Metas: wire.MetasToProto(metas)}}})
}

func (b *Batches) send(n int, req *slavev1.ApplyRequest) error {
	b.mu.Lock()
	b.sizes = append(b.sizes, n)
	b.mu.Unlock()
	if err := b.stream.Send(req); err != nil {
		// The stream is broken; Recv says why.
		return fmt.Errorf("apply: %w", wire.FromStatus(err))
	}
	return nil
}

// CloseSend says that no more batches follow.
func (b *Batches) CloseSend() error { return b.stream.CloseSend() }

// Recv returns the failures of the next batch not answered yet, in the
// order of its items. An error means the stream failed: the batches not
// answered may or may not have been applied.
func (b *Batches) Recv() ([]ops.Failure, error) {
	resp, err := b.stream.Recv()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("apply: the slave ended the stream before answering every batch")
	}
	if err != nil {
		return nil, fmt.Errorf("apply: %w", wire.FromStatus(err))
	}
	b.mu.Lock()
	if len(b.sizes) == 0 {
		b.mu.Unlock()
		return nil, errors.New("apply: the slave answered a batch that was not sent")
	}
	n := b.sizes[0]
	b.sizes = b.sizes[1:]
	b.mu.Unlock()
	return failures("apply", resp.GetFailures(), n)
}

// Close ends the stream (an unfinished one is cancelled).
func (b *Batches) Close() { b.cancel() }
