package slavefake

import (
	"context"
	"maps"
	"slices"
	"strings"
	"syscall"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// MetaOps sets owner, mode (not of a symlink), user.* xattrs (made
// exactly those given; not of a symlink) and times of inodes and returns
// the ones that failed; a failed one does not stop the rest. The error is
// always nil.
func (s *Slave) MetaOps(ctx context.Context, metas []ops.Meta) ([]ops.Failure, error) {
	return s.batch(ctx, len(metas), func(i int) string { return "META " + metas[i].GFID.String() },
		func(i int) error { return s.applyMeta(metas[i]) }), nil
}

func (s *Slave) applyMeta(m ops.Meta) error {
	if m.GFID == gfid.Park {
		return errorf(syscall.EPERM, "gfid %s is reserved", m.GFID)
	}
	if m.SetXattrs {
		for name := range m.Xattrs {
			if !strings.HasPrefix(name, "user.") || len(name) == len("user.") || len(name) > 255 || strings.IndexByte(name, 0) >= 0 {
				return errorf(syscall.EINVAL, "xattr %q is outside the user.* namespace or invalid", name)
			}
		}
	}
	in, err := s.node(m.GFID)
	if err != nil {
		return err
	}
	isLink := in.typ() == ops.TypeSymlink
	if m.SetOwner {
		in.uid, in.gid = m.UID, m.GID
	}
	if m.SetMode && !isLink {
		in.mode = in.mode&syscall.S_IFMT | m.Mode&0o7777
	}
	if m.SetXattrs && !isLink {
		in.xattrs = maps.Clone(m.Xattrs)
		for name, v := range in.xattrs {
			in.xattrs[name] = slices.Clone(v)
		}
	}
	if m.Atime != nil {
		in.atime = *m.Atime
	}
	if m.Mtime != nil {
		in.mtime = *m.Mtime
	}
	return nil
}

// WriteFiles replaces the content of regular files the slave holds and
// sets their owner, mode and mtime, and returns the files that failed; a
// failed one does not stop the rest. It never creates a file. The error
// is always nil.
func (s *Slave) WriteFiles(ctx context.Context, files []ops.FileData) ([]ops.Failure, error) {
	return s.batch(ctx, len(files), func(i int) string { return "WRITE " + files[i].GFID.String() },
		func(i int) error { return s.writeFile(files[i]) }), nil
}

func (s *Slave) writeFile(f ops.FileData) error {
	switch {
	case f.GFID.IsZero():
		return errorf(syscall.EINVAL, "zero gfid")
	case f.GFID == gfid.Root || f.GFID == gfid.Park:
		return errorf(syscall.EINVAL, "gfid %s is reserved: not a regular file", f.GFID)
	}
	in := s.inodes[f.GFID]
	if in == nil || in.typ() != ops.TypeRegular {
		return errorf(syscall.ENOENT, "gfid %s: not a regular file known to the replica", f.GFID)
	}
	in.data = slices.Clone(f.Data)
	in.uid, in.gid = f.UID, f.GID
	in.mode = syscall.S_IFREG | f.Mode&0o7777
	in.mtime = f.Mtime
	return nil
}
