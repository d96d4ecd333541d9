package glusterfs

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
	"github.com/georep/georep/slave/apply"
)

// WriteFiles replaces the content of regular files the volume already holds
// and then sets their owner, mode and mtime: the small-file path. A gfid the
// volume does not hold as a regular file fails with ENOENT; nothing is ever
// created.
func (v *Volume) WriteFiles(ctx context.Context, files []ops.FileData) []ops.Failure {
	do := func(i int) error { return v.writeFile(files[i]) }
	what := func(i int) string { return "WRITE " + files[i].GFID.String() }
	if distinct(len(files), func(i int) gfid.GFID { return files[i].GFID }) {
		return v.applyParallel(ctx, 0, len(files), do, what) // one inode each: no order to keep
	}
	return v.applyBatch(ctx, len(files), do, what)
}

func (v *Volume) writeFile(f ops.FileData) error {
	switch {
	case f.GFID.IsZero():
		return apply.Errorf(unix.EINVAL, "zero gfid")
	case f.GFID == gfid.Root || f.GFID == gfid.Park:
		return apply.Errorf(unix.EINVAL, "gfid %s is reserved: not a regular file", f.GFID)
	}
	unknown := func() error {
		return apply.Errorf(unix.ENOENT, "gfid %s: not a regular file known to the replica", f.GFID)
	}
	// Look first (O_PATH opens nothing), so that only a regular file is ever
	// opened for writing; then check that the inode opened is that one.
	pfd, err := v.openGFID(f.GFID, unix.O_PATH)
	if err == unix.ENOENT {
		return unknown()
	}
	if err != nil {
		return fmt.Errorf("lookup: %w", err)
	}
	lst, err := apply.Fstat(pfd)
	apply.CloseFd(pfd)
	if err != nil {
		return err
	}
	if lst.Mode&unix.S_IFMT != unix.S_IFREG {
		return unknown()
	}
	fd, err := v.openGFID(f.GFID, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_NOCTTY)
	switch {
	case err == unix.ENOENT:
		return unknown()
	case err != nil:
		return fmt.Errorf("open: %w", err)
	}
	defer apply.CloseFd(fd)
	st, err := apply.Fstat(fd)
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Ino != lst.Ino || st.Dev != lst.Dev {
		return apply.Errorf(unix.EINVAL, "gfid %s changed while being opened", f.GFID)
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
	n := apply.PathNode(fd)
	if err := apply.Retry0(func() error { return unix.Fchown(fd, int(f.UID), int(f.GID)) }); err != nil {
		return fmt.Errorf("chown %d:%d: %w", f.UID, f.GID, err)
	}
	if err := apply.Retry0(func() error { return unix.Fchmod(fd, f.Mode&0o7777) }); err != nil {
		return fmt.Errorf("chmod %#o: %w", f.Mode&0o7777, err)
	}
	mt := f.Mtime
	if err := n.Utimes(nil, &mt); err != nil {
		return fmt.Errorf("setting times: %w", err)
	}
	return nil
}
