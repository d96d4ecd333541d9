// Command georep-slave serves a replica to a georep master over gRPC.
//
//	georep-slave --listen 127.0.0.1:7100 --root /srv/replica --insecure
//	georep-slave --listen 0.0.0.0:7100 --gluster-volume SLAVEVOL --volfile-server HOST
//	georep-slave certs --dir /etc/georep/tls --slave-name replica.example.net --master-name master-a
//
// It owns the command line of the slave (config through cmd/internal/cli,
// logging, signals, the certs subcommand) and calls slave.Run: gsyncd.py
// run as the slave (gsyncd --slave, started over ssh by the master).
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/georep/georep/cmd/internal/cli"
	"github.com/georep/georep/rpc"
	"github.com/georep/georep/slave"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "certs" {
		if err := certsCommand(os.Args[2:], os.Stdout); err != nil {
			cli.Fatal("georep-slave certs", err, 2)
		}
		return
	}
	v, err := cli.Load(flags(), os.Args[1:])
	if errors.Is(err, cli.ErrVersion) {
		fmt.Println(cli.Version("georep-slave"))
		return
	}
	if err != nil {
		cli.Fatal("georep-slave", err, 2)
	}
	log, err := cli.Logger(v, os.Stderr)
	if err != nil {
		cli.Fatal("georep-slave", err, 2)
	}
	cfg := config(v)
	if err := cfg.Validate(); err != nil {
		cli.Fatal("georep-slave", err, 2)
	}
	defer cli.StartCPUProfile("georep-slave")()
	defer cli.StartMemProfile("georep-slave")()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sd := cli.NewNotifier(log)
	cfg.Alive = sd.Alive
	go func() {
		<-ctx.Done()
		sd.Stopping()
	}()
	ready := func(addr net.Addr) { sd.Ready("serving on " + addr.String()) }
	if err := slave.Run(ctx, cfg, log, ready); err != nil {
		cli.Fatal("georep-slave", err, 1)
	}
}

// flags declares every option; each is also a config key.
func flags() *pflag.FlagSet {
	d := slave.DefaultConfig()
	fs := pflag.NewFlagSet("georep-slave", pflag.ContinueOnError)
	fs.String("listen", d.Listen, "address to serve on (host:port)")
	fs.String("root", "", "the replica directory (created data lives under it; georep's own state in <root>/.georep)")
	fs.String("gluster-volume", "", "replicate into this GlusterFS volume instead of a directory (the slave mounts it; needs root)")
	fs.String("volfile-server", "", "a host of the GlusterFS pool serving --gluster-volume")
	fs.String("state-dir", "", "where the slave makes the private mount point of --gluster-volume (default: a fresh directory under /run/georep)")
	fs.Bool("insecure", false, "serve plaintext gRPC without TLS (only on trusted networks)")
	fs.String("tls-cert", "", "PEM certificate of this slave")
	fs.String("tls-key", "", "PEM private key of this slave")
	fs.String("tls-ca", "", "PEM CA that signs the masters' client certificates")
	fs.StringSlice("allowed-masters", nil, "identities (certificate CN, DNS or URI SAN) of the masters served, comma-separated; empty: any certificate signed by tls-ca")
	fs.Int("max-rsync-streams", d.MaxRsyncStreams, "rsync tunnel streams (rsync processes) running at once; more are refused")
	fs.String("rsync-command", "rsync", "rsync binary")
	fs.Int("max-batch", d.MaxBatch, "maximum entries in one EntryOps/MetaOps/Stat call")
	cli.Duration(fs, "lease", d.Lease, "how long a master holds the session without a keep-alive")
	fs.Bool("accept-new-master", false, "let a different master volume take over this replica")
	fs.Bool("adopt", false, "let the first master take over a root (or volume) that already holds other data: what that master's source lacks is then removed")
	fs.String("metrics-listen", "", "host:port serving Prometheus metrics on /metrics (default: none)")
	return fs
}

// config reads the slave's configuration out of v.
func config(v *viper.Viper) slave.Config {
	return slave.Config{
		Listen:          v.GetString("listen"),
		Root:            v.GetString("root"),
		GlusterVolume:   v.GetString("gluster-volume"),
		VolfileServer:   v.GetString("volfile-server"),
		StateDir:        v.GetString("state-dir"),
		Insecure:        v.GetBool("insecure"),
		TLS:             rpc.TLSFiles{Cert: v.GetString("tls-cert"), Key: v.GetString("tls-key"), CA: v.GetString("tls-ca")},
		RsyncPath:       v.GetString("rsync-command"),
		MaxBatch:        v.GetInt("max-batch"),
		Lease:           v.GetDuration("lease"),
		AcceptNewMaster: v.GetBool("accept-new-master"),
		Adopt:           v.GetBool("adopt"),
		MetricsListen:   v.GetString("metrics-listen"),
		AllowedMasters:  cli.StringList(v, "allowed-masters"),
		MaxRsyncStreams: v.GetInt("max-rsync-streams"),
	}
}
