package master

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
