package master

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	slavev1 "github.com/georep/georep/gen/georep/slave/v1"
	"github.com/georep/georep/master/syncer"
	"github.com/georep/georep/rpc"
	"github.com/georep/georep/rpc/atomicfile"
	"github.com/georep/georep/rpc/gfid"
)

// slaveAPI is what the worker needs of the slave. The gRPC client below
// implements it; tests may use a fake. Methods are safe for concurrent use.
// Per-entry failures are returned as data; an error means the whole call
// failed and nothing can be assumed about which entries were applied
// (entry ops are idempotent, so the caller retries the batch).
type slaveAPI interface {
	EntryOps(ctx context.Context, ops []*slavev1.Entry) ([]*slavev1.EntryFailure, error)
	MetaOps(ctx context.Context, metas []*slavev1.Meta) ([]*slavev1.EntryFailure, error)
	Entries(ctx context.Context, dir gfid.GFID) ([]*slavev1.DirEntry, error)
	Purge(ctx context.Context, parent gfid.GFID, name string, only gfid.GFID) error
	SetXtime(ctx context.Context, g gfid.GFID, t time.Time) error
	// WriteFiles replaces the whole content of regular files the slave
	// holds and sets their mode, owner and mtime (the small-file path).
	WriteFiles(ctx context.Context, files []*slavev1.FileData) ([]*slavev1.EntryFailure, error)
}

// dataSyncer ships file data (master/syncer). Sync blocks until every item
// is shipped or failed and returns the failed ones.
type dataSyncer interface {
	Sync(ctx context.Context, items []syncer.Item) map[gfid.GFID]error
}

// protocolVersion is the slave protocol version this master speaks.
const protocolVersion = 1

// slaveClient is the gRPC client of one slave session.
type slaveClient struct {
	conn     *grpc.ClientConn
	api      slavev1.SlaveServiceClient
	volumeID string // the master volume's id
	node     string
	lease    time.Duration
	// sessionFile is where the current session id is written for the rsync
	// tunnel processes that rsync starts.
	sessionFile string

	// lost is set when a keep-alive is refused: the slave no longer knows
	// the session (it restarted, or another master took over).
	lost atomic.Bool
	// gen counts the sessions opened; hsMu serialises opening them (brick
	// workers share one client and one session).
	gen  atomic.Int64
	hsMu sync.Mutex

	mu        sync.Mutex
	session   string
	slaveVol  string
	maxBatch  int
	haveRsync bool
}

// sessionRefusal is what the slave says of a session id it does not hold;
// rsync tunnels pass it on as text, through rsync's error output.
const sessionRefusal = "is not the current session"

func newSlaveClient(cfg Config, volumeID, sessionFile string) (*slaveClient, error) {
	conn, err := rpc.NewClient(rpc.ClientConfig{Address: cfg.Slave, TLS: cfg.TLS, Insecure: cfg.Insecure})
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	return &slaveClient{
		conn: conn, api: slavev1.NewSlaveServiceClient(conn),
		volumeID: volumeID, node: fmt.Sprintf("%s pid %d", host, os.Getpid()),
		lease: cfg.Lease, sessionFile: sessionFile,
	}, nil
}

func (c *slaveClient) Close() error { return c.conn.Close() }

// slaveVolume returns the slave's volume id, known once a session is open.
func (c *slaveClient) slaveVolume() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.slaveVol
}

// handshake opens the session.
func (c *slaveClient) handshake(ctx context.Context) error {
	resp, err := c.api.Handshake(ctx, &slavev1.HandshakeRequest{
		ProtocolVersion: protocolVersion,
		MasterVolumeId:  c.volumeID,
		MasterNode:      c.node,
		LeaseSeconds:    uint32(c.lease / time.Second),
	})
	if err != nil {
		if g := handshakeGuard(c.conn.Target(), err); g != nil {
			return fmt.Errorf("handshake with slave %s: %w", c.conn.Target(), g)
		}
		return fmt.Errorf("handshake with slave %s: %w", c.conn.Target(), err)
	}
	if err := atomicfile.Write(c.sessionFile, []byte(resp.GetSessionId()), 0o600); err != nil {
		return err
	}
	c.lost.Store(false)
	c.mu.Lock()
	if granted := time.Duration(resp.GetLeaseSeconds()) * time.Second; granted > 0 {
		c.lease = granted // the slave may grant less than asked: renew in time
	}
	c.session = resp.GetSessionId()
	c.slaveVol = resp.GetSlaveVolumeId()
	c.maxBatch = int(resp.GetMaxBatch())
	c.haveRsync = false
	for _, cap := range resp.GetCapabilities() {
		if cap == "rsync" {
			c.haveRsync = true
		}
	}
	c.mu.Unlock()
	return nil
}

// handshakeGuard maps the slave's refusal of a first master on a replica
// root holding data georep did not create (ErrorInfo reason
// REPLICA_NOT_EMPTY, matched by reason, never by message) to the
// replica-not-empty guard; nil for any other error.
func handshakeGuard(slave string, err error) *GuardError {
	info := rpc.ErrorInfo(err, rpc.ReasonReplicaNotEmpty)
	if info == nil {
		return nil
	}
	md := info.GetMetadata()
	root := md["root"]
	first := ""
	if names := md["names"]; names != "" {
		q := strings.Split(names, "\n")
		for i := range q {
			q[i] = strconv.Quote(q[i])
		}
		first = ", first " + strings.Join(q, ", ")
	}
	detail := fmt.Sprintf("slave %s: replica root %s is bound to no master yet and holds %s entries georep did not create%s; this master's first pass would remove every one its source lacks",
		slave, root, md["entries"], first)
	return &GuardError{
		Guard:  "replica-not-empty",
		Detail: detail,
		Proceed: fmt.Sprintf("check that %s on the slave is the directory (or volume) meant to hold this replica; "+
			"then restart georep-slave with --adopt, and this master takes it over, removing what its source lacks", root),
	}
}

func (c *slaveClient) ctx(ctx context.Context) context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	return metadata.AppendToOutgoingContext(ctx, "georep-session", c.session)
}

// keepAliveLogged runs keepAlive until ctx is done, logging its failures.
func (c *slaveClient) keepAliveLogged(ctx context.Context, log *slog.Logger) {
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case err := <-errs:
				log.Warn("slave keep-alive failed", "err", err)
			}
		}
	})
	c.keepAlive(ctx, errs)
}

// keepAlive renews the lease every third of it until ctx ends. A failed
// renewal is logged by the caller through the returned channel.
func (c *slaveClient) keepAlive(ctx context.Context, errs chan<- error) {
	for {
		c.mu.Lock()
		every := c.lease / 3
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
		now := time.Now()
		_, err := c.api.KeepAlive(c.ctx(ctx), &slavev1.KeepAliveRequest{Mark: &slavev1.VolumeMark{
			Uuid: c.volumeID, Sec: now.Unix(), Nsec: int32(now.Nanosecond()), Timeout: uint32(every / time.Second * 3),
		}})
		if status.Code(err) == codes.FailedPrecondition {
			c.lost.Store(true)
		}
		if err != nil && ctx.Err() == nil {
			select {
			case errs <- fmt.Errorf("keep-alive: %w", err):
			default:
			}
		}
	}
}

func (c *slaveClient) EntryOps(ctx context.Context, ops []*slavev1.Entry) ([]*slavev1.EntryFailure, error) {
	resp, err := c.api.EntryOps(c.ctx(ctx), &slavev1.EntryOpsRequest{Entries: ops})
	if err != nil {
		return nil, fmt.Errorf("entry ops: %w", err)
	}
	return resp.GetFailures(), nil
}

func (c *slaveClient) MetaOps(ctx context.Context, metas []*slavev1.Meta) ([]*slavev1.EntryFailure, error) {
	resp, err := c.api.MetaOps(c.ctx(ctx), &slavev1.MetaOpsRequest{Metas: metas})
	if err != nil {
		return nil, fmt.Errorf("meta ops: %w", err)
	}
	return resp.GetFailures(), nil
}

func (c *slaveClient) WriteFiles(ctx context.Context, files []*slavev1.FileData) ([]*slavev1.EntryFailure, error) {
	resp, err := c.api.WriteFiles(c.ctx(ctx), &slavev1.WriteFilesRequest{Files: files})
	if err != nil {
		return nil, fmt.Errorf("write files: %w", err)
	}
	return resp.GetFailures(), nil
}

func (c *slaveClient) Entries(ctx context.Context, dir gfid.GFID) ([]*slavev1.DirEntry, error) {
	resp, err := c.api.Entries(c.ctx(ctx), &slavev1.EntriesRequest{Gfid: dir.String()})
	if err != nil {
		return nil, fmt.Errorf("entries of %s: %w", dir, err)
	}
	return resp.GetEntries(), nil
}

func (c *slaveClient) Purge(ctx context.Context, parent gfid.GFID, name string, only gfid.GFID) error {
	req := &slavev1.PurgeRequest{Pargfid: parent.String(), Name: []byte(name)}
	if !only.IsZero() {
		req.Gfid = only.String()
	}
	if _, err := c.api.Purge(c.ctx(ctx), req); err != nil {
		return fmt.Errorf("purge %s/%q: %w", parent, name, err)
	}
	return nil
}

func (c *slaveClient) SetXtime(ctx context.Context, g gfid.GFID, t time.Time) error {
	_, err := c.api.SetXtime(c.ctx(ctx), &slavev1.SetXtimeRequest{
		Gfid: g.String(), VolumeId: c.volumeID,
		Xtime: &slavev1.Timespec{Sec: t.Unix(), Nsec: int32(t.Nanosecond())},
	})
	if err != nil {
		return fmt.Errorf("set xtime: %w", err)
	}
	return nil
}

// errnoName renders a failure's errno for logs.
func errnoName(e int32) string { return syscall.Errno(e).Error() }
