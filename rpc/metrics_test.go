package rpc

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestServeMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "georep_test_total", Help: "a test counter"})
	reg.MustRegister(c)
	c.Add(3)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	ServeMetrics(ctx, lis, reg, slog.New(slog.DiscardHandler), &wg)
	resp, err := http.Get("http://" + lis.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "georep_test_total 3") {
		t.Errorf("metrics:\n%s", b)
	}
	cancel()
	wg.Wait() // both goroutines end with ctx
	if _, err := http.Get("http://" + lis.Addr().String() + "/metrics"); err == nil {
		t.Error("still serving after ctx ended")
	}
}

// TestRPCAndCertMetrics: a real TLS server and client on loopback, each
// measured; a health check shows in grpc_server_* and grpc_client_*, and
// each end's certificates (its own, the CA) in
// georep_tls_certificate_expiry_timestamp_seconds with their NotAfter.
func TestRPCAndCertMetrics(t *testing.T) {
	slaveFiles, masters := tlsPair(t, "georep-master")
	masterFiles := masters["georep-master"]
	srvMetrics, srvCerts := NewServerMetrics(), NewCertMetrics()
	cliMetrics, cliCerts := NewClientMetrics(), NewCertMetrics()
	srvReg, cliReg := prometheus.NewRegistry(), prometheus.NewRegistry()
	srvReg.MustRegister(srvMetrics, srvCerts)
	cliReg.MustRegister(cliMetrics, cliCerts)

	addr := serveTLS(t, ServerConfig{TLS: slaveFiles, Metrics: srvMetrics, Certs: srvCerts})
	conn, err := NewClient(ClientConfig{Address: addr, TLS: masterFiles, Metrics: cliMetrics, Certs: cliCerts})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := WaitHealthy(ctx, conn, ""); err != nil {
		t.Fatal(err)
	}

	const labels = `grpc_code="OK",grpc_method="Check",grpc_service="grpc.health.v1.Health",grpc_type="unary"`
	if err := testutil.GatherAndCompare(srvReg, strings.NewReader(`# HELP grpc_server_handled_total Total number of RPCs completed on the server, regardless of success or failure.
# TYPE grpc_server_handled_total counter
grpc_server_handled_total{`+labels+`} 1
`), "grpc_server_handled_total"); err != nil {
		t.Error(err)
	}
	if err := testutil.GatherAndCompare(cliReg, strings.NewReader(`# HELP grpc_client_handled_total Total number of RPCs completed by the client, regardless of success or failure.
# TYPE grpc_client_handled_total counter
grpc_client_handled_total{`+labels+`} 1
`), "grpc_client_handled_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(srvMetrics, "grpc_server_handling_seconds"); n != 1 {
		t.Errorf("grpc_server_handling_seconds: %d series, want 1 (the Check)", n)
	}

	for _, tc := range []struct {
		name  string
		reg   *prometheus.Registry
		files TLSFiles
		cn    string
	}{
		{"slave", srvReg, slaveFiles, "127.0.0.1"},
		{"master", cliReg, masterFiles, "georep-master"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leaf := readCert(t, tc.files.Cert)
			ca := readCert(t, tc.files.CA)
			want := fmt.Sprintf(`# HELP georep_tls_certificate_expiry_timestamp_seconds When a TLS certificate the process loaded expires (its NotAfter as Unix time), by role (cert: its own; ca: each of tls-ca) and subject.
# TYPE georep_tls_certificate_expiry_timestamp_seconds gauge
georep_tls_certificate_expiry_timestamp_seconds{role="ca",subject=%q} %d
georep_tls_certificate_expiry_timestamp_seconds{role="cert",subject=%q} %d
`, ca.Subject.CommonName, ca.NotAfter.Unix(), leaf.Subject.CommonName, leaf.NotAfter.Unix())
			if leaf.Subject.CommonName != tc.cn {
				t.Errorf("certificate CN %q, want %q", leaf.Subject.CommonName, tc.cn)
			}
			if err := testutil.GatherAndCompare(tc.reg, strings.NewReader(want), "georep_tls_certificate_expiry_timestamp_seconds"); err != nil {
				t.Error(err)
			}
		})
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cs := pemCertificates(b)
	if len(cs) != 1 {
		t.Fatalf("%s: %d certificates", path, len(cs))
	}
	return cs[0]
}

// TestCertMetricsSameSubject: of two CA certificates of one name (a CA
// renewed, both in tls-ca) the one that expires first is shown; a new load
// replaces what was shown.
func TestCertMetricsSameSubject(t *testing.T) {
	mk := func(cn string, notAfter time.Time) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: cn}, NotAfter: notAfter}
	}
	early, late := time.Unix(2_000_000_000, 0), time.Unix(2_100_000_000, 0)
	m := NewCertMetrics()
	m.loaded(mk("leaf", late), []*x509.Certificate{mk("ca", late), mk("ca", early), mk("", late)})
	want := `# HELP georep_tls_certificate_expiry_timestamp_seconds When a TLS certificate the process loaded expires (its NotAfter as Unix time), by role (cert: its own; ca: each of tls-ca) and subject.
# TYPE georep_tls_certificate_expiry_timestamp_seconds gauge
georep_tls_certificate_expiry_timestamp_seconds{role="ca",subject=""} 2.1e+09
georep_tls_certificate_expiry_timestamp_seconds{role="ca",subject="ca"} 2e+09
georep_tls_certificate_expiry_timestamp_seconds{role="cert",subject="leaf"} 2.1e+09
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	m.loaded(mk("leaf2", early), nil)
	if n := testutil.CollectAndCount(m); n != 1 {
		t.Errorf("%d series after a new load, want 1", n)
	}
}
