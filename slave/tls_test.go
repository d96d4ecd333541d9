package slave

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	slavev1 "github.com/georep/georep/gen/georep/slave/v1"
	"github.com/georep/georep/rpc"
	"github.com/georep/georep/rpc/certs"
	"github.com/georep/georep/rpc/gfid"
)

// masterCerts makes one CA, the slave's certificate for 127.0.0.1 and a
// client certificate per master name, and returns the slave's files and
// each master's.
func masterCerts(t *testing.T, names ...string) (rpc.TLSFiles, map[string]rpc.TLSFiles) {
	t.Helper()
	base := t.TempDir()
	ca := filepath.Join(base, "ca")
	out := map[string]rpc.TLSFiles{}
	for _, n := range names {
		if err := certs.Generate(ca, certs.Options{SlaveNames: []string{"127.0.0.1"}, MasterName: n}); err != nil {
			t.Fatal(err)
		}
		keep := filepath.Join(base, n)
		if err := os.Mkdir(keep, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{certs.MasterCertFile, certs.MasterKeyFile} {
			if err := os.Rename(filepath.Join(ca, f), filepath.Join(keep, f)); err != nil {
				t.Fatal(err)
			}
		}
		out[n] = rpc.TLSFiles{Cert: filepath.Join(keep, certs.MasterCertFile), Key: filepath.Join(keep, certs.MasterKeyFile), CA: filepath.Join(ca, certs.CAFile)}
	}
	return rpc.TLSFiles{Cert: filepath.Join(ca, certs.SlaveCertFile), Key: filepath.Join(ca, certs.SlaveKeyFile), CA: filepath.Join(ca, certs.CAFile)}, out
}

// runSlave starts Run with cfg and returns its address; it stops when the
// test ends.
func runSlave(t *testing.T, cfg Config) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc, done := make(chan string, 1), make(chan error, 1)
	go func() { done <- Run(ctx, cfg, testLog(t), func(a net.Addr) { addrc <- a.String() }) }()
	select {
	case addr := <-addrc:
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
		return addr
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("Run did not become ready")
	}
	return ""
}

func tlsClient(t *testing.T, addr string, files rpc.TLSFiles) (slavev1.SlaveServiceClient, healthpb.HealthClient) {
	t.Helper()
	conn, err := rpc.NewClient(rpc.ClientConfig{Address: addr, TLS: files})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return slavev1.NewSlaveServiceClient(conn), healthpb.NewHealthClient(conn)
}

// TestSecondMasterTLSIdentity: the slave serves the master identities of
// allowed-masters only. While master-a holds the session, master-b (allowed,
// another master volume) is refused with Aborted, as any second master; an
// identity not in the list gets PermissionDenied naming it on every call,
// health and the rsync tunnel included, even with master-a's session id, and
// the replica does not change.
func TestSecondMasterTLSIdentity(t *testing.T) {
	dir, root := scratchDirs(t)
	slaveTLS, masters := masterCerts(t, "master-a", "master-b", "master-c")
	cfg := testConfig(root)
	cfg.Insecure, cfg.TLS, cfg.AllowedMasters = false, slaveTLS, []string{"master-a", "master-b"}
	addr := runSlave(t, cfg)

	a, _ := tlsClient(t, addr, masters["master-a"])
	hs, err := a.Handshake(t.Context(), &slavev1.HandshakeRequest{ProtocolVersion: ProtocolVersion, MasterVolumeId: volA, MasterNode: "a:1"})
	if err != nil {
		t.Fatalf("master-a: %v", err)
	}
	sessA := withSession(t.Context(), hs.GetSessionId())
	d := gfid.New().String()
	if resp, err := a.EntryOps(sessA, &slavev1.EntryOpsRequest{Entries: []*slavev1.Entry{{Op: slavev1.EntryOp_ENTRY_OP_MKDIR, Gfid: d, Pargfid: rootG, Name: []byte("d"), Mode: unix.S_IFDIR | 0o755}}}); err != nil || len(resp.GetFailures()) > 0 {
		t.Fatalf("master-a EntryOps: %v %v", resp, err)
	}
	before := state(t, dir)

	b, _ := tlsClient(t, addr, masters["master-b"])
	_, err = b.Handshake(t.Context(), &slavev1.HandshakeRequest{ProtocolVersion: ProtocolVersion, MasterVolumeId: volB, MasterNode: "b:1"})
	assertStatus(t, err, codes.Aborted, "held by master volume "+volA)

	c, ch := tlsClient(t, addr, masters["master-c"])
	entry := &slavev1.EntryOpsRequest{Entries: []*slavev1.Entry{{Op: slavev1.EntryOp_ENTRY_OP_CREATE, Gfid: gfid.New().String(), Pargfid: d, Name: []byte("evil"), Mode: unix.S_IFREG | 0o644}}}
	calls := map[string]func() error{
		"Handshake same volume": func() error {
			_, err := c.Handshake(t.Context(), &slavev1.HandshakeRequest{ProtocolVersion: ProtocolVersion, MasterVolumeId: volA})
			return err
		},
		"EntryOps with A's session": func() error { _, err := c.EntryOps(sessA, entry); return err },
		"KeepAlive with A's session": func() error {
			_, err := c.KeepAlive(sessA, &slavev1.KeepAliveRequest{})
			return err
		},
		"WriteFiles with A's session": func() error {
			_, err := c.WriteFiles(sessA, &slavev1.WriteFilesRequest{Files: []*slavev1.FileData{{Gfid: d, Data: []byte("x")}}})
			return err
		},
		"Stat":   func() error { _, err := c.Stat(t.Context(), &slavev1.StatRequest{Gfids: []string{rootG}}); return err },
		"health": func() error { _, err := ch.Check(t.Context(), &healthpb.HealthCheckRequest{}); return err },
		"Rsync with A's session": func() error {
			stream, err := c.Rsync(sessA)
			if err != nil {
				return err
			}
			_ = stream.Send(startMsg([]string{"rsync", "--server", "-tpe.LsfxCIvu", ".", "."}))
			_ = stream.CloseSend()
			for {
				if _, err := stream.Recv(); err != nil {
					if err == io.EOF {
						return nil
					}
					return err
				}
			}
		},
	}
	for name, call := range calls {
		t.Run("not allowed/"+name, func(t *testing.T) {
			assertStatus(t, call(), codes.PermissionDenied, `"master-c"`)
		})
	}
	assertUnchanged(t, before, state(t, dir))
	// master-a's session survived all of it.
	if _, err := a.KeepAlive(sessA, &slavev1.KeepAliveRequest{}); err != nil {
		t.Errorf("master-a's session: %v", err)
	}
}
