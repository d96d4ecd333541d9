package master

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	slavev1 "github.com/georep/georep/gen/georep/slave/v1"
	"github.com/georep/georep/rpc/wire"
)

// TestSlaveDirGone: what Entries answers for a directory that is not on the
// slave as one, once through the wire, and what it answers otherwise.
func TestSlaveDirGone(t *testing.T) {
	overTheWire := func(err error) error {
		return fmt.Errorf("entries of d: %w", wire.FromStatus(status.FromProto(status.Convert(wire.ToStatus(err)).Proto()).Err()))
	}
	for _, tt := range []struct {
		err  error
		gone bool
	}{
		{overTheWire(syscall.ENOENT), true},
		{overTheWire(fmt.Errorf("open: %w", syscall.ENOTDIR)), true},
		{overTheWire(syscall.ESTALE), true},
		{status.Error(codes.NotFound, "no errno detail"), false}, // not through FromStatus: the client always maps
		{wire.FromStatus(status.Error(codes.NotFound, "no errno detail")), true},
		{overTheWire(syscall.EIO), false},
		{overTheWire(syscall.EACCES), false},
		{wire.FromStatus(status.Error(codes.Unavailable, "connection refused")), false},
		{errors.New("boom"), false},
		{nil, false},
	} {
		if got := slaveDirGone(tt.err); got != tt.gone {
			t.Errorf("slaveDirGone(%v) = %v, want %v", tt.err, got, tt.gone)
		}
	}
}

// keepAliveAPI counts the KeepAlive calls of a slave client.
type keepAliveAPI struct {
	slavev1.SlaveServiceClient
	calls chan *slavev1.KeepAliveRequest
}

func (k *keepAliveAPI) KeepAlive(_ context.Context, req *slavev1.KeepAliveRequest, _ ...grpc.CallOption) (*slavev1.KeepAliveResponse, error) {
	k.calls <- req
	return &slavev1.KeepAliveResponse{}, nil
}

// TestKeepAliveFollowsGrantedLease: the keep-alive loop starts before the
// session opens, waiting a third of the lease asked for; a session opened
// with a shorter lease (the slave grants less) is renewed within a third
// of that one, not after the wait begun before it.
func TestKeepAliveFollowsGrantedLease(t *testing.T) {
	api := &keepAliveAPI{calls: make(chan *slavev1.KeepAliveRequest, 16)}
	c := &slaveClient{api: api, lease: time.Hour, opened: make(chan struct{}, 1), volumeID: "v"}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); c.keepAlive(ctx, make(chan error, 1)) }()
	defer func() { cancel(); <-done }()
	time.Sleep(50 * time.Millisecond) // the loop waits on the asked-for lease
	// What handshake does with the slave's answer: a 3 s lease.
	c.mu.Lock()
	c.lease, c.session = 3*time.Second, "s1"
	c.mu.Unlock()
	c.opened <- struct{}{}
	select {
	case req := <-api.calls:
		if got := req.GetMark().GetTimeout(); got != 3 {
			t.Errorf("keep-alive mark timeout %d s, want the lease's 3", got)
		}
	case <-time.After(time.Minute): // a third of the granted lease is 1 s; of the asked one, 20 min
		t.Fatal("no keep-alive within a minute of a session opened with a 3 s lease")
	}
}
