package glusterfs

import (
	"context"
	"log/slog"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/glusterfs/mount"
)

// client is the glusterfs FUSE client of the slave volume, run by
// rpc/glusterfs/mount in the foreground (-N), so that it is our child: we
// know its pid and reap it.
type client struct{ *mount.Client }

// mountVolume starts the aux-gfid client on point and waits until the
// volume answers there; then it remounts point nosymfollow, nosuid, nodev,
// noexec.
func mountVolume(ctx context.Context, cfg Config, point, logFile string, log *slog.Logger) (*client, error) {
	m, err := mount.Start(ctx, mount.Config{
		VolfileServer: cfg.VolfileServer, Volume: cfg.Volume, Dir: point, LogFile: logFile,
		GlusterfsPath: cfg.GlusterfsPath, Timeout: cfg.MountTimeout,
		AuxGFID: true,
		// No kernel caching of entries or attributes: a gfid whose last
		// name went must stop resolving at once (with the default 1 s
		// entry timeout the kernel kept serving .gfid/<gfid> of a replaced
		// file), and the slave checks names and gfids right before acting
		// on them.
		ExtraArgs: []string{"--entry-timeout=0", "--attribute-timeout=0", "--negative-timeout=0",
			"--xlator-option=*md-cache.md-cache-timeout=0"},
		Remount: unix.MS_NOSYMFOLLOW | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RELATIME,
		// Its own process group: a terminal's ^C goes to the slave, which
		// then unmounts in order.
		OwnProcessGroup: true,
		BusyTimeout:     5 * time.Second,
		Log:             log,
	})
	if err != nil {
		return nil, err
	}
	return &client{m}, nil
}

// close unmounts (never lazily: a lazily unmounted FUSE mount still serves
// open descriptors and working directories, and rsync wrote empty files into
// one while reporting success) and reaps the client.
func (c *client) close() error { return c.Close() }

// mounted reports whether something is mounted on point. Its parent (the
// state directory) is resolved as mount.Start resolves the mount point;
// point itself is not looked at, which a hung mount would not answer.
func mounted(point string) (bool, error) {
	if dir, err := filepath.EvalSymlinks(filepath.Dir(point)); err == nil {
		point = filepath.Join(dir, filepath.Base(point))
	}
	mi, err := mount.Lookup(point)
	return mi.Mounted, err
}
