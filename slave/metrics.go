package slave

import (
	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/georep/georep/rpc"
	"github.com/georep/georep/rpc/buildinfo"
)

// metrics is the slave's Prometheus registry: the standard gRPC server
// metrics of every call (grpc_server_*, with the handling-time histogram:
// the apply latency of EntryOps, MetaOps, WriteFiles, the length of Rsync
// streams), the certificates it serves with, its build, the Go runtime and
// the process.
type metrics struct {
	reg   *prometheus.Registry
	grpc  *grpcprom.ServerMetrics
	certs *rpc.CertMetrics
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry(), grpc: rpc.NewServerMetrics(), certs: rpc.NewCertMetrics()}
	m.reg.MustRegister(m.grpc, m.certs, buildinfo.Read().Collector("georep-slave"),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
