package slave

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/georep/georep/rpc"
)

// TestRunMetricsAndAlive runs the slave daemon on loopback with /metrics:
// a real call shows in the standard grpc_server_* metrics, every method of
// the slave service is there from the start (at 0), and the lease watch
// calls Alive (the systemd watchdog's proof of life).
func TestRunMetricsAndAlive(t *testing.T) {
	mlis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := mlis.Addr().String()
	mlis.Close()
	alive := make(chan struct{}, 1)
	cfg := DefaultConfig()
	cfg.Listen, cfg.Root, cfg.Insecure, cfg.MetricsListen = "127.0.0.1:0", t.TempDir(), true, metricsAddr
	cfg.Alive = func() {
		select {
		case alive <- struct{}{}:
		default:
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, slog.New(slog.DiscardHandler), func(a net.Addr) { addrc <- a }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	var addr net.Addr
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	conn, err := rpc.NewClient(rpc.ClientConfig{Address: addr.String(), Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := rpc.WaitHealthy(wctx, conn, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case <-alive:
	case <-wctx.Done():
		t.Fatal("the lease watch never called Alive")
	}

	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, want := range []string{
		`grpc_server_handled_total{grpc_code="OK",grpc_method="Check",grpc_service="grpc.health.v1.Health",grpc_type="unary"} 1`,
		`grpc_server_started_total{grpc_method="Handshake",grpc_service="georep.slave.v1.SlaveService",grpc_type="unary"} 0`,
		`grpc_server_handling_seconds_count{grpc_method="Check",grpc_service="grpc.health.v1.Health",grpc_type="unary"} 1`,
		`georep_build_info{`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(text, "georep_slave_rpc_duration_seconds") {
		t.Error("/metrics still has georep_slave_rpc_duration_seconds")
	}
}
