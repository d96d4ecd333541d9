//go:build !linux

package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"syscall"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// Replica is an open replica root. It is implemented on Linux only.
type Replica struct{}

var errUnsupported = fmt.Errorf("replica: %w (Linux only)", errors.ErrUnsupported)

// Open fails: the replica needs Linux (openat2, procfs, xattrs).
func Open(root string, log *slog.Logger) (*Replica, error) { return nil, errUnsupported }

func (r *Replica) Close() error    { return nil }
func (r *Replica) Root() string    { return "" }
func (r *Replica) DataDir() string { return "" }
func (r *Replica) ApplyEntries(ctx context.Context, entries []ops.Entry) []ops.Failure {
	return unsupported(len(entries))
}
func (r *Replica) ApplyMeta(ctx context.Context, metas []ops.Meta) []ops.Failure {
	return unsupported(len(metas))
}
func (r *Replica) WriteFiles(ctx context.Context, files []ops.FileData) []ops.Failure {
	return unsupported(len(files))
}

func unsupported(n int) []ops.Failure {
	f := make([]ops.Failure, n)
	for i := range f {
		f[i] = ops.Failure{Index: i, Errno: syscall.ENOSYS, Message: errUnsupported.Error()}
	}
	return f
}
func (r *Replica) Stat(ctx context.Context, g gfid.GFID) (ops.Attr, error) {
	return ops.Attr{}, errUnsupported
}
func (r *Replica) Entries(ctx context.Context, dir gfid.GFID) ([]ops.DirEntry, error) {
	return nil, errUnsupported
}
func (r *Replica) Purge(ctx context.Context, parent gfid.GFID, name string, only gfid.GFID) (uint64, error) {
	return 0, errUnsupported
}
func (r *Replica) SetXtime(ctx context.Context, g gfid.GFID, volumeID string, sec int64, nsec int32) error {
	return errUnsupported
}
func (r *Replica) Xtime(ctx context.Context, g gfid.GFID, volumeID string) (int64, int32, bool, error) {
	return 0, 0, false, errUnsupported
}
