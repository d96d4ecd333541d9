package rpc

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
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
