package master

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	slavev1 "github.com/georep/georep/gen/georep/slave/v1"
	"github.com/georep/georep/rpc"
)

// refusingSlave answers every Handshake with one error.
type refusingSlave struct {
	slavev1.UnimplementedSlaveServiceServer
	err error
}

func (s *refusingSlave) Handshake(context.Context, *slavev1.HandshakeRequest) (*slavev1.HandshakeResponse, error) {
	return nil, s.err
}

func notEmptyStatus(t *testing.T, msg string) error {
	t.Helper()
	st, err := status.New(codes.FailedPrecondition, msg).WithDetails(&errdetails.ErrorInfo{
		Domain: rpc.ErrorDomain, Reason: rpc.ReasonReplicaNotEmpty,
		Metadata: map[string]string{"root": "/srv/replica", "entries": "8", "names": "albums\nprecious-0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

// handshakeWith runs the slave client's handshake against a slave
// answering err.
func handshakeWith(t *testing.T, answer error) error {
	t.Helper()
	srv := grpc.NewServer()
	slavev1.RegisterSlaveServiceServer(srv, &refusingSlave{err: answer})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	cfg := DefaultConfig()
	cfg.Slave, cfg.Insecure = lis.Addr().String(), true
	c, err := newSlaveClient(cfg, "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa", filepath.Join(t.TempDir(), "session"), "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return c.handshake(ctx)
}

// TestHandshakeReplicaNotEmptyIsAGuard: the slave's REPLICA_NOT_EMPTY
// refusal becomes the replica-not-empty GuardError (ErrGuard: --oneshot
// exits 4), matched by the ErrorInfo reason whatever the message says; a
// FailedPrecondition without it stays what it was.
func TestHandshakeReplicaNotEmptyIsAGuard(t *testing.T) {
	err := handshakeWith(t, notEmptyStatus(t, "any words at all"))
	var g *GuardError
	if !errors.Is(err, ErrGuard) || !errors.As(err, &g) {
		t.Fatalf("handshake error %v is not a guard", err)
	}
	if g.Guard != "replica-not-empty" {
		t.Errorf("guard %q", g.Guard)
	}
	for _, want := range []string{"/srv/replica", "8 entries", `"albums", "precious-0"`} {
		if !strings.Contains(g.Detail, want) {
			t.Errorf("detail %q lacks %q", g.Detail, want)
		}
	}
	if !strings.Contains(g.Proceed, "--adopt") || !strings.Contains(g.Proceed, "/srv/replica") {
		t.Errorf("proceed %q", g.Proceed)
	}
	// What connect does with it: a guard is not wrapped as a plain refusal
	// that hides it, and the chain still says ErrGuard.
	if refusesSession(err) {
		err = &refusedError{err}
	}
	if !errors.Is(err, ErrGuard) {
		t.Errorf("connect's error %v loses ErrGuard", err)
	}

	// The same message without the ErrorInfo is no guard.
	err = handshakeWith(t, status.Error(codes.FailedPrecondition, "replica root /srv/replica holds 8 entries that georep did not create"))
	if errors.Is(err, ErrGuard) || status.Code(err) != codes.FailedPrecondition {
		t.Errorf("plain FailedPrecondition became %v", err)
	}
	// Another reason of the georep domain is no guard either.
	st, _ := status.New(codes.FailedPrecondition, "x").WithDetails(&errdetails.ErrorInfo{Domain: rpc.ErrorDomain, Reason: "SOMETHING_ELSE"})
	if err := handshakeWith(t, st.Err()); errors.Is(err, ErrGuard) {
		t.Errorf("reason SOMETHING_ELSE became a guard: %v", err)
	}
}
