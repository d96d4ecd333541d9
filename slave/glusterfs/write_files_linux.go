package glusterfs

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/slave/apply"
)

// OpenData opens the regular file of g for writing through .gfid/<g>. A
// gfid the volume does not hold as a regular file fails with ENOENT.
func (v *volume) OpenData(g gfid.GFID) (int, error) {
	// Look first (O_PATH opens nothing), so that only a regular file is ever
	// opened for writing; then check that the inode opened is that one.
	pfd, lst, err := v.openGFIDStat(g, unix.O_PATH)
	if err == unix.ENOENT {
		return -1, apply.ErrUnknownFile(g)
	}
	if err != nil {
		return -1, fmt.Errorf("lookup: %w", err)
	}
	apply.CloseFd(pfd)
	if lst.Mode&unix.S_IFMT != unix.S_IFREG {
		return -1, apply.ErrUnknownFile(g)
	}
	fd, err := v.openGFID(g, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_NOCTTY)
	switch {
	case err == unix.ENOENT:
		return -1, apply.ErrUnknownFile(g)
	case err != nil:
		return -1, fmt.Errorf("open: %w", err)
	}
	return apply.CheckOpened(fd, lst, apply.Errorf(unix.EINVAL, "gfid %s changed while being opened", g))
}
