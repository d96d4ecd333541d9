package glusterfs

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/beneath"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/slave/apply"
)

// openDirByGFID opens directory g for reading: the root directly, any
// other directory by name in its parent, located by dirLocation and
// checked against the gfid of what was opened. (GlusterFS's gfid-access
// refuses to open .gfid/<gfid> of a directory for reading.)
func (v *volume) openDirByGFID(g gfid.GFID) (int, error) {
	if g == gfid.Root {
		return beneath.Open(v.rootFd, ".", unix.O_RDONLY|unix.O_DIRECTORY)
	}
	pfd, name, err := v.dirLocation(g)
	if err != nil {
		return -1, err
	}
	defer apply.CloseFd(pfd)
	fd, err := beneath.Open(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return -1, fmt.Errorf("open directory %s (%q): %w", g, apply.TruncName(name), err)
	}
	got, err := gfidOfFd(fd)
	if err == nil && got != g {
		err = apply.Errorf(unix.ESTALE, "directory %s moved while being opened", g)
	}
	if err != nil {
		apply.CloseFd(fd)
		return -1, err
	}
	return fd, nil
}

// openNode opens the inode of gfid g O_PATH; an unknown gfid is ENOENT.
func (v *volume) openNode(g gfid.GFID) (int, error) {
	fd, err := v.openGFID(g, unix.O_PATH)
	if err == unix.ENOENT {
		return -1, apply.Errorf(unix.ENOENT, "gfid %s not found", g)
	}
	return fd, err
}
