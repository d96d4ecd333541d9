package rpc

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ServeMetrics serves reg's metrics as Prometheus text on lis at /metrics
// until ctx is done, then shuts the server down (2 s for requests in
// flight). Both of its goroutines are on wg, which the caller waits for.
func ServeMetrics(ctx context.Context, lis net.Listener, reg *prometheus.Registry, log *slog.Logger, wg *sync.WaitGroup) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	wg.Go(func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	})
	wg.Go(func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	log.Info("serving metrics", "addr", "http://"+lis.Addr().String()+"/metrics")
}

// rpcBuckets are the bounds of the handling-time histograms of both ends:
// 0.5 ms to about 9 min (a long Rsync stream).
var rpcBuckets = prometheus.ExponentialBuckets(0.0005, 4, 11)

// NewServerMetrics returns the standard gRPC server metrics (grpc_server_*
// of go-grpc-middleware's Prometheus provider: calls started and handled
// by code, messages received and sent, and the handling-time histogram).
// Give it to ServerConfig.Metrics, register it, and call InitializeMetrics
// once the services are registered so that every method shows at 0.
func NewServerMetrics() *grpcprom.ServerMetrics {
	return grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(grpcprom.WithHistogramBuckets(rpcBuckets)))
}

// NewClientMetrics returns the standard gRPC client metrics (grpc_client_*),
// with the handling-time histogram; give it to ClientConfig.Metrics.
func NewClientMetrics() *grpcprom.ClientMetrics {
	return grpcprom.NewClientMetrics(grpcprom.WithClientHandlingTimeHistogram(grpcprom.WithHistogramBuckets(rpcBuckets)))
}

// CertMetrics is georep_tls_certificate_expiry_timestamp_seconds: when the
// certificates a process loaded last expire (NotAfter, Unix time), by role
// ("cert": its own certificate; "ca": each certificate of tls-ca) and
// subject (the Common Name, or the whole subject without one). Two
// certificates of one role and subject (a CA renewed under the same name,
// both in tls-ca) show the one that expires first. A server loads its files
// at start, the master's slave client each time a worker opens its
// connections: what is shown is what new connections use. Safe for
// concurrent use.
type CertMetrics struct {
	mu     sync.Mutex
	expiry map[[2]string]time.Time // (role, subject) → NotAfter
}

var descCertExpiry = prometheus.NewDesc("georep_tls_certificate_expiry_timestamp_seconds",
	"When a TLS certificate the process loaded expires (its NotAfter as Unix time), by role (cert: its own; ca: each of tls-ca) and subject.",
	[]string{"role", "subject"}, nil)

// NewCertMetrics returns an empty CertMetrics; register it.
func NewCertMetrics() *CertMetrics { return &CertMetrics{} }

// loaded replaces what m shows with leaf and cas.
func (m *CertMetrics) loaded(leaf *x509.Certificate, cas []*x509.Certificate) {
	if m == nil {
		return
	}
	expiry := map[[2]string]time.Time{}
	add := func(role string, c *x509.Certificate) {
		subject := c.Subject.CommonName
		if subject == "" {
			subject = c.Subject.String()
		}
		k := [2]string{role, subject}
		if t, ok := expiry[k]; !ok || c.NotAfter.Before(t) {
			expiry[k] = c.NotAfter
		}
	}
	if leaf != nil {
		add("cert", leaf)
	}
	for _, c := range cas {
		add("ca", c)
	}
	m.mu.Lock()
	m.expiry = expiry
	m.mu.Unlock()
}

func (m *CertMetrics) Describe(ch chan<- *prometheus.Desc) { ch <- descCertExpiry }

func (m *CertMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, t := range m.expiry {
		ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue, float64(t.Unix()), k[0], k[1])
	}
}
