package master

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/status"

	"github.com/georep/georep/master/syncer"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// errToRsync means a file is not for the stream after all and goes to
// rsync: it has holes (rsync --sparse keeps them), it holds data on the
// slave already (rsync's delta transfer), or it changed while it was read.
var errToRsync = errors.New("not for the stream: rsync ships it")

// streamMin is the size above which a new file goes through WriteFile
// when small-file-size is 0.
const streamMin = 256 << 10

// streams reports whether large new files may go through the slave's
// WriteFile stream, and above which size.
func (w *worker) streams() (int64, bool) {
	if w.client == nil || !w.client.writeFileCap() {
		return 0, false
	}
	if w.cfg.SmallFileSize > 0 {
		return w.cfg.SmallFileSize, true
	}
	return streamMin, true
}

// shipLarge ships the data of one new file through WriteFile, holding one
// of slots while it streams, and through the sync jobs when it is not for
// the stream after all. It returns the failure, if any, keyed by gfid.
// whole is told that the file was written with its mode, owner and mtime.
func (w *worker) shipLarge(ctx context.Context, it syncer.Item, slots chan struct{}, whole func(gfid.GFID)) map[gfid.GFID]error {
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return map[gfid.GFID]error{it.GFID: ctx.Err()}
	}
	err := w.streamFile(ctx, it)
	<-slots
	switch {
	case err == nil:
		whole(it.GFID)
		return nil
	case errors.Is(err, errToRsync):
		w.log.Debug("file goes to rsync", "gfid", it.GFID.String(), "why", err)
		return w.data.Sync(ctx, []syncer.Item{it})
	default:
		return map[gfid.GFID]error{it.GFID: err}
	}
}

// streamFile sends the file at it.Path, as one WriteFile stream, to the
// slave's empty file of it.GFID, with the mode, owner and mtime of the
// inode read (and its access ACL with sync-acls). The inode must be the
// gfid's (see sameFile); a file with holes, one that holds data on the
// slave, and one that changed (size, mtime or ctime) or shrank while it
// was read are errToRsync: the stream left the slave's file empty, and
// rsync ships it as it ships every other file.
func (w *worker) streamFile(ctx context.Context, it syncer.Item) error {
	f, key, err := openSource(it.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	if w.brick == nil {
		if err := w.sameFile(it, key); err != nil {
			return err
		}
	}
	var st0 syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st0); err != nil {
		return fmt.Errorf("%s: %w", it.Path, err)
	}
	switch {
	case st0.Mode&syscall.S_IFMT != syscall.S_IFREG:
		return fmt.Errorf("%s: not a regular file any more", it.Path)
	case st0.Blocks*512 < st0.Size:
		return fmt.Errorf("%s has holes: %w", it.Path, errToRsync)
	}
	changed := false
	attrs := func() (ops.FileAttrs, error) {
		var st syscall.Stat_t
		if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
			return ops.FileAttrs{}, fmt.Errorf("%s: %w", it.Path, err)
		}
		if st.Size != st0.Size || st.Mtim != st0.Mtim || st.Ctim != st0.Ctim {
			changed = true
			return ops.FileAttrs{}, fmt.Errorf("%s changed while it was read", it.Path)
		}
		a := ops.FileAttrs{Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid, Mtime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec)}
		if w.brick != nil {
			fd := ops.FileData{UID: a.UID, GID: a.GID, Mtime: a.Mtime}
			w.volumeMeta(it.GFID, &fd)
			a.UID, a.GID, a.Mtime = fd.UID, fd.GID, fd.Mtime
		}
		if w.cfg.SyncACLs {
			acl, err := accessACL(f)
			if err != nil {
				return ops.FileAttrs{}, fmt.Errorf("%s: access ACL: %w", it.Path, err)
			}
			a.SetACL, a.ACL = true, acl
		}
		return a, nil
	}
	err = w.client.WriteFile(ctx, it.GFID, st0.Size, f, attrs)
	switch {
	case err == nil:
		return nil
	case changed, errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fmt.Errorf("%w: %w", err, errToRsync)
	case errors.Is(err, syscall.EEXIST):
		return fmt.Errorf("%w: %w", err, errToRsync)
	}
	var errno syscall.Errno
	if _, ok := status.FromError(err); ok && errors.As(err, &errno) {
		// The slave's errno (what classify calls the slave side), not
		// one of reading the source.
		return &slaveErrno{errno: errno, err: err}
	}
	return err
}

// accessACL returns the raw value of f's system.posix_acl_access (nil when
// it has none: its mode alone says the access).
func accessACL(f *os.File) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Fgetxattr(int(f.Fd()), "system.posix_acl_access", buf)
		switch {
		case errors.Is(err, unix.ENODATA), errors.Is(err, unix.EOPNOTSUPP):
			return nil, nil
		case errors.Is(err, unix.ERANGE):
			buf = make([]byte, 2*len(buf))
			continue
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return nil, err
		}
		return buf[:n], nil
	}
}
