package glusterfs

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Config says which volume to mount and where.
type Config struct {
	// Volume is the slave volume's name (glusterfs --volfile-id).
	Volume string
	// VolfileServer is a host of the slave's trusted storage pool
	// (glusterfs --volfile-server).
	VolfileServer string
	// StateDir is the directory beneath which the slave makes its private
	// mount point, rsync directory and client log (a fresh directory per
	// Open, removed on Close). "" uses /run/georep, or os.TempDir() when
	// that cannot be created.
	StateDir string
	// GlusterfsPath is the glusterfs client binary; "" looks it up in PATH
	// and in /usr/sbin.
	GlusterfsPath string
	// MountTimeout bounds the wait for the mount (0: 60s).
	MountTimeout time.Duration
}

// Validate checks the configuration; errors name the key, the value and
// what is allowed.
func (c Config) Validate() error {
	var errs []error
	if c.Volume == "" || strings.ContainsAny(c.Volume, "/ \t\n\x00") {
		errs = append(errs, fmt.Errorf("gluster-volume: %q is not a volume name (a non-empty name without '/' or spaces)", c.Volume))
	}
	if c.VolfileServer == "" || strings.ContainsAny(c.VolfileServer, "/ \t\n\x00") || strings.HasPrefix(c.VolfileServer, "-") {
		errs = append(errs, fmt.Errorf("volfile-server: %q is not a host name (a host of the slave's pool, e.g. gluster1.example.com)", c.VolfileServer))
	}
	if c.MountTimeout < 0 {
		errs = append(errs, fmt.Errorf("mount timeout: %s is negative", c.MountTimeout))
	}
	if strings.HasPrefix(c.Volume, "-") {
		errs = append(errs, fmt.Errorf("gluster-volume: %q starts with '-'", c.Volume))
	}
	return errors.Join(errs...)
}

// InternalRootNames are the names GlusterFS itself keeps in a volume's root,
// as the slave's mount shows them: .trashcan, the trash translator's
// directory (present once features.trash is on). A fresh volume's root shows
// nothing else (.glusterfs lives on the bricks only; the aux-gfid mount's
// .gfid is not listed). They are not data anyone put on the volume: the
// slave does not count them when it refuses the first master of a non-empty
// volume. Beside it, DirLockName: the lock file georep's slave nodes share.
var InternalRootNames = []string{".trashcan", DirLockName}

// DirLockName is the file in the volume's root whose bytes serialise the
// creation of directories across every slave node serving the volume (it
// cannot live in .georep: creating .georep itself needs it). Hidden from
// the master like GlusterFS's own names, and reserved: a master entry of
// that name in the root is refused.
const DirLockName = ".georep.lock"
