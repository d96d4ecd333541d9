package rpc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
)

// MaxMessageSize bounds every gRPC message in both directions. An EntryOps
// batch of the largest allowed size fits well within it.
const MaxMessageSize = 64 << 20

// Flow-control windows and socket buffers sized for bulk data (the rsync
// tunnel): HTTP/2's default 64 KiB stream window caps one stream at a
// window per round trip, which over a WAN is far below the link's rate.
const (
	streamWindow = 8 << 20
	connWindow   = 16 << 20
	ioBuffer     = 256 << 10
)

// ServerConfig configures a georep gRPC server.
type ServerConfig struct {
	// TLS holds the certificate files; ignored when Insecure is set.
	TLS TLSFiles
	// Insecure serves plaintext. It must be asked for explicitly.
	Insecure bool
	// AllowedClients, when not empty, admits only clients whose verified
	// certificate carries one of these identities (Common Name, DNS SAN or
	// URI SAN; see PeerIdentities) to every RPC, health and reflection
	// included; others get PermissionDenied naming their identities. It
	// needs TLS.
	AllowedClients []string
	// AllowedClientsKey names the configuration key of AllowedClients in
	// the refusal (default "the slave's allowed-masters").
	AllowedClientsKey string
	// MaxConcurrentStreams bounds the streams of one connection.
	MaxConcurrentStreams uint32
	// Metrics, when not nil, measures every call (outermost: refusals
	// included) as grpc_server_* (NewServerMetrics).
	Metrics *grpcprom.ServerMetrics
	// Certs, when not nil, shows the certificates loaded (CertMetrics).
	Certs *CertMetrics
	// Unary and Stream interceptors run after logging and before recovery.
	Unary  []grpc.UnaryServerInterceptor
	Stream []grpc.StreamServerInterceptor
}

// Server is a gRPC server with health and reflection registered.
type Server struct {
	*grpc.Server
	Health *health.Server
	log    *slog.Logger
}

// NewServer builds the server both daemons use: credentials, keepalive
// enforcement, message-size limits, slog logging, the caller's interceptors,
// and panic recovery innermost.
func NewServer(cfg ServerConfig, log *slog.Logger) (*Server, error) {
	if len(cfg.AllowedClients) > 0 && cfg.Insecure {
		return nil, errors.New("an allowlist of client certificate identities needs TLS: it cannot be used with --insecure")
	}
	creds, err := serverCredentials(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.MaxConcurrentStreams == 0 {
		cfg.MaxConcurrentStreams = 64
	}
	logOpts := []logging.Option{logging.WithLogOnEvents(logging.FinishCall), logging.WithLevels(callLevel)}
	recoverOpt := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in handler", "panic", p)
		return status.Errorf(codes.Internal, "internal error: %v", p)
	})
	var unary []grpc.UnaryServerInterceptor
	var stream []grpc.StreamServerInterceptor
	if cfg.Metrics != nil {
		unary = append(unary, cfg.Metrics.UnaryServerInterceptor())
		stream = append(stream, cfg.Metrics.StreamServerInterceptor())
	}
	unary = append(unary, logging.UnaryServerInterceptor(interceptorLogger(log), logOpts...))
	stream = append(stream, logging.StreamServerInterceptor(interceptorLogger(log), logOpts...))
	if len(cfg.AllowedClients) > 0 {
		allow := allowlist{ids: slices.Clone(cfg.AllowedClients), key: cmp.Or(cfg.AllowedClientsKey, "the slave's allowed-masters")}
		unary = append(unary, allow.unary)
		stream = append(stream, allow.stream)
	}
	unary = append(append(unary, cfg.Unary...), recovery.UnaryServerInterceptor(recoverOpt))
	stream = append(append(stream, cfg.Stream...), recovery.StreamServerInterceptor(recoverOpt))

	s := grpc.NewServer(
		grpc.Creds(creds),
		grpc.MaxRecvMsgSize(MaxMessageSize),
		grpc.MaxSendMsgSize(MaxMessageSize),
		grpc.MaxConcurrentStreams(cfg.MaxConcurrentStreams),
		grpc.InitialWindowSize(streamWindow),
		grpc.InitialConnWindowSize(connWindow),
		grpc.ReadBufferSize(ioBuffer),
		grpc.WriteBufferSize(ioBuffer),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 20 * time.Second}),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
	)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s, hs)
	reflection.Register(s)
	return &Server{Server: s, Health: hs, log: log}, nil
}

// Serve serves on lis until ctx is done, then shuts down: health goes to
// NOT_SERVING, in-flight calls get grace to finish, then the rest is cut.
func (s *Server) Serve(ctx context.Context, lis net.Listener, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- s.Server.Serve(lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", lis.Addr(), err)
	case <-ctx.Done():
	}
	s.Health.Shutdown()
	done := make(chan struct{})
	go func() { s.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		s.log.Warn("graceful stop timed out, closing connections", "grace", grace)
		s.Stop()
		<-done
	}
	<-errc
	return nil
}

// callLevel is the level a finished call is logged at: the middleware's
// defaults, but for Aborted, which is routine (a Passive worker asking for
// its replica set's lease every second): Debug.
func callLevel(code codes.Code) logging.Level {
	if code == codes.Aborted {
		return logging.LevelDebug
	}
	return logging.DefaultServerCodeToLevel(code)
}

func interceptorLogger(l *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		// Successful calls are frequent: keep them at Debug.
		if lvl == logging.LevelInfo {
			lvl = logging.LevelDebug
		}
		l.Log(ctx, slog.Level(lvl), msg, fields...)
	})
}
