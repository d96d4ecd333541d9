package glusterfs

import (
	"context"

	"github.com/georep/georep/rpc/glusterfs/mount"
)

// MountConfig says what to mount where (rpc/glusterfs/mount owns the FUSE
// client; the master runs it with the defaults: the client gets SIGTERM
// when the daemon dies, busy unmounts are retried for 30 s).
type MountConfig = mount.Config

// Mounted is a GlusterFS FUSE mount whose client this program owns.
type Mounted = mount.Client

// ErrMounted: the mount point of a Mount is already a mount point.
var ErrMounted = mount.ErrMounted

// Mount starts the FUSE client and waits until cfg.Dir is mounted and
// answers (mount.Start).
func Mount(ctx context.Context, cfg MountConfig) (*Mounted, error) {
	return mount.Start(ctx, cfg)
}
