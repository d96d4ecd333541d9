package rpc

import (
	"context"
	"fmt"
	"net"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/georep/georep/rpc/backoff"
)

// ClientConfig configures a connection to a georep server.
type ClientConfig struct {
	Address  string
	TLS      TLSFiles
	Insecure bool
	// Dial, when not nil, makes the connection instead of a TCP dial of
	// Address (which is then passed to it as it is, not resolved first);
	// TLS still checks the server's certificate against Address's host.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Metrics, when not nil, measures every call as grpc_client_*
	// (NewClientMetrics).
	Metrics *grpcprom.ClientMetrics
	// Certs, when not nil, shows the certificates loaded (CertMetrics).
	Certs *CertMetrics
}

// NewClient returns a lazily connecting client with keepalive and message
// limits matching NewServer, and reconnect backoff capped at 30 s.
func NewClient(cfg ClientConfig) (*grpc.ClientConn, error) {
	creds, err := clientCredentials(cfg.TLS, cfg.Insecure, cfg.Certs)
	if err != nil {
		return nil, err
	}
	bo := grpcbackoff.DefaultConfig
	bo.MaxDelay = 30 * time.Second
	target, opts := cfg.Address, []grpc.DialOption{}
	if cfg.Dial != nil {
		target = "passthrough:///" + cfg.Address
		opts = append(opts, grpc.WithContextDialer(cfg.Dial))
	}
	if cfg.Metrics != nil {
		opts = append(opts, grpc.WithChainUnaryInterceptor(cfg.Metrics.UnaryClientInterceptor()),
			grpc.WithChainStreamInterceptor(cfg.Metrics.StreamClientInterceptor()))
	}
	conn, err := grpc.NewClient(target, append(opts,
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageSize), grpc.MaxCallSendMsgSize(MaxMessageSize)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 20 * time.Second, PermitWithoutStream: true}),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: 5 * time.Second}),
		grpc.WithInitialWindowSize(streamWindow),
		grpc.WithInitialConnWindowSize(connWindow),
		grpc.WithReadBufferSize(ioBuffer),
		grpc.WithWriteBufferSize(ioBuffer),
	)...)
	if err != nil {
		return nil, fmt.Errorf("client for %s: %w", cfg.Address, err)
	}
	return conn, nil
}

// WaitHealthy polls the standard health service until it reports SERVING
// for service ("" = the whole server) or ctx ends. It returns the last error
// seen so that the caller can say why the server is not reachable. A refusal
// of this client's identity (PermissionDenied, Unauthenticated) will not
// change by waiting: it is returned at once, wrapping the status error.
func WaitHealthy(ctx context.Context, conn *grpc.ClientConn, service string) error {
	hc := healthpb.NewHealthClient(conn)
	bo := backoff.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{Service: service}, grpc.WaitForReady(false))
		cancel()
		switch {
		case err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING:
			return nil
		case err == nil:
			last = fmt.Errorf("%s reports %s", conn.Target(), resp.GetStatus())
		case status.Code(err) == codes.PermissionDenied || status.Code(err) == codes.Unauthenticated:
			return fmt.Errorf("%s refused this client: %w", conn.Target(), err)
		default:
			last = fmt.Errorf("%s: %s", conn.Target(), status.Convert(err).Message())
		}
		if !bo.Wait(ctx, nil) {
			return fmt.Errorf("waiting for %s to be healthy: %w (last: %v)", conn.Target(), ctx.Err(), last)
		}
	}
}
