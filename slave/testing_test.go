package slave

import (
	"context"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	slavev1 "github.com/georep/georep/gen/georep/slave/v1"
	"github.com/georep/georep/rpc"
	"github.com/georep/georep/slave/replica"
)

// testClock is a settable clock for the session lease.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func testLog(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tbWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

type tbWriter struct{ t testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// newService builds the slave service over the replica at cfg.Root the way
// Run does, with the session clock now (time.Now when nil). The replica is
// closed when the test ends.
func newService(t testing.TB, cfg Config, now func() time.Time, log *slog.Logger) *service {
	t.Helper()
	if now == nil {
		now = time.Now
	}
	rep, err := replica.Open(cfg.Root, log)
	if err != nil {
		t.Fatalf("replica.Open: %v", err)
	}
	t.Cleanup(func() { _ = rep.Close() })
	volumeID, err := readOrCreateID(cfg.Root, "volume-id")
	if err != nil {
		t.Fatal(err)
	}
	rsyncPath := cfg.RsyncPath
	if rsyncPath == "" {
		rsyncPath = "rsync"
	}
	if p, err := exec.LookPath(rsyncPath); err == nil {
		rsyncPath = p
	} else {
		rsyncPath = ""
	}
	return &service{
		replica:  rep,
		sessions: &sessions{now: now, maxLease: cfg.Lease},
		binding:  &binding{root: cfg.Root, acceptNew: cfg.AcceptNewMaster, adopt: cfg.Adopt, own: ownRootNames(cfg), log: log, now: now},
		volumeID: volumeID,
		rsync:    rsyncPath,
		maxBatch: cfg.MaxBatch,
		log:      log,
	}
}

// serve serves svc with rpc.NewServer on 127.0.0.1:0, as Run does, and
// returns a connected client. Server and client stop when the test ends.
func serve(t testing.TB, svc *service) (slavev1.SlaveServiceClient, *grpc.ClientConn) {
	t.Helper()
	srv, err := rpc.NewServer(rpc.ServerConfig{
		Insecure: true,
		Unary:    []grpc.UnaryServerInterceptor{svc.unaryAuth},
		Stream:   []grpc.StreamServerInterceptor{svc.streamAuth},
	}, svc.log)
	if err != nil {
		t.Fatal(err)
	}
	slavev1.RegisterSlaveServiceServer(srv, svc)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis, time.Second) }()
	conn, err := rpc.NewClient(rpc.ClientConfig{Address: lis.Addr().String(), Insecure: true})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return slavev1.NewSlaveServiceClient(conn), conn
}

// scratchDirs makes <tmp>/root (the replica root) and, beside it,
// <tmp>/outside/sentinel, and returns tmp and root.
func scratchDirs(t testing.TB) (dir, root string) {
	t.Helper()
	dir = t.TempDir()
	root = dir + "/root"
	for _, d := range []string{root, dir + "/outside"} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(dir+"/outside/sentinel", []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, root
}
