package master

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/georep/georep/rpc"
	"github.com/georep/georep/rpc/bwlimit"
)

// Config is the master daemon's configuration. Field comments give the
// config key; keys follow gsyncd's names where gsyncd has one.
type Config struct {
	Source string // source: the directory to replicate
	// GlusterVolume (gluster-volume) replaces Source on a GlusterFS node:
	// the master volume whose local bricks are replicated, one worker each.
	GlusterVolume string
	VolfileServer string       // volfile-server: the glusterd to ask for the volume (default: this node)
	GlusterCLI    string       // gluster-command: the gluster CLI binary
	WorkDir       string       // work-dir: the master's state (catalog, changelogs, stime, stats)
	Slave         string       // slave: address of georep-slave, host:port; or the slave nodes' list host:port,host:port (workers spread over it and fail over along it)
	Insecure      bool         // insecure: plaintext gRPC (explicit opt-in)
	TLS           rpc.TLSFiles // tls-cert, tls-key, tls-ca, tls-server-name

	SyncJobs       int           // sync-jobs: parallel rsync runs (gsyncd default 3)
	ChangeInterval time.Duration // change-interval: pause between crawls (xsync), between retries of the failure queue (changelog)
	// ChangeDetector is change-detector: "changelog" (the fanotify journal,
	// falling back to xsync where it is unavailable) or "xsync" (a hybrid
	// crawl every change-interval).
	ChangeDetector     string
	RolloverTime       time.Duration // rollover-time: a journal file is closed and indexed after this long
	ChangelogBatchSize int           // changelog-batch-size: journal records per live pass
	IgnoreDeletes      bool          // ignore-deletes: never remove anything on the slave
	// MaxDelete is max-delete: a pass deleting more on the slave applies
	// nothing (the safety guard against a source that lost its data).
	MaxDelete DeleteLimit
	// AcceptNewSource is accept-new-source: the operator checked that a
	// source whose identity changed (or that is empty) is the one to
	// replicate; it lifts that guard once per run.
	AcceptNewSource bool
	// DryRun is dry-run (with Oneshot): print what one pass would do,
	// change nothing on either side.
	DryRun        bool
	SyncXattrs    bool     // sync-xattrs: replicate user.* xattrs
	SyncACLs      bool     // sync-acls: replicate POSIX ACLs (rsync -A)
	RsyncPath     string   // rsync-command: the rsync binary
	RsyncOptions  []string // rsync-options: extra options for every rsync run
	EntryBatch    int      // entry-batch: entries per EntryOps/MetaOps call
	SmallFileSize int64    // small-file-size: regular files up to this size go whole through WriteFiles, not rsync (0: never)

	Oneshot        bool          // oneshot: one pass; exit 0 only when converged
	OneshotTimeout time.Duration // oneshot-timeout: give up (non-zero exit) after this long
	Lease          time.Duration // lease: session lease asked of the slave
	// BandwidthLimit is bandwidth-limit: all the master sends to the slave
	// (its gRPC connection and the rsync tunnels together) stays under it;
	// 0: no limit.
	BandwidthLimit bwlimit.Rate

	// The audit (master/audit.go), daemon only. AuditInterval is
	// audit-interval: a round every so often (0: none but those asked for
	// with georepctl audit); AuditContentInterval is audit-content-interval:
	// a round that also compares file contents (0: none but asked for);
	// AuditRate is audit-rate: what the audit reads stays under it, an
	// entry counting 4 KiB and a digested file its size (0: no bound).
	AuditInterval        time.Duration
	AuditContentInterval time.Duration
	AuditRate            bwlimit.Rate

	// The operator interface (master/status.go).
	StatusListen string // status-listen: host:port of the status service too (always: a UNIX socket <work-dir>/status.sock)
	// StatusTLS is status-tls-cert, status-tls-key (the status service's
	// server certificate) and status-tls-ca (the CA of georepctl's client
	// certificates; default tls-ca): status-listen then serves mutual TLS.
	StatusTLS rpc.TLSFiles
	// StatusAllowedClients is status-allowed-clients: the identities of the
	// client certificates served (as the slave's allowed-masters); empty:
	// any certificate the CA signs.
	StatusAllowedClients []string
	// StatusInsecure is status-insecure: serve status-listen in plaintext
	// on an address that is not loopback (explicit opt-in).
	StatusInsecure bool

	MetricsListen string // metrics-listen: host:port serving Prometheus /metrics ("" : none)
	// GlusterEvents is gluster-events: where gsyncd's events go to
	// GlusterFS's events framework: "auto" (glustereventsd on this node,
	// when installed), "off" or host:port. EventsWebhook is events-webhook:
	// a URL every event is POSTed to as JSON ("" : none). See master/events.
	GlusterEvents string
	EventsWebhook string
	LogLevel      *slog.LevelVar // the logger's level, for log-level set live (nil: not settable)
	// Progress, with Oneshot, is where a progress bar is drawn (a
	// terminal); nil draws none (the log says "progress" every 10 s).
	Progress io.Writer
	// Ready, when not nil, is called once the master serves: its work dir
	// locked, the status service (and /metrics) listening (systemd's
	// READY=1).
	Ready func()
	// Alive, when not nil, is called each time the monitor's loop has done
	// a round (every 500 ms: the workers' snapshots taken, the checkpoint
	// decided): systemd's watchdog ping comes from it.
	Alive func()

	// Sources says where each key's value came from (cli.SourceFlag, ...:
	// "flag", "env", "file", "default"); config get shows it. A key it
	// lacks is "default".
	Sources map[string]string

	// Self is the path of the georep-master binary, run by rsync as its -e
	// transport ("georep-master rsync-tunnel ..."). Empty: os.Executable().
	Self string
}

// The change detectors.
const (
	DetectorChangelog = "changelog"
	DetectorXsync     = "xsync"
)

// MaxSmallFileSize bounds small-file-size: a WriteFiles call carries about
// 4 MiB of data, and at least one file.
const MaxSmallFileSize = 4 << 20

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		SyncJobs:           3,
		ChangeInterval:     5 * time.Second,
		ChangeDetector:     DetectorChangelog,
		RolloverTime:       15 * time.Second,
		ChangelogBatchSize: 20000,
		RsyncPath:          "rsync",
		GlusterCLI:         "gluster",
		EntryBatch:         5000,
		MaxDelete:          DefaultDeleteLimit,
		SmallFileSize:      256 << 10,
		SyncXattrs:         true, // gsyncd's defaults
		SyncACLs:           true,
		OneshotTimeout:     time.Hour,
		Lease:              60 * time.Second,

		AuditInterval:        24 * time.Hour,
		AuditContentInterval: 7 * 24 * time.Hour,
		AuditRate:            50 << 20,

		GlusterEvents: "auto",
	}
}

// Validate refuses bad values with the key, the value and what is allowed.
// slaveEndpoints splits the slave's comma-separated list of addresses.
func slaveEndpoints(slave string) []string {
	var eps []string
	for e := range strings.SplitSeq(slave, ",") {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	return eps
}

func (c Config) Validate() error {
	var errs []error
	switch {
	case c.Source != "" && c.GlusterVolume != "":
		errs = append(errs, fmt.Errorf("source %q and gluster-volume %q: give one of them, not both", c.Source, c.GlusterVolume))
	case c.GlusterVolume != "":
	case c.Source == "":
		errs = append(errs, errors.New("source: the directory to replicate is required (or gluster-volume: a GlusterFS volume)"))
	default:
		errs = append(errs, sourceErr(c.Source)...)
	}
	if c.WorkDir == "" {
		errs = append(errs, errors.New("work-dir: a directory for the master's state is required"))
	}
	if c.Slave == "" {
		errs = append(errs, errors.New("slave: the slave's address (host:port, or a list host:port,host:port of the slave nodes) is required"))
	}
	for _, e := range slaveEndpoints(c.Slave) {
		if _, _, err := net.SplitHostPort(e); err != nil && !strings.Contains(e, ":/") && !strings.HasPrefix(e, "unix:") {
			errs = append(errs, fmt.Errorf("slave: %q is not host:port: %v", e, err))
		}
	}
	if c.SyncJobs < 1 || c.SyncJobs > 64 {
		errs = append(errs, fmt.Errorf("sync-jobs: %d is outside 1..64", c.SyncJobs))
	}
	if c.ChangeInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("change-interval: %s is shorter than 100ms", c.ChangeInterval))
	}
	if c.ChangeDetector != DetectorChangelog && c.ChangeDetector != DetectorXsync {
		errs = append(errs, fmt.Errorf("change-detector: %q is not one of changelog, xsync", c.ChangeDetector))
	}
	if c.RolloverTime < 100*time.Millisecond || c.RolloverTime > time.Hour {
		errs = append(errs, fmt.Errorf("rollover-time: %s is outside 100ms..1h", c.RolloverTime))
	}
	if c.ChangelogBatchSize < 1 || c.ChangelogBatchSize > 1000000 {
		errs = append(errs, fmt.Errorf("changelog-batch-size: %d is outside 1..1000000", c.ChangelogBatchSize))
	}
	if c.EntryBatch < 1 || c.EntryBatch > 100000 {
		errs = append(errs, fmt.Errorf("entry-batch: %d is outside 1..100000", c.EntryBatch))
	}
	if c.SmallFileSize < 0 || c.SmallFileSize > MaxSmallFileSize {
		errs = append(errs, fmt.Errorf("small-file-size: %d is outside 0..%d (4 MiB)", c.SmallFileSize, MaxSmallFileSize))
	}
	if c.DryRun && !c.Oneshot {
		errs = append(errs, errors.New("dry-run: goes with --oneshot (one pass, printed, nothing changed)"))
	}
	if c.OneshotTimeout <= 0 {
		errs = append(errs, fmt.Errorf("oneshot-timeout: %s must be positive", c.OneshotTimeout))
	}
	if c.AuditInterval < 0 || c.AuditContentInterval < 0 {
		errs = append(errs, fmt.Errorf("audit-interval, audit-content-interval: %s, %s: a duration, or 0 for none", c.AuditInterval, c.AuditContentInterval))
	}
	if c.AuditRate != 0 && c.AuditRate < bwlimit.Min {
		errs = append(errs, fmt.Errorf("audit-rate: %s is below the least of %s (or none)", c.AuditRate, bwlimit.Min))
	}
	if c.BandwidthLimit != 0 && c.BandwidthLimit < bwlimit.Min {
		errs = append(errs, fmt.Errorf("bandwidth-limit: %s is below the least of %s (or none)", c.BandwidthLimit, bwlimit.Min))
	}
	errs = append(errs, c.statusTLSErrs()...)
	if c.Lease < 5*time.Second {
		errs = append(errs, fmt.Errorf("lease: %s is shorter than 5s", c.Lease))
	}
	return errors.Join(errs...)
}

// statusTLSErrs checks how status-listen is served: mutual TLS with a
// certificate and key (and a CA: status-tls-ca, else tls-ca); plaintext
// only on a loopback address or with status-insecure.
func (c Config) statusTLSErrs() []error {
	t := c.StatusTLS
	tlsOn := t.Cert != "" || t.Key != ""
	switch {
	case c.StatusListen == "" && (tlsOn || len(c.StatusAllowedClients) > 0):
		return []error{errors.New("status-tls-cert, status-tls-key, status-allowed-clients: serve status-listen, which is not set")}
	case c.StatusListen == "":
		return nil
	case tlsOn && (t.Cert == "" || t.Key == ""):
		return []error{errors.New("status-tls-cert and status-tls-key: give both (the status service's server certificate and key)")}
	case tlsOn && t.CA == "":
		return []error{errors.New("status-tls-ca: the CA of georepctl's client certificates is required with status-tls-cert (or tls-ca)")}
	case tlsOn && c.StatusInsecure:
		return []error{errors.New("status-insecure and status-tls-cert: give one of them")}
	case !tlsOn && len(c.StatusAllowedClients) > 0:
		return []error{errors.New("status-allowed-clients: names certificate identities, which need status-tls-cert and status-tls-key")}
	case !tlsOn && !c.StatusInsecure && !rpc.IsLoopback(c.StatusListen):
		return []error{fmt.Errorf("status-listen %s is not a loopback address: serve it with mutual TLS (status-tls-cert, status-tls-key, status-tls-ca) or pass status-insecure to serve it in plaintext", c.StatusListen)}
	}
	return nil
}

func sourceErr(source string) []error {
	fi, err := os.Stat(source)
	switch {
	case err != nil:
		return []error{fmt.Errorf("source: %w", err)}
	case !fi.IsDir():
		return []error{fmt.Errorf("source: %s is not a directory", source)}
	}
	return nil
}
