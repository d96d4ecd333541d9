package slave

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	slavev1 "github.com/georep/georep/gen/georep/slave/v1"
	"github.com/georep/georep/rpc"
	"github.com/georep/georep/rpc/atomicfile"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/slave/glusterfs"
	"github.com/georep/georep/slave/lease"
	"github.com/georep/georep/slave/replica"
)

// Config is the slave daemon's configuration. Keys follow gsyncd's names
// where gsyncd has one.
type Config struct {
	Listen string
	// Root is the replica directory of a plain-directory replica. Exactly
	// one of Root and GlusterVolume is set.
	Root string
	// GlusterVolume, VolfileServer and StateDir select a GlusterFS volume
	// as the replica: the slave mounts it itself (see slave/glusterfs).
	GlusterVolume string
	VolfileServer string
	// StateDir holds the private mount point of GlusterVolume; "" is a
	// fresh directory under /run/georep (or the system's temp dir).
	StateDir string
	Insecure bool
	TLS      rpc.TLSFiles
	// AllowedMasters lists the identities of the masters' client
	// certificates the slave serves (Common Name, DNS SAN or URI SAN, see
	// rpc.PeerIdentities); every other certificate of the CA is refused
	// with PermissionDenied on every call. Empty: any certificate the CA
	// signed (logged as a warning at start). Needs TLS.
	AllowedMasters []string
	// MaxRsyncStreams bounds the rsync tunnel streams (each an rsync
	// process) running at once; more are refused with ResourceExhausted.
	MaxRsyncStreams int
	// RsyncPath is the rsync binary; "" looks it up in PATH.
	RsyncPath string
	// MaxBatch bounds the entries of one EntryOps/MetaOps/Stat call.
	MaxBatch int
	// Lease is how long a master holds the session without a keep-alive.
	Lease time.Duration
	// AcceptNewMaster lets a master volume other than the one this replica
	// was first synced from take it over (its gfids will not match).
	AcceptNewMaster bool
	// Adopt lets the first master bind a replica root (or slave volume)
	// that holds entries georep did not create; without it that master is
	// refused (FailedPrecondition, ErrorInfo reason REPLICA_NOT_EMPTY),
	// because its first pass removes whatever its source lacks. The
	// adoption is recorded in .georep/adopted.
	Adopt bool
	// MetricsListen is host:port serving Prometheus /metrics; "" none.
	MetricsListen string
	// Alive, when not nil, is called each time the lease watch has done a
	// round (every second: expired sessions ended, the live ones' leases
	// checked on the replica): systemd's watchdog ping comes from it.
	Alive func()
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Listen: "127.0.0.1:7100", MaxBatch: 10000, Lease: 60 * time.Second, MaxRsyncStreams: 64}
}

// Validate checks the configuration before anything starts.
func (c Config) Validate() error {
	var errs []error
	if c.Listen == "" {
		errs = append(errs, errors.New("listen: an address is required, e.g. 127.0.0.1:7100"))
	}
	switch {
	case c.Root == "" && c.GlusterVolume == "":
		errs = append(errs, errors.New("root, gluster-volume: one is required: root for a replica directory, or gluster-volume (with volfile-server) for a GlusterFS volume"))
	case c.Root != "" && c.GlusterVolume != "":
		errs = append(errs, fmt.Errorf("root %q, gluster-volume %q: only one may be set: root for a replica directory, or gluster-volume for a GlusterFS volume", c.Root, c.GlusterVolume))
	case c.GlusterVolume != "":
		if err := c.glusterConfig().Validate(); err != nil {
			errs = append(errs, err)
		}
	case c.VolfileServer != "":
		errs = append(errs, fmt.Errorf("volfile-server %q: only allowed with gluster-volume", c.VolfileServer))
	}
	if c.MaxBatch < 1 || c.MaxBatch > 100000 {
		errs = append(errs, fmt.Errorf("max-batch: %d is outside 1..100000", c.MaxBatch))
	}
	if c.MaxRsyncStreams < 1 || c.MaxRsyncStreams > 1024 {
		errs = append(errs, fmt.Errorf("max-rsync-streams: %d is outside 1..1024", c.MaxRsyncStreams))
	}
	if c.Insecure && len(c.AllowedMasters) > 0 {
		errs = append(errs, errors.New("allowed-masters: names certificate identities, which need TLS: drop insecure or allowed-masters"))
	}
	for _, m := range c.AllowedMasters {
		if strings.TrimSpace(m) == "" || strings.TrimSpace(m) != m {
			errs = append(errs, fmt.Errorf("allowed-masters: %q is not an identity (empty or surrounded by spaces)", m))
		}
	}
	if c.Lease < time.Second {
		errs = append(errs, fmt.Errorf("lease: %s is shorter than 1s", c.Lease))
	}
	return errors.Join(errs...)
}

// Run serves the slave until ctx is done. ready, if not nil, is called with
// the listening address once the server accepts connections.
func Run(ctx context.Context, cfg Config, log *slog.Logger, ready func(net.Addr)) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	rep, err := openReplica(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := rep.Close(); cerr != nil {
			log.Error("closing the replica", "err", cerr)
		}
	}()
	volumeID, err := readOrCreateID(rep.Root(), "volume-id")
	if err != nil {
		return err
	}
	rsyncPath := cfg.RsyncPath
	if rsyncPath == "" {
		rsyncPath = "rsync"
	}
	if p, err := exec.LookPath(rsyncPath); err != nil {
		log.Warn("rsync not found: file data cannot be received until the Debian package rsync is installed", "rsync", rsyncPath)
		rsyncPath = ""
	} else {
		rsyncPath = p
	}
	// The leases of the replica sets live on the replica itself, shared by
	// every slave node serving it.
	host, _ := os.Hostname()
	leases, err := lease.Open(rep.Root(), host+" "+cfg.Listen)
	if err != nil {
		return err
	}
	sess := &sessions{now: time.Now, maxLease: cfg.Lease, leases: leases, log: log, alive: cfg.Alive}
	wctx, wcancel := context.WithCancel(ctx)
	var watchWG sync.WaitGroup
	defer watchWG.Wait()
	defer wcancel()
	watchWG.Go(func() { sess.watch(wctx, leaseWatchEvery) })
	svc := &service{
		replica:    rep,
		sessions:   sess,
		binding:    &binding{root: rep.Root(), acceptNew: cfg.AcceptNewMaster, adopt: cfg.Adopt, own: ownRootNames(cfg), log: log},
		volumeID:   volumeID,
		rsync:      rsyncPath,
		rsyncSlots: make(chan struct{}, cfg.MaxRsyncStreams),
		maxBatch:   cfg.MaxBatch,
		log:        log,
	}
	if !cfg.Insecure && len(cfg.AllowedMasters) == 0 {
		log.Warn("allowed-masters is empty: any client certificate signed by tls-ca is served as a master; list the masters' certificate names in allowed-masters", "tls_ca", cfg.TLS.CA)
	}
	mx := newMetrics()
	srv, err := rpc.NewServer(rpc.ServerConfig{
		Insecure:       cfg.Insecure,
		TLS:            cfg.TLS,
		AllowedClients: cfg.AllowedMasters,
		Metrics:        mx.grpc,
		Certs:          mx.certs,
		Unary:          []grpc.UnaryServerInterceptor{svc.unaryAuth},
		Stream:         []grpc.StreamServerInterceptor{svc.streamAuth},
	}, log)
	if err != nil {
		return err
	}
	slavev1.RegisterSlaveServiceServer(srv, svc)
	mx.grpc.InitializeMetrics(srv.Server)
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	if cfg.MetricsListen != "" {
		mlis, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			lis.Close()
			return fmt.Errorf("metrics-listen %s: %w", cfg.MetricsListen, err)
		}
		var wg sync.WaitGroup
		defer wg.Wait()
		mctx, cancel := context.WithCancel(ctx)
		defer cancel()
		rpc.ServeMetrics(mctx, mlis, mx.reg, log, &wg)
	}
	log.Info("slave serving", "addr", lis.Addr().String(), "root", cfg.Root, "gluster_volume", cfg.GlusterVolume, "volume_id", volumeID, "insecure", cfg.Insecure, "allowed_masters", cfg.AllowedMasters)
	if ready != nil {
		ready(lis.Addr())
	}
	return srv.Serve(ctx, lis, 10*time.Second)
}

// leaseWatchEvery is how often the slave ends expired sessions and checks
// that live ones still hold their replica set's lease.
const leaseWatchEvery = time.Second

// ownRootNames are the names in the root of the configured replica that
// its file system keeps there (not data anyone put there).
func ownRootNames(cfg Config) map[string]bool {
	own := map[string]bool{}
	if cfg.GlusterVolume != "" {
		for _, n := range glusterfs.InternalRootNames {
			own[n] = true
		}
	}
	return own
}

func (c Config) glusterConfig() glusterfs.Config {
	return glusterfs.Config{Volume: c.GlusterVolume, VolfileServer: c.VolfileServer, StateDir: c.StateDir}
}

// openReplica opens the replica the configuration names.
func openReplica(ctx context.Context, cfg Config, log *slog.Logger) (Replica, error) {
	if cfg.GlusterVolume != "" {
		v, err := glusterfs.Open(ctx, cfg.glusterConfig(), log)
		if err != nil {
			return nil, err
		}
		return v, nil
	}
	r, err := replica.Open(cfg.Root, log)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// readOrCreateID returns the UUID kept in <root>/.georep/<name>, creating it
// on first use.
func readOrCreateID(root, name string) (string, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return "", fmt.Errorf("open replica root: %w", err)
	}
	defer r.Close()
	path := ".georep/" + name
	if b, err := r.ReadFile(path); err == nil {
		id := strings.TrimSpace(string(b))
		if _, err := gfid.Parse(id); err != nil {
			return "", fmt.Errorf("%s/%s: %w", root, path, err)
		}
		return id, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read %s/%s: %w", root, path, err)
	}
	// Several slave nodes may start at once on one new volume: the first
	// to link its id in place gives the volume its id, the others read it.
	id := gfid.New().String()
	if err := atomicfile.CreateIn(r, path, []byte(id+"\n"), 0o600); errors.Is(err, fs.ErrExist) {
		return readOrCreateID(root, name)
	} else if err != nil {
		return "", err
	}
	return id, nil
}

// binding remembers which master volume the replica was synced from, so a
// different master (whose gfids would not match) cannot silently write into
// it, and keeps the first master out of a root that holds data georep did
// not create unless the slave runs with adopt.
type binding struct {
	root      string
	acceptNew bool
	// adopt lets the first master bind a root holding foreign entries.
	adopt bool
	// own are the names in the root that belong to the replica's
	// file system rather than to anyone's data (a GlusterFS volume's
	// .trashcan), besides .georep.
	own map[string]bool
	log *slog.Logger
	now func() time.Time
	mu  sync.Mutex
}

// check lets masterVolume use the replica: it refuses a volume other than the
// one the replica is bound to (unless acceptNew), and a first master when
// the root holds foreign entries (unless adopt: the adoption is then
// recorded in .georep/adopted), then calls open, and only when open succeeds
// binds the replica to masterVolume. A refused handshake (open failing
// because another volume holds the lease) never rebinds. A root already
// bound to masterVolume is never checked for foreign entries: everything in
// it is this master's replica.
func (b *binding) check(masterVolume, masterNode string, open func() error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, err := os.OpenRoot(b.root)
	if err != nil {
		return fmt.Errorf("open replica root: %w", err)
	}
	defer r.Close()
	const path = ".georep/master-volume-id"
	data, err := r.ReadFile(path)
	var adoption *adoptionRecord
	switch {
	case errors.Is(err, fs.ErrNotExist):
		count, names, err := foreignEntries(r, b.own)
		if err != nil {
			return err
		}
		if count > 0 && !b.adopt {
			return &errNotEmpty{root: b.root, count: count, names: names, master: masterVolume}
		}
		if count > 0 {
			adoption = &adoptionRecord{MasterVolume: masterVolume, MasterNode: masterNode, Entries: count, Names: names}
		}
	case err != nil:
		return fmt.Errorf("read %s: %w", path, err)
	default:
		bound := strings.TrimSpace(string(data))
		if bound == masterVolume {
			return open()
		}
		if !b.acceptNew {
			return fmt.Errorf("replica %s was synced from master volume %s, not %s: refusing a different master (start the slave with --accept-new-master to hand the replica over)", b.root, bound, masterVolume)
		}
		// What the root holds is the old master's replica: georep's own
		// data, handed over by the operator; no adopt needed.
		b.logger().Warn("replica handed over to another master volume (accept-new-master): its first pass removes what its source lacks",
			"root", b.root, "old_master_volume", bound, "master_volume", masterVolume, "master_node", masterNode)
	}
	if err := open(); err != nil {
		return err
	}
	if adoption != nil {
		adoption.Time = b.clock()().UTC()
		if err := writeAdoption(r, *adoption); err != nil {
			return err
		}
		b.logger().Warn("non-empty replica root adopted (adopt): this master's first pass removes what its source lacks",
			"root", b.root, "master_volume", masterVolume, "master_node", masterNode,
			"foreign_entries", adoption.Entries, "first", adoption.Names, "record", adoptedFile)
	}
	if bound := strings.TrimSpace(string(data)); bound != "" {
		return atomicfile.WriteIn(r, path, []byte(masterVolume+"\n"), 0o600) // handed over (accept-new-master)
	}
	// The first binding: another slave node of the volume may bind it at
	// the same moment; the first one wins, and a different master volume
	// is refused on its next handshake.
	if err := atomicfile.CreateIn(r, path, []byte(masterVolume+"\n"), 0o600); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

func (b *binding) logger() *slog.Logger {
	if b.log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return b.log
}

func (b *binding) clock() func() time.Time {
	if b.now == nil {
		return time.Now
	}
	return b.now
}
