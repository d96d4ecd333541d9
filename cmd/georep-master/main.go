// Command georep-master replicates a source directory, or the bricks of a
// GlusterFS volume on this node, to a georep slave.
//
//	georep-master --slave 127.0.0.1:7100 --source /data --work-dir /var/lib/georep/data --insecure [--oneshot]
//	georep-master --slave SLAVEHOST:7100 --gluster-volume MASTERVOL --volfile-server HOST --work-dir /var/lib/georep/MASTERVOL [--oneshot]
//
// rsync runs it back as its transport: "georep-master rsync-tunnel ...".
//
// It owns the command line of the master (config through cmd/internal/cli,
// logging, signals) and calls master.Run: gsyncd.py's part on the master
// side (gsyncd's entry point, which starts the monitor and its workers).
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"golang.org/x/sys/unix"

	"github.com/georep/georep/cmd/internal/cli"
	"github.com/georep/georep/master"
	"github.com/georep/georep/rpc"
	"github.com/georep/georep/rpc/bwlimit"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "rsync-tunnel" {
		os.Exit(rsyncTunnel(os.Args[2:]))
	}
	fs := flags()
	v, err := cli.Load(fs, os.Args[1:])
	if errors.Is(err, cli.ErrVersion) {
		fmt.Println(cli.Version("georep-master"))
		return
	}
	if err != nil {
		cli.Fatal("georep-master", err, 2)
	}
	log, level, err := cli.LoggerLevel(v, os.Stderr)
	if err != nil {
		cli.Fatal("georep-master", err, 2)
	}
	cfg, err := config(v)
	if err != nil {
		cli.Fatal("georep-master", err, 2)
	}
	cfg.LogLevel = level
	cfg.Sources = cli.Sources(fs, v)
	if cfg.Oneshot && isTerminal(os.Stderr) {
		cfg.Progress = os.Stderr
	}
	if err := cfg.Validate(); err != nil {
		cli.Fatal("georep-master", err, 2)
	}
	defer cli.StartCPUProfile("georep-master")()
	defer cli.StartMemProfile("georep-master")()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sd := cli.NewNotifier(log)
	cfg.Ready = func() { sd.Ready("serving status on " + cfg.WorkDir + "/status.sock") }
	cfg.Alive = sd.Alive
	go func() {
		<-ctx.Done()
		sd.Stopping()
	}()
	if err := master.Run(ctx, cfg, log); err != nil {
		code := 1
		switch {
		case errors.Is(err, master.ErrGuard):
			code = 4
		case errors.Is(err, master.ErrNotConverged):
			code = 3
		case errors.Is(err, master.ErrConfig):
			code = 2
		}
		cli.Fatal("georep-master", err, code)
	}
}

// flags declares every option; each is also a config key.
func flags() *pflag.FlagSet {
	d := master.DefaultConfig()
	fs := pflag.NewFlagSet("georep-master", pflag.ContinueOnError)
	fs.String("source", "", "the directory to replicate")
	fs.String("gluster-volume", "", "instead of --source: the GlusterFS volume whose bricks on this node are replicated (one worker per brick)")
	fs.String("volfile-server", "", "with --gluster-volume: the glusterd serving the volume (default: the bricks' host)")
	fs.String("gluster-command", d.GlusterCLI, "with --gluster-volume: the gluster CLI binary")
	fs.String("work-dir", "", "the master's state directory (catalog, changelogs, stime, stats)")
	fs.String("slave", "", "address of georep-slave (host:port)")
	fs.Bool("insecure", false, "plaintext gRPC without TLS (only on trusted networks)")
	fs.String("tls-cert", "", "PEM client certificate of this master")
	fs.String("tls-key", "", "PEM private key of this master")
	fs.String("tls-ca", "", "PEM CA that signs the slave's certificate")
	fs.String("tls-server-name", "", "name expected in the slave's certificate (default: the host of --slave)")
	fs.Int("sync-jobs", d.SyncJobs, "parallel rsync runs")
	cli.Duration(fs, "change-interval", d.ChangeInterval, "daemon: pause between hybrid crawls (xsync), between retries of the failure queue (changelog)")
	fs.String("change-detector", d.ChangeDetector, "daemon: changelog (fanotify journal, needs root; falls back to xsync) or xsync (a hybrid crawl every change-interval)")
	cli.Duration(fs, "rollover-time", d.RolloverTime, "a change journal file is closed and indexed after this long (records are consumed before)")
	fs.Int("changelog-batch-size", d.ChangelogBatchSize, "journal records per live pass")
	fs.Bool("ignore-deletes", false, "never remove anything on the slave")
	fs.String("max-delete", d.MaxDelete.String(), "safety guard: a pass that would delete more than this on the slave applies nothing: a percentage of the replica's entries (refusing 100 deletes or more), a count, or off")
	fs.Bool("accept-new-source", false, "the source's identity changed, or it is empty, and it is the tree to replicate: lift that guard for this run (recorded in <work-dir>/guard.log)")
	fs.Bool("dry-run", false, "with --oneshot: print what one pass would do (creates, renames, deletes, data, meta) and change nothing on either side")
	fs.Bool("sync-xattrs", d.SyncXattrs, "replicate user.* extended attributes (gsyncd's default: true)")
	fs.Bool("sync-acls", d.SyncACLs, "replicate POSIX ACLs (gsyncd's default: true)")
	fs.String("rsync-command", d.RsyncPath, "rsync binary")
	fs.String("rsync-options", "", "extra options for every rsync run (space separated)")
	fs.Int("entry-batch", d.EntryBatch, "entries per EntryOps/MetaOps call")
	fs.Int64("small-file-size", d.SmallFileSize, "regular files up to this many bytes are shipped whole over gRPC, not through rsync (0: never)")
	fs.Bool("oneshot", false, "one pass; exit 0 only when the slave has converged to the source")
	cli.Duration(fs, "oneshot-timeout", d.OneshotTimeout, "with --oneshot: give up (exit 3) after this long")
	cli.Duration(fs, "lease", d.Lease, "session lease asked of the slave")
	fs.String("bandwidth-limit", d.BandwidthLimit.String(), "all the master sends to the slave (gRPC and the rsync tunnels together) stays under this rate: 20MiB/s, 500KiB/s, 100Mbit/s, or none")
	cli.Duration(fs, "audit-interval", d.AuditInterval, "daemon: compare the whole replica with what was synced this often, and repair what differs (0: only when asked, georepctl audit)")
	cli.Duration(fs, "audit-content-interval", d.AuditContentInterval, "daemon: this often the audit also compares file contents, by digests computed on each side (0: only when asked, georepctl audit --content)")
	fs.String("audit-rate", d.AuditRate.String(), "the audit stays under this rate of reading (an entry counts 4 KiB, a digested file its size): 50MiB/s, or none")
	fs.String("status-listen", "", "host:port of the status service georepctl talks to (default: a UNIX socket <work-dir>/status.sock)")
	fs.String("status-tls-cert", "", "PEM server certificate of the status service on status-listen (mutual TLS with georepctl)")
	fs.String("status-tls-key", "", "PEM key of status-tls-cert")
	fs.String("status-tls-ca", "", "PEM CA that signs georepctl's client certificates (default: tls-ca)")
	fs.StringSlice("status-allowed-clients", nil, "identities (certificate CN, DNS or URI SAN) of the georepctl client certificates served on status-listen, comma-separated; empty: any certificate signed by status-tls-ca")
	fs.Bool("status-insecure", false, "serve status-listen in plaintext on an address that is not loopback (anyone reaching it may pause the session or skip failures)")
	fs.String("gluster-events", "auto", "send gsyncd's events (GEOREP_ACTIVE, _PASSIVE, _FAULTY, _CHECKPOINT_COMPLETED) to GlusterFS's events framework: auto (glustereventsd on this node, when installed), off, or host:port")
	fs.String("events-webhook", "", "URL each event is POSTed to as glustereventsd's JSON (guard refusals too, as GEOREP_GUARD_REFUSED); default: none")
	fs.String("metrics-listen", "", "host:port serving Prometheus metrics on /metrics (default: none)")
	return fs
}

// config reads the master's configuration out of v.
func config(v *viper.Viper) (master.Config, error) {
	maxDelete, err := master.ParseDeleteLimit(v.GetString("max-delete"))
	if err != nil {
		return master.Config{}, err
	}
	bw, err := bwlimit.Parse(v.GetString("bandwidth-limit"))
	if err != nil {
		return master.Config{}, err
	}
	auditRate, err := bwlimit.Parse(v.GetString("audit-rate"))
	if err != nil {
		return master.Config{}, fmt.Errorf("audit-rate: %w", err)
	}
	return master.Config{
		AuditInterval:        v.GetDuration("audit-interval"),
		AuditContentInterval: v.GetDuration("audit-content-interval"),
		AuditRate:            auditRate,
		MaxDelete:            maxDelete,
		AcceptNewSource:      v.GetBool("accept-new-source"),
		DryRun:               v.GetBool("dry-run"),
		Source:               v.GetString("source"),
		GlusterVolume:        v.GetString("gluster-volume"),
		VolfileServer:        v.GetString("volfile-server"),
		GlusterCLI:           v.GetString("gluster-command"),
		WorkDir:              v.GetString("work-dir"),
		Slave:                v.GetString("slave"),
		Insecure:             v.GetBool("insecure"),
		TLS:                  rpc.TLSFiles{Cert: v.GetString("tls-cert"), Key: v.GetString("tls-key"), CA: v.GetString("tls-ca"), ServerName: v.GetString("tls-server-name")},
		SyncJobs:             v.GetInt("sync-jobs"),
		ChangeInterval:       v.GetDuration("change-interval"),
		ChangeDetector:       v.GetString("change-detector"),
		RolloverTime:         v.GetDuration("rollover-time"),
		ChangelogBatchSize:   v.GetInt("changelog-batch-size"),
		IgnoreDeletes:        v.GetBool("ignore-deletes"),
		SyncXattrs:           v.GetBool("sync-xattrs"),
		SyncACLs:             v.GetBool("sync-acls"),
		RsyncPath:            v.GetString("rsync-command"),
		RsyncOptions:         strings.Fields(v.GetString("rsync-options")),
		EntryBatch:           v.GetInt("entry-batch"),
		SmallFileSize:        v.GetInt64("small-file-size"),
		Oneshot:              v.GetBool("oneshot"),
		OneshotTimeout:       v.GetDuration("oneshot-timeout"),
		Lease:                v.GetDuration("lease"),
		BandwidthLimit:       bw,
		StatusListen:         v.GetString("status-listen"),
		StatusTLS:            rpc.TLSFiles{Cert: v.GetString("status-tls-cert"), Key: v.GetString("status-tls-key"), CA: cmp.Or(v.GetString("status-tls-ca"), v.GetString("tls-ca"))},
		StatusAllowedClients: cli.StringList(v, "status-allowed-clients"),
		StatusInsecure:       v.GetBool("status-insecure"),
		MetricsListen:        v.GetString("metrics-listen"),
		GlusterEvents:        v.GetString("gluster-events"),
		EventsWebhook:        v.GetString("events-webhook"),
	}, nil
}

// isTerminal says whether f is a terminal (a progress bar is drawn there).
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
