package glusterfs

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/eintr"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/slave/apply"
)

// OpenData opens the regular file of g for writing through .gfid/<g>. A
// gfid the volume does not hold as a regular file fails with ENOENT.
//
// The gfid is looked up once, O_PATH (which opens nothing), and only a
// regular file is then opened for writing, by reopening that descriptor's
// procfs link: the very inode looked at, without a second lookup by gfid
// through FUSE (nor the stat that checked it was the same inode).
func (v *volume) OpenData(g gfid.GFID) (int, error) {
	pfd, lst, err := v.openGFIDStat(g, unix.O_PATH)
	if err == unix.ENOENT {
		return -1, apply.ErrUnknownFile(g)
	}
	if err != nil {
		return -1, fmt.Errorf("lookup: %w", err)
	}
	defer apply.CloseFd(pfd)
	if lst.Mode&unix.S_IFMT != unix.S_IFREG {
		return -1, apply.ErrUnknownFile(g)
	}
	fd, err := eintr.Value(func() (int, error) {
		return unix.Open(apply.ProcFd(pfd), unix.O_WRONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	})
	switch {
	case err == unix.ENOENT || err == unix.ESTALE:
		return -1, apply.ErrUnknownFile(g)
	case err != nil:
		return -1, fmt.Errorf("open: %w", err)
	}
	return fd, nil
}
