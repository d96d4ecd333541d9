package rpc

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"
)

func TestServerHealthAndShutdown(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	srv, err := NewServer(ServerConfig{Insecure: true}, log)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis, time.Second) }()

	conn, err := NewClient(ClientConfig{Address: lis.Addr().String(), Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	wctx, wcancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer wcancel()
	if err := WaitHealthy(wctx, conn, ""); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestNoTLSRefused(t *testing.T) {
	_, err := NewServer(ServerConfig{}, slog.New(slog.DiscardHandler))
	if !errors.Is(err, ErrNoTLS) {
		t.Fatalf("NewServer without TLS or --insecure: err = %v, want ErrNoTLS", err)
	}
	if _, err := NewClient(ClientConfig{Address: "127.0.0.1:1"}); !errors.Is(err, ErrNoTLS) {
		t.Fatalf("NewClient without TLS or --insecure: err = %v, want ErrNoTLS", err)
	}
}
