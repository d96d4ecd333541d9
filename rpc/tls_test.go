package rpc

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/georep/georep/rpc/certs"
)

// tlsPair generates a CA, a slave certificate for 127.0.0.1 and one master
// certificate per name (all signed by the one CA) and returns the slave's
// files and each master's.
func tlsPair(t *testing.T, masters ...string) (TLSFiles, map[string]TLSFiles) {
	t.Helper()
	base := t.TempDir()
	out := map[string]TLSFiles{}
	var slave TLSFiles
	for i, m := range masters {
		// Each run reuses the CA of the first; keep each master's files.
		dir := filepath.Join(base, "ca")
		if err := certs.Generate(dir, certs.Options{SlaveNames: []string{"127.0.0.1"}, MasterName: m}); err != nil {
			t.Fatal(err)
		}
		keep := filepath.Join(base, "m"+string(rune('a'+i)))
		for _, f := range []string{certs.MasterCertFile, certs.MasterKeyFile, certs.SlaveCertFile, certs.SlaveKeyFile} {
			copyFile(t, filepath.Join(dir, f), filepath.Join(keep, f))
		}
		out[m] = TLSFiles{Cert: filepath.Join(keep, certs.MasterCertFile), Key: filepath.Join(keep, certs.MasterKeyFile), CA: filepath.Join(dir, certs.CAFile)}
		slave = TLSFiles{Cert: filepath.Join(keep, certs.SlaveCertFile), Key: filepath.Join(keep, certs.SlaveKeyFile), CA: filepath.Join(dir, certs.CAFile)}
	}
	return slave, out
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// serveTLS serves a server (health and reflection only) on loopback and
// returns its address.
func serveTLS(t *testing.T, cfg ServerConfig) string {
	t.Helper()
	srv, err := NewServer(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis, time.Second) }()
	t.Cleanup(func() { cancel(); <-done })
	return lis.Addr().String()
}

func TestAllowedClients(t *testing.T) {
	slave, masters := tlsPair(t, "master-a", "master-b.example.net", "spiffe://example.net/georep/c", "other")
	addr := serveTLS(t, ServerConfig{TLS: slave, AllowedClients: []string{"master-a", "MASTER-B.example.net", "spiffe://example.net/georep/c"}})
	call := func(t *testing.T, files TLSFiles) (unary, stream, reflection error) {
		t.Helper()
		conn, err := NewClient(ClientConfig{Address: addr, TLS: files})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		hc := healthpb.NewHealthClient(conn)
		_, unary = hc.Check(ctx, &healthpb.HealthCheckRequest{})
		w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
		if err == nil {
			_, err = w.Recv()
		}
		stream = err
		rc, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
		if err == nil {
			err = rc.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
		}
		if err == nil || err == io.EOF {
			_, err = rc.Recv()
		}
		return unary, stream, err
	}
	for _, name := range []string{"master-a", "master-b.example.net", "spiffe://example.net/georep/c"} {
		t.Run("allowed/"+name, func(t *testing.T) {
			u, s, r := call(t, masters[name])
			if u != nil || s != nil || r != nil {
				t.Fatalf("allowed master %s refused: unary %v, stream %v, reflection %v", name, u, s, r)
			}
		})
	}
	t.Run("refused", func(t *testing.T) {
		u, s, r := call(t, masters["other"])
		for what, err := range map[string]error{"unary": u, "stream": s, "reflection": r} {
			st := status.Convert(err)
			if st.Code() != codes.PermissionDenied || !strings.Contains(st.Message(), `"other"`) || !strings.Contains(st.Message(), "allowed-masters") {
				t.Errorf("%s call of a master not in the list: %v, want PermissionDenied naming \"other\"", what, err)
			}
		}
	})
	t.Run("WaitHealthy gives up at once", func(t *testing.T) {
		conn, err := NewClient(ClientConfig{Address: addr, TLS: masters["other"]})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		start := time.Now()
		err = WaitHealthy(ctx, conn, "")
		if status.Code(err) != codes.PermissionDenied || time.Since(start) > 5*time.Second {
			t.Fatalf("WaitHealthy = %v after %s, want PermissionDenied at once", err, time.Since(start))
		}
	})
	t.Run("URI identities compare exactly", func(t *testing.T) {
		addr := serveTLS(t, ServerConfig{TLS: slave, AllowedClients: []string{"SPIFFE://example.net/georep/C"}})
		conn, err := NewClient(ClientConfig{Address: addr, TLS: masters["spiffe://example.net/georep/c"]})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, err = healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{})
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("a URI identity differing in case: %v, want PermissionDenied", err)
		}
	})
}

func TestAllowedClientsNeedTLS(t *testing.T) {
	_, err := NewServer(ServerConfig{Insecure: true, AllowedClients: []string{"m"}}, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "--insecure") {
		t.Fatalf("NewServer(insecure, allowlist) = %v, want a refusal naming --insecure", err)
	}
}

// TestNoAllowlist: without an allowlist any certificate of the CA is served,
// and a plaintext client of a TLS server is not.
func TestNoAllowlist(t *testing.T) {
	slave, masters := tlsPair(t, "anyone")
	addr := serveTLS(t, ServerConfig{TLS: slave})
	conn, err := NewClient(ClientConfig{Address: addr, TLS: masters["anyone"]})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("health without an allowlist: %v", err)
	}
	plain, err := NewClient(ClientConfig{Address: addr, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(plain).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(false)); err == nil {
		t.Fatal("a plaintext client was served by a TLS server")
	}
}
