package replica

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
	"github.com/georep/georep/slave/apply"
)

// WriteFiles replaces the content of regular files the replica already
// holds and then sets their owner, mode and mtime (in that order, so setuid
// and setgid bits stick): the small-file path, gsyncd's tar+ssh. It returns
// the files that failed; a failed one does not stop the rest. When ctx is
// done, the files not yet written are reported as ECANCELED failures.
//
// A file is reached through its entry in the data tree of the gfid index
// only (.georep/gfid/ab/<gfid>, the tree rsync writes into), which holds
// nothing but regular files: a gfid of any other type, or one the replica
// does not know, fails (EINVAL, ENOENT). WriteFiles never creates a file.
func (r *Replica) WriteFiles(ctx context.Context, files []ops.FileData) []ops.Failure {
	return r.applyBatch(ctx, len(files),
		func(i int) error { return r.writeFile(files[i]) },
		func(i int, err error) ops.Failure {
			return ops.Failure{Message: fmt.Sprintf("WRITE %s: %v", files[i].GFID, err)}
		})
}

func (r *Replica) writeFile(f ops.FileData) error {
	switch {
	case f.GFID.IsZero():
		return apply.Errorf(unix.EINVAL, "zero gfid")
	case f.GFID == gfid.Root || f.GFID == gfid.Park:
		return apply.Errorf(unix.EINVAL, "gfid %s is reserved: not a regular file", f.GFID)
	}
	unknown := func() error {
		return apply.Errorf(unix.ENOENT, "gfid %s: not a regular file known to the replica", f.GFID)
	}
	sfd, err := r.openShard(dataTree, f.GFID, false)
	if err == unix.ENOENT {
		return unknown()
	}
	if err != nil {
		return fmt.Errorf("opening shard: %w", err)
	}
	defer apply.CloseFd(sfd)
	name := f.GFID.String()
	// lstat first so that nothing but a regular file is ever opened (opening
	// a device can have side effects), then check the inode opened is the
	// one looked at. O_NONBLOCK keeps a fifo from blocking the open should
	// one have been put there behind the replica's back.
	lst, err := apply.LstatAt(sfd, name)
	if err == unix.ENOENT {
		return unknown()
	}
	if err != nil {
		return err
	}
	if lst.Mode&unix.S_IFMT != unix.S_IFREG {
		return apply.Errorf(unix.EINVAL, "gfid %s: index entry is a %s, not a regular file", f.GFID, ops.TypeOfMode(lst.Mode))
	}
	fd, err := apply.Retry(func() (int, error) {
		return unix.Openat(sfd, name, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	})
	switch {
	case err == unix.ENOENT:
		return unknown()
	case err == unix.ELOOP:
		return apply.Errorf(unix.EINVAL, "gfid %s: index entry is a symlink, not a regular file", f.GFID)
	case err != nil:
		return fmt.Errorf("open: %w", err)
	}
	defer apply.CloseFd(fd)
	st, err := apply.Fstat(fd)
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Ino != lst.Ino || st.Dev != lst.Dev {
		return apply.Errorf(unix.EINVAL, "gfid %s: index entry changed while being opened", f.GFID)
	}
	if st.Size != 0 {
		if err := apply.Retry0(func() error { return unix.Ftruncate(fd, 0) }); err != nil {
			return fmt.Errorf("truncate: %w", err)
		}
	}
	for b := f.Data; len(b) > 0; {
		n, err := apply.Retry(func() (int, error) { return unix.Write(fd, b) })
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if n == 0 {
			return apply.Errorf(unix.EIO, "write: no progress")
		}
		b = b[n:]
	}
	n := apply.FdNode(fd)
	if err := n.Chown(f.UID, f.GID); err != nil {
		return fmt.Errorf("chown %d:%d: %w", f.UID, f.GID, err)
	}
	if err := n.Chmod(f.Mode & modePerm); err != nil {
		return fmt.Errorf("chmod %#o: %w", f.Mode&modePerm, err)
	}
	mt := f.Mtime
	if err := n.Utimes(nil, &mt); err != nil {
		return fmt.Errorf("setting times: %w", err)
	}
	return nil
}
