package integration

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	slavev1 "github.com/georep/georep/gen/georep/slave/v1"
	"github.com/georep/georep/master/slaveclient"
	"github.com/georep/georep/rpc"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
	"github.com/georep/georep/rpc/ops/opstest"
	"github.com/georep/georep/slave"
	"github.com/georep/georep/slave/replica"
)

// TestConformanceClient runs the replica conformance suite through the
// master's slave client (master/slaveclient) against a real slave server on
// loopback with a plain replica: what the suite checks of a replica holds
// once every op, answer and error has crossed the wire both ways
// (rpc/wire), errors included (errors.Is against the ops sentinels).
func TestConformanceClient(t *testing.T) {
	opstest.Run(t, opstest.Caps{Root: os.Geteuid() == 0}, func(t *testing.T) opstest.Backend {
		return openClientBackend(t)
	})
}

// TestConformanceClientStreams runs it again with the batches through the
// Apply stream and the listings through Walk (its first listing), what a
// master uses when the slave has them.
func TestConformanceClientStreams(t *testing.T) {
	opstest.Run(t, opstest.Caps{Root: os.Geteuid() == 0}, func(t *testing.T) opstest.Backend {
		b := openClientBackend(t)
		b.streams = true
		return b
	})
}

// clientBackend is opstest's Backend on a slaveclient.Client: a call that
// fails whole (which a replica never does for a batch) fails the test and
// every item of the batch with EIO. With streams, entry and meta ops go
// through the Apply stream and Entries through Walk.
type clientBackend struct {
	*slaveclient.Client
	t             *testing.T
	root, dataDir string
	streams       bool
}

// apply sends one batch through an Apply stream and returns its answer.
func (b *clientBackend) apply(ctx context.Context, send func(*slaveclient.Batches) error) ([]ops.Failure, error) {
	bs, err := b.Client.Apply(ctx)
	if err != nil {
		return nil, err
	}
	defer bs.Close()
	if err := send(bs); err != nil {
		return nil, err
	}
	if err := bs.CloseSend(); err != nil {
		return nil, err
	}
	return bs.Recv()
}

// Entries lists dir, through Walk with streams (its first listing is
// dir's, answer or error).
func (b *clientBackend) Entries(ctx context.Context, dir gfid.GFID) ([]ops.DirEntry, error) {
	if !b.streams {
		return b.Client.Entries(ctx, dir)
	}
	errFirst := errors.New("first listing")
	var ents []ops.DirEntry
	var lerr error
	err := b.Client.Walk(ctx, dir, func(g gfid.GFID, es []ops.DirEntry, err error) error {
		if g != dir {
			b.t.Errorf("Walk(%s) listed %s first", dir, g)
		}
		ents, lerr = es, err
		return errFirst
	})
	if err != nil && !errors.Is(err, errFirst) {
		return nil, err
	}
	return ents, lerr
}

var _ opstest.Backend = (*clientBackend)(nil)

func (b *clientBackend) batchFailed(call string, n int, err error) []ops.Failure {
	b.t.Errorf("%s: the call failed whole: %v", call, err)
	fs := make([]ops.Failure, n)
	for i := range fs {
		fs[i] = ops.Failure{Index: i, Errno: syscall.EIO, Message: err.Error()}
	}
	return fs
}

func (b *clientBackend) ApplyEntries(ctx context.Context, entries []ops.Entry) []ops.Failure {
	call := func() ([]ops.Failure, error) { return b.EntryOps(ctx, entries) }
	if b.streams {
		call = func() ([]ops.Failure, error) {
			return b.apply(ctx, func(bs *slaveclient.Batches) error { return bs.Entries(entries) })
		}
	}
	fs, err := call()
	if err != nil {
		return b.batchFailed("EntryOps", len(entries), err)
	}
	return fs
}

func (b *clientBackend) ApplyMeta(ctx context.Context, metas []ops.Meta) []ops.Failure {
	call := func() ([]ops.Failure, error) { return b.MetaOps(ctx, metas) }
	if b.streams {
		call = func() ([]ops.Failure, error) {
			return b.apply(ctx, func(bs *slaveclient.Batches) error { return bs.Metas(metas) })
		}
	}
	fs, err := call()
	if err != nil {
		return b.batchFailed("MetaOps", len(metas), err)
	}
	return fs
}

func (b *clientBackend) WriteFiles(ctx context.Context, files []ops.FileData) []ops.Failure {
	fs, err := b.Client.WriteFiles(ctx, files)
	if err != nil {
		return b.batchFailed("WriteFiles", len(files), err)
	}
	return fs
}

func (b *clientBackend) DataDir() string { return b.dataDir }

// Root is the replica's root, where the suite plays the operator who
// changes it behind georep's back.
func (b *clientBackend) Root() string { return b.root }

// openClientBackend serves a fresh plain replica with the slave daemon's own
// server (slave.Run, in this process, plaintext on 127.0.0.1), opens a
// session on it as a master does, and returns the client of that session.
func openClientBackend(t *testing.T) *clientBackend {
	root := t.TempDir()
	r, err := replica.Open(root, nil) // for where rsync receives
	if err != nil {
		t.Fatal(err)
	}
	dataDir := r.DataDir()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan net.Addr, 1)
	done := make(chan error, 1)
	var wg sync.WaitGroup
	cfg := slave.DefaultConfig()
	cfg.Listen, cfg.Root, cfg.Insecure = "127.0.0.1:0", root, true
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	wg.Go(func() { done <- slave.Run(ctx, cfg, log, func(a net.Addr) { addrs <- a }) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if err := <-done; err != nil {
			t.Errorf("slave: %v", err)
		}
	})
	var addr net.Addr
	select {
	case addr = <-addrs:
	case err := <-done:
		t.Fatalf("slave: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("slave not serving after 30s")
	}

	conn, err := rpc.NewClient(rpc.ClientConfig{Address: addr.String(), Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	hctx, hcancel := context.WithTimeout(ctx, 30*time.Second)
	defer hcancel()
	if err := rpc.WaitHealthy(hctx, conn, ""); err != nil {
		t.Fatal(err)
	}
	resp, err := slavev1.NewSlaveServiceClient(conn).Handshake(hctx, &slavev1.HandshakeRequest{
		ProtocolVersion: 1, MasterVolumeId: gfid.New().String(), MasterNode: "conformance", LeaseSeconds: 3600,
	})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	session := resp.GetSessionId()
	return &clientBackend{Client: slaveclient.New(conn, func() string { return session }), t: t, root: root, dataDir: dataDir}
}

// testWriter logs through t.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
