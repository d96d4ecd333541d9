package replica

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/eintr"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
	"github.com/georep/georep/slave/apply"
)

// setOwnerMode applies owner then permissions (after chown, so that the
// setuid and setgid bits stick) to a new inode. As non-root a chown the
// kernel refuses is skipped.
func (r *store) setOwnerMode(n apply.Node, e ops.Entry, isLink bool) error {
	if err := n.Chown(e.UID, e.GID); err != nil {
		if r.asRoot || err != unix.EPERM {
			return fmt.Errorf("chown %d:%d: %w", e.UID, e.GID, err)
		}
		r.log.Debug("chown refused, not root", "gfid", e.GFID.String(), "uid", e.UID, "gid", e.GID)
	}
	if isLink {
		return nil
	}
	if err := n.Chmod(e.Mode & modePerm); err != nil {
		return fmt.Errorf("chmod %#o: %w", e.Mode&modePerm, err)
	}
	return nil
}

func (r *store) mkfile(pfd int, e ops.Entry) error {
	fd, err := eintr.Value(func() (int, error) {
		return unix.Openat(pfd, e.Name, unix.O_RDONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	})
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	defer apply.CloseFd(fd)
	if err := r.setGFID(apply.FdNode(fd), e.GFID, false); err != nil {
		_ = eintr.Retry(func() error { return unix.Unlinkat(pfd, e.Name, 0) })
		return fmt.Errorf("setting gfid: %w", err)
	}
	if err := r.setOwnerMode(apply.FdNode(fd), e, false); err != nil {
		return err
	}
	if err := r.linkIndex(pfd, e.Name, e.GFID); err != nil {
		return fmt.Errorf("gfid index: %w", err)
	}
	return nil
}

func (r *store) mkdir(pfd int, e ops.Entry) error {
	if err := eintr.Retry(func() error { return unix.Mkdirat(pfd, e.Name, 0o700) }); err != nil {
		return fmt.Errorf("mkdir: %w", err)
	}
	fd, err := apply.OpenDirAt(pfd, e.Name)
	if err != nil {
		return fmt.Errorf("opening new directory: %w", err)
	}
	defer apply.CloseFd(fd)
	if err := r.setGFID(apply.FdNode(fd), e.GFID, false); err != nil {
		_ = eintr.Retry(func() error { return unix.Unlinkat(pfd, e.Name, unix.AT_REMOVEDIR) })
		return fmt.Errorf("setting gfid: %w", err)
	}
	if err := r.setOwnerMode(apply.FdNode(fd), e, false); err != nil {
		return err
	}
	if err := r.setDirIndex(e.GFID, e.Parent, e.Name); err != nil {
		return fmt.Errorf("gfid index: %w", err)
	}
	return nil
}

// mknode creates a symlink, fifo, socket or device.
func (r *store) mknode(pfd int, e ops.Entry, t ops.FileType) error {
	var err error
	if t == ops.TypeSymlink {
		err = eintr.Retry(func() error { return unix.Symlinkat(e.Target, pfd, e.Name) })
	} else {
		mode := e.Mode&modeTypeMask | 0o600
		err = eintr.Retry(func() error { return unix.Mknodat(pfd, e.Name, mode, int(e.Rdev)) })
	}
	if err != nil {
		return fmt.Errorf("creating %s: %w", t, err)
	}
	n := apply.AtNode(pfd, e.Name)
	if err := r.setGFID(n, e.GFID, true); err != nil {
		_ = eintr.Retry(func() error { return unix.Unlinkat(pfd, e.Name, 0) })
		return fmt.Errorf("setting gfid: %w", err)
	}
	if err := r.setOwnerMode(n, e, t == ops.TypeSymlink); err != nil {
		return err
	}
	if err := r.linkIndex(pfd, e.Name, e.GFID); err != nil {
		return fmt.Errorf("gfid index: %w", err)
	}
	return nil
}

// OpenData opens the regular file of g for writing through its entry in the
// data tree of the gfid index only (.georep/gfid/ab/<gfid>, the tree rsync
// writes into), which holds nothing but regular files: a gfid of any other
// type fails with EINVAL, one the replica does not know with ENOENT.
func (r *store) OpenData(g gfid.GFID) (int, error) {
	sfd, err := r.openShard(dataTree, g, false)
	if err == unix.ENOENT {
		return -1, apply.ErrUnknownFile(g)
	}
	if err != nil {
		return -1, fmt.Errorf("opening shard: %w", err)
	}
	defer apply.CloseFd(sfd)
	name := g.String()
	// lstat first so that nothing but a regular file is ever opened (opening
	// a device can have side effects), then check the inode opened is the
	// one looked at. O_NONBLOCK keeps a fifo from blocking the open should
	// one have been put there behind the replica's back.
	lst, err := apply.LstatAt(sfd, name)
	if err == unix.ENOENT {
		return -1, apply.ErrUnknownFile(g)
	}
	if err != nil {
		return -1, err
	}
	if lst.Mode&unix.S_IFMT != unix.S_IFREG {
		return -1, apply.Errorf(unix.EINVAL, "gfid %s: index entry is a %s, not a regular file", g, ops.TypeOfMode(lst.Mode))
	}
	fd, err := eintr.Value(func() (int, error) {
		return unix.Openat(sfd, name, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	})
	switch {
	case err == unix.ENOENT:
		return -1, apply.ErrUnknownFile(g)
	case err == unix.ELOOP:
		return -1, apply.Errorf(unix.EINVAL, "gfid %s: index entry is a symlink, not a regular file", g)
	case err != nil:
		return -1, fmt.Errorf("open: %w", err)
	}
	return apply.CheckOpened(fd, lst, apply.Errorf(unix.EINVAL, "gfid %s: index entry changed while being opened", g))
}
