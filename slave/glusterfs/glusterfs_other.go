//go:build !linux

package glusterfs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/georep/georep/slave/replica"
)

// Volume is a mounted slave volume; it is implemented on Linux only (the
// embedded stub gives it the method set, every method failing).
type Volume struct{ *replica.Replica }

// Open fails: mounting GlusterFS and the gfid-access calls need Linux.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Volume, error) {
	return nil, fmt.Errorf("gluster-volume: %w (Linux only)", errors.ErrUnsupported)
}
