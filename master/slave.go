package master

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	slavev1 "github.com/georep/georep/gen/georep/slave/v1"
	"github.com/georep/georep/master/slaveclient"
	"github.com/georep/georep/master/slaveclient/tunnel"
	"github.com/georep/georep/master/syncer"
	"github.com/georep/georep/rpc"
	"github.com/georep/georep/rpc/atomicfile"
	"github.com/georep/georep/rpc/bwlimit"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// slaveAPI is the slave the pipeline needs (process, resolve, small files,
// verify, the dry run), in the domain vocabulary of package rpc/ops; the
// pipeline owns it. slaveClient implements it over gRPC (the calls of
// master/slaveclient on the current session); tests use an in-memory fake.
//
// Methods are safe for concurrent use and take ownership of nothing: the
// slices passed are not kept. Per-item failures of a batch are data: each
// ops.Failure names its item by Index (from 0 within the batch sent) and
// carries the slave's errno, and the rest of the batch was applied. An
// error means the whole call failed and nothing can be assumed about which
// items were applied (entry ops are idempotent, so the caller retries the
// batch at its next pass); it is a domain error (errors.Is against the ops
// sentinels and fs.ErrNotExist, errors.As into a syscall.Errno), whatever
// the transport.
type slaveAPI interface {
	// EntryOps applies namespace operations in order.
	EntryOps(ctx context.Context, entries []ops.Entry) ([]ops.Failure, error)
	// MetaOps sets mode, owner, times and xattrs of inodes.
	MetaOps(ctx context.Context, metas []ops.Meta) ([]ops.Failure, error)
	// WriteFiles replaces the whole content of regular files the slave
	// holds and sets their mode, owner and mtime (the small-file path).
	WriteFiles(ctx context.Context, files []ops.FileData) ([]ops.Failure, error)
	// Entries lists a directory. Not there as a directory is an error
	// slaveDirGone recognises.
	Entries(ctx context.Context, dir gfid.GFID) ([]ops.DirEntry, error)
	// Purge removes name in parent with everything beneath it (only when
	// it holds the gfid only, unless only is zero) and says how many
	// inodes went.
	Purge(ctx context.Context, parent gfid.GFID, name string, only gfid.GFID) (uint64, error)
	// SetXtime marks an inode with this master volume's xtime.
	SetXtime(ctx context.Context, g gfid.GFID, t time.Time) error
}

var _ slaveAPI = (*slaveClient)(nil)

// walk lists dir and every directory beneath it in one stream when the
// slave can (ok false: it cannot; see verify).
func (c *slaveClient) walk(ctx context.Context, dir gfid.GFID, fn func(gfid.GFID, []ops.DirEntry, error) error) (bool, error) {
	c.mu.Lock()
	have := c.haveWalk
	c.mu.Unlock()
	if !have {
		return false, nil
	}
	return true, c.Client.Walk(ctx, dir, fn)
}

// aclWriter is a slave whose WriteFiles can clear a file's ACL
// (ops.FileData.ClearACL): with sync-acls, small files without an ACL go
// through WriteFiles only to such a slave.
type aclWriter interface{ writesACL() bool }

func (c *slaveClient) writesACL() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.haveACL
}

// auditCaps says whether the slave can be audited, and whether it applies
// owners (so that the audit compares them).
func (c *slaveClient) auditCaps() (audit, owner bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.haveAudit, c.haveOwner
}

// writeFileCap says whether the slave fills new files from a WriteFile
// stream (capability "write-file"); an older slave, or a GlusterFS one, has
// them shipped by rsync.
func (c *slaveClient) writeFileCap() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.haveWrite
}

// slaveDirGone reports whether err, from Entries, says the directory is not
// on the slave as a directory: no inode has its gfid (fs.ErrNotExist), its
// gfid is not a directory there (ops.ErrNotDir), or its name there holds
// something else, such as a symlink swapped in behind georep's back, which
// the slave will not follow (ops.ErrStale).
func slaveDirGone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, ops.ErrNotDir) || errors.Is(err, ops.ErrStale)
}

// dataSyncer ships file data (master/syncer). Sync blocks until every item
// is shipped or failed and returns the failed ones.
type dataSyncer interface {
	Sync(ctx context.Context, items []syncer.Item) map[gfid.GFID]error
}

// protocolVersion is the slave protocol version this master speaks.
const protocolVersion = 1

// slaveClient is the gRPC client of one slave session: it opens the
// session (handshake), keeps it alive, knows when it is lost and what a
// refusal is; the calls of the session, in ops types, are those of the
// embedded slaveclient.Client (SetXtime with this master's volume id and a
// time), which implement slaveAPI.
type slaveClient struct {
	*slaveclient.Client
	// eps are the slave nodes' connections, this worker's preferred one
	// first; cur is the one the session is on. A session lives in one
	// georep-slave process: the calls, the keep-alives and the rsync
	// tunnels of a session all go to the same endpoint, and the worker
	// moves to the next one only when a handshake cannot reach it.
	eps      []*endpoint
	cur      atomic.Int32
	api      slavev1.SlaveServiceClient
	volumeID string // the master volume's id
	node     string
	lease    time.Duration
	// opened is signalled when a handshake opens a session: keepAlive
	// then counts its wait from it, with the lease the slave granted.
	opened chan struct{}
	// replicaSet and workerID name the worker to the slave, which lets one
	// worker per replica set hold a session (the set's lease); empty for
	// a plain directory's one worker.
	replicaSet, workerID string
	// sessionFile is where the current session id is written for the rsync
	// tunnel processes that rsync starts.
	sessionFile string
	// relay carries the rsync tunnels' connections to the slave through
	// the master's dialer, and so its bandwidth limit (nil: the tunnels
	// dial the slave themselves).
	relay *tunnel.Relay

	// lost is set when a keep-alive is refused: the slave no longer knows
	// the session (it restarted, or another worker took over).
	lost atomic.Bool
	// gen counts the sessions opened; hsMu serialises opening them.
	gen  atomic.Int64
	hsMu sync.Mutex

	mu         sync.Mutex
	session    string
	slaveVol   string
	maxBatch   int
	haveRsync  bool
	haveApply  bool // the Apply stream
	haveWalk   bool // Walk
	haveAudit  bool // Audit
	haveOwner  bool // the slave applies owners (it runs as root)
	haveACL    bool // WriteFiles clears a file's ACL when asked (write-files-acl)
	haveWrite  bool // WriteFile: new files filled from a stream
	parkEmpty  bool // the park held nothing at the handshake
	leaseEpoch uint64
	setStime   time.Time // the replica set's stime the slave's lease holds
}

// endpoint is the connection to one slave node.
type endpoint struct {
	addr string
	conn *grpc.ClientConn
}

// current is the endpoint the session is on.
func (c *slaveClient) current() *endpoint { return c.eps[c.cur.Load()] }

// next moves to the next endpoint (after a handshake that could not reach
// the current one) and returns it.
func (c *slaveClient) next() *endpoint {
	i := (c.cur.Load() + 1) % int32(len(c.eps))
	c.cur.Store(i)
	return c.eps[i]
}

// Invoke and NewStream make the client a grpc.ClientConnInterface that
// calls the current endpoint.
func (c *slaveClient) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return c.current().conn.Invoke(ctx, method, args, reply, opts...)
}

func (c *slaveClient) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return c.current().conn.NewStream(ctx, desc, method, opts...)
}

// sessionRefusal is what the slave says of a session id it does not hold;
// rsync tunnels pass it on as text, through rsync's error output.
const sessionRefusal = "is not the current session"

// newSlaveClient opens the gRPC client of the slave. Every connection it
// makes to the slave goes through bw (nil: no limit), and when relaySock is
// not empty it also relays the rsync tunnels' connections there (see
// tunnel.Relay), so that bw covers all that the master sends. Its calls and
// the certificates it loads are measured in mx (nil: not measured).
func newSlaveClient(cfg Config, volumeID, sessionFile, relaySock string, bw *bwlimit.Limiter, mx *metrics) (*slaveClient, error) {
	return newSlaveClientFor(cfg, volumeID, sessionFile, relaySock, bw, mx, 0)
}

// newSlaveClientFor is newSlaveClient for the worker numbered prefer: of
// the slave's endpoints it prefers the one numbered prefer modulo their
// count (gsyncd: brick i to slave node i mod n), then the ones after it.
func newSlaveClientFor(cfg Config, volumeID, sessionFile, relaySock string, bw *bwlimit.Limiter, mx *metrics, prefer int) (*slaveClient, error) {
	cc := rpc.ClientConfig{TLS: cfg.TLS, Insecure: cfg.Insecure}
	if mx != nil {
		cc.Metrics, cc.Certs = mx.grpc, mx.certs
	}
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return bw.Conn(c), nil
	}
	addrs := slaveEndpoints(cfg.Slave)
	if len(addrs) == 0 {
		return nil, errors.New("slave: no address")
	}
	host, _ := os.Hostname()
	c := &slaveClient{
		volumeID: volumeID, node: fmt.Sprintf("%s pid %d", host, os.Getpid()),
		lease: cfg.Lease, sessionFile: sessionFile, opened: make(chan struct{}, 1),
	}
	for i := range addrs {
		addr := addrs[(prefer+i)%len(addrs)]
		cc.Address, cc.Dial = addr, dial
		conn, err := rpc.NewClient(cc)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.eps = append(c.eps, &endpoint{addr: addr, conn: conn})
	}
	c.api = slavev1.NewSlaveServiceClient(c)
	if relaySock != "" {
		var err error
		c.relay, err = tunnel.ListenRelay(relaySock, func(ctx context.Context) (net.Conn, error) { return dial(ctx, c.current().addr) })
		if err != nil {
			c.Close()
			return nil, err
		}
	}
	c.Client = slaveclient.New(c, c.sessionID)
	// Connect now (TCP, TLS, HTTP/2's settings: a few round trips on a
	// WAN) while the worker opens its work dir, not at the first call.
	c.eps[0].conn.Connect()
	return c, nil
}

// tunnelArgs are the rsync tunnel's flags to reach the slave as this
// client does: through the relay, with the same transport.
func (c *slaveClient) tunnelArgs(cfg Config) []string {
	args := []string{"--slave", c.current().addr, "--session-file", c.sessionFile}
	if c.relay != nil {
		args = append(args, "--via", c.relay.Path())
	}
	if cfg.Insecure {
		return append(args, "--insecure")
	}
	args = append(args, "--tls-cert", cfg.TLS.Cert, "--tls-key", cfg.TLS.Key, "--tls-ca", cfg.TLS.CA)
	if cfg.TLS.ServerName != "" {
		args = append(args, "--tls-server-name", cfg.TLS.ServerName)
	}
	return args
}

// SetXtime marks the inode g with this master volume's xtime t.
func (c *slaveClient) SetXtime(ctx context.Context, g gfid.GFID, t time.Time) error {
	return c.Client.SetXtime(ctx, g, c.volumeID, t.Unix(), int32(t.Nanosecond()))
}

// sessionID is the id of the session open now ("" before the handshake).
func (c *slaveClient) sessionID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session
}

func (c *slaveClient) Close() error {
	if c.relay != nil {
		c.relay.Close()
	}
	var errs []error
	for _, e := range c.eps {
		errs = append(errs, e.conn.Close())
	}
	return errors.Join(errs...)
}

// release ends the session on the slave, giving the replica set's lease up
// at once (a worker stepping down); best effort: a lease not released
// expires.
func (c *slaveClient) release(ctx context.Context, why string) {
	if c.sessionID() == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, _ = c.api.Release(c.ctx(ctx), &slavev1.ReleaseRequest{Reason: why})
	c.lost.Store(true)
}

// connected says whether the session is open (a handshake succeeded and
// no keep-alive was refused since) over a connection that is up.
func (c *slaveClient) connected() bool {
	if c.sessionID() == "" || c.lost.Load() {
		return false
	}
	switch c.current().conn.GetState() {
	case connectivity.Ready, connectivity.Idle:
		return true
	}
	return false
}

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
		ReplicaSet:      c.replicaSet,
		WorkerId:        c.workerID,
	})
	if err != nil {
		addr := c.current().addr
		if g := handshakeGuard(addr, err); g != nil {
			return fmt.Errorf("handshake with slave %s: %w", addr, g)
		}
		if h := leaseHeld(err); h != nil {
			return fmt.Errorf("handshake with slave %s: %w", addr, h)
		}
		return fmt.Errorf("handshake with slave %s: %w", addr, err)
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
	select {
	case c.opened <- struct{}{}:
	default:
	}
	c.slaveVol = resp.GetSlaveVolumeId()
	c.maxBatch = int(resp.GetMaxBatch())
	c.haveRsync, c.haveApply, c.haveWalk, c.haveAudit, c.haveOwner, c.haveACL, c.haveWrite = false, false, false, false, false, false, false
	for _, cap := range resp.GetCapabilities() {
		switch cap {
		case "rsync":
			c.haveRsync = true
		case "apply":
			c.haveApply = true
		case "walk":
			c.haveWalk = true
		case "audit":
			c.haveAudit = true
		case "owner":
			c.haveOwner = true
		case "write-files-acl":
			c.haveACL = true
		case "write-file":
			c.haveWrite = true
		}
	}
	c.parkEmpty = resp.GetParkEmpty()
	c.leaseEpoch, c.setStime = resp.GetLeaseEpoch(), time.Time{}
	if resp.GetSetStimeSec() != 0 || resp.GetSetStimeNsec() != 0 {
		c.setStime = time.Unix(resp.GetSetStimeSec(), int64(resp.GetSetStimeNsec()))
	}
	c.mu.Unlock()
	return nil
}

// leaseHeldError says that another worker of the replica set holds its
// lease on the slave: this worker is Passive.
type leaseHeldError struct {
	set, worker, slave, epoch, since string
}

func (e *leaseHeldError) Error() string {
	return fmt.Sprintf("replica set %s is held by worker %s through slave %s since %s (lease epoch %s)", e.set, e.worker, e.slave, e.since, e.epoch)
}

// leaseHeld maps the slave's LEASE_HELD refusal (matched by reason) to a
// *leaseHeldError; nil for any other error.
func leaseHeld(err error) *leaseHeldError {
	info := rpc.ErrorInfo(err, rpc.ReasonLeaseHeld)
	if info == nil {
		return nil
	}
	md := info.GetMetadata()
	return &leaseHeldError{set: md["replica_set"], worker: md["worker"], slave: md["slave"], epoch: md["epoch"], since: md["since"]}
}

// replicaSetStime is the replica set's stime the slave's lease held at the
// handshake (zero: none recorded).
func (c *slaveClient) replicaSetStime() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.setStime
}

// refusesCertificate reports whether err, from the health check of the
// slave's connection, is the slave refusing this master's certificate (not
// among its allowed-masters): retrying cannot help.
func refusesCertificate(err error) bool { return status.Code(err) == codes.PermissionDenied }

// unreached reports whether err, from the handshake, failed before the
// slave's service answered: the connection could not be made (or its TLS
// handshake failed), the call timed out, or the slave refused this
// client's identity. The health check then says which (WaitHealthy).
func unreached(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.PermissionDenied, codes.Unauthenticated:
		return true
	}
	return false
}

// refusesSession reports whether err, from handshake, is the slave refusing
// the session in a way retrying will not change by itself: another master
// volume's replica, a protocol version it does not speak. (A refusal that
// is a guard is a GuardError instead.)
func refusesSession(err error) bool { return status.Code(err) == codes.FailedPrecondition }

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
	return metadata.AppendToOutgoingContext(ctx, slaveclient.SessionKey, c.sessionID())
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
// renewal is logged by the caller through the returned channel. The wait
// starts again when a session opens: the lease the slave granted may be
// shorter than the one asked for, which the wait begun before it was.
func (c *slaveClient) keepAlive(ctx context.Context, errs chan<- error) {
	for {
		c.mu.Lock()
		every := c.lease / 3
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-c.opened:
			continue
		case <-time.After(every):
		}
		if c.sessionID() == "" || c.lost.Load() {
			continue // no session to keep (a Passive worker's, or one being opened again)
		}
		now := time.Now()
		_, err := c.api.KeepAlive(c.ctx(ctx), &slavev1.KeepAliveRequest{Mark: &slavev1.VolumeMark{
			Uuid: c.volumeID, Sec: now.Unix(), Nsec: int32(now.Nanosecond()), Timeout: uint32(math.Ceil((3 * every).Seconds())),
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

// errnoName renders a failure's errno for logs.
func errnoName(e syscall.Errno) string { return e.Error() }
