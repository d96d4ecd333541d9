package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
	"google.golang.org/grpc/metadata"

	slavev1 "github.com/georep/georep/gen/georep/slave/v1"
	"github.com/georep/georep/master/slaveclient/tunnel"
	"github.com/georep/georep/rpc"
)

// rsyncTunnel is what rsync runs as its -e transport: it connects rsync's
// stdin/stdout to an rsync server that the slave starts. It returns rsync's
// exit code from the far side.
func rsyncTunnel(args []string) int {
	fs := pflag.NewFlagSet("georep-master rsync-tunnel", pflag.ContinueOnError)
	fs.SetInterspersed(false)
	addr := fs.String("slave", "", "address of georep-slave")
	sessionFile := fs.String("session-file", "", "file holding the session id")
	insecure := fs.Bool("insecure", false, "plaintext gRPC")
	via := fs.String("via", "", "the master's relay socket to reach the slave through (its bandwidth limit); empty: dial the slave")
	var files rpc.TLSFiles
	fs.StringVar(&files.Cert, "tls-cert", "", "client certificate")
	fs.StringVar(&files.Key, "tls-key", "", "client key")
	fs.StringVar(&files.CA, "tls-ca", "", "CA of the slave")
	fs.StringVar(&files.ServerName, "tls-server-name", "", "name in the slave's certificate")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	remote, err := tunnel.RemoteArgs(fs.Args())
	if err != nil {
		fmt.Fprintf(os.Stderr, "georep rsync-tunnel: %v\n", err)
		return 2
	}
	session, err := os.ReadFile(*sessionFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "georep rsync-tunnel: session: %v\n", err)
		return 2
	}
	cc := rpc.ClientConfig{Address: *addr, TLS: files, Insecure: *insecure}
	if *via != "" {
		cc.Dial = func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", *via)
		}
	}
	conn, err := rpc.NewClient(cc)
	if err != nil {
		fmt.Fprintf(os.Stderr, "georep rsync-tunnel: %v\n", err)
		return 2
	}
	defer conn.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx = metadata.AppendToOutgoingContext(ctx, "georep-session", strings.TrimSpace(string(session)))
	code, err := tunnel.Run(ctx, slavev1.NewSlaveServiceClient(conn), remote, os.Stdin, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "georep rsync-tunnel: %v\n", err)
		if code == 0 {
			code = 12 // rsync's "error in rsync protocol data stream"
		}
	}
	return code
}
