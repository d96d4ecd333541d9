package slave

import (
	"context"
	"path"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/georep/georep/rpc/buildinfo"
)

// metrics is the slave's Prometheus registry: how long each RPC took to
// apply, by method and status code, measured by interceptors around the
// handlers.
type metrics struct {
	reg      *prometheus.Registry
	duration *prometheus.HistogramVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "georep_slave_rpc_duration_seconds",
			Help:    "Time the slave took to handle each RPC (apply latency of EntryOps, MetaOps, WriteFiles; length of Rsync streams), by method and code.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 11),
		}, []string{"method", "code"}),
	}
	m.reg.MustRegister(m.duration, buildinfo.Read().Collector("georep-slave"), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observe(fullMethod string, start time.Time, err error) {
	m.duration.WithLabelValues(path.Base(fullMethod), status.Code(err).String()).Observe(time.Since(start).Seconds())
}

func (m *metrics) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	m.observe(info.FullMethod, start, err)
	return resp, err
}

func (m *metrics) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	err := handler(srv, ss)
	m.observe(info.FullMethod, start, err)
	return err
}
