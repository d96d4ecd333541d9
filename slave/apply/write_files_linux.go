package apply

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/eintr"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// WriteFiles replaces the content of regular files the replica already
// holds and then sets their owner, mode and mtime (in that order, so setuid
// and setgid bits stick): the small-file path, gsyncd's tar+ssh. It returns
// the files that failed; a failed one does not stop the rest. When ctx is
// done, the files not yet written are reported as ECANCELED failures.
// Files of distinct gfids are written side by side, else in order.
//
// A file is reached through Backend.OpenData only: a gfid the replica does
// not hold as a regular file fails. WriteFiles never creates a file.
func (en *Engine) WriteFiles(ctx context.Context, files []ops.FileData) []ops.Failure {
	return en.perInode(ctx, len(files), func(i int) gfid.GFID { return files[i].GFID }, batch{
		do:   func(i int) error { return en.writeFile(files[i]) },
		what: func(i int) string { return "WRITE " + files[i].GFID.String() },
	})
}

// ErrUnknownFile is the failure of a write to a gfid the replica holds no
// regular file of.
func ErrUnknownFile(g gfid.GFID) error {
	return Errorf(unix.ENOENT, "gfid %s: not a regular file known to the replica", g)
}

func (en *Engine) writeFile(f ops.FileData) error {
	switch {
	case f.GFID.IsZero():
		return Errorf(unix.EINVAL, "zero gfid")
	case f.GFID == gfid.Root || f.GFID == gfid.Park:
		return Errorf(unix.EINVAL, "gfid %s is reserved: not a regular file", f.GFID)
	}
	fd, err := en.b.OpenData(f.GFID)
	if err != nil {
		return err
	}
	defer CloseFd(fd)
	st, err := Fstat(fd)
	if err != nil {
		return err
	}
	if st.Size != 0 {
		if err := eintr.Retry(func() error { return unix.Ftruncate(fd, 0) }); err != nil {
			return fmt.Errorf("truncate: %w", err)
		}
	}
	for b := f.Data; len(b) > 0; {
		n, err := eintr.Value(func() (int, error) { return unix.Write(fd, b) })
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if n == 0 {
			return Errorf(unix.EIO, "write: no progress")
		}
		b = b[n:]
	}
	// ClearACL (sync-acls): the master's file has no extended ACL; one an
	// earlier rsync -A gave this file goes (SetACL without an ACL).
	return setFileAttrs(fd, st, ops.FileAttrs{Mode: f.Mode, UID: f.UID, GID: f.GID, Mtime: f.Mtime, SetACL: f.ClearACL}, st.Size != 0 || len(f.Data) > 0)
}

// setFileAttrs gives the regular file fd, whose stat before it was written
// is st, the owner, access ACL, mode and mtime of a (in that order, so that
// setuid and setgid stick). Owner and mode as in applyMeta: changed only
// when st differs; a truncate or write (written) may have cleared setuid
// and setgid, so a mode with either is then always set again.
func setFileAttrs(fd int, st unix.Stat_t, a ops.FileAttrs, written bool) error {
	n := FdNode(fd)
	chowned := false
	if st.Uid != a.UID || st.Gid != a.GID {
		if err := n.Chown(a.UID, a.GID); err != nil {
			return fmt.Errorf("chown %d:%d: %w", a.UID, a.GID, err)
		}
		chowned = true
	}
	acl := false
	if a.SetACL {
		var err error
		if len(a.ACL) > 0 {
			err = n.Setxattr(aclAccess, a.ACL)
		} else if err = n.Removexattr(aclAccess); errors.Is(err, unix.ENODATA) || errors.Is(err, unix.EOPNOTSUPP) {
			err = nil // none, or the filesystem has no ACLs
		}
		if err != nil {
			return fmt.Errorf("access ACL: %w", err)
		}
		acl = true // it sets the mode's group bits (the mask)
	}
	if acl || NeedChmod(st.Mode, a.Mode, chowned || written) {
		if err := n.Chmod(a.Mode & 0o7777); err != nil {
			return fmt.Errorf("chmod %#o: %w", a.Mode&0o7777, err)
		}
	}
	mt := a.Mtime
	if err := n.Utimes(nil, &mt); err != nil {
		return fmt.Errorf("setting times: %w", err)
	}
	return nil
}

// aclAccess is the xattr holding a file's access ACL (what rsync -A sets).
const aclAccess = "system.posix_acl_access"

// CheckOpened returns fd when it is open on the regular file lst described
// (what was looked at before opening); otherwise it closes fd and fails,
// with changed when fd is open on another inode.
func CheckOpened(fd int, lst unix.Stat_t, changed error) (int, error) {
	st, err := Fstat(fd)
	if err == nil && (st.Mode&unix.S_IFMT != unix.S_IFREG || st.Ino != lst.Ino || st.Dev != lst.Dev) {
		err = changed
	}
	if err != nil {
		CloseFd(fd)
		return -1, err
	}
	return fd, nil
}
