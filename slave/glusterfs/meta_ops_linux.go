package glusterfs

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
	"github.com/georep/georep/slave/apply"
)

// ApplyMeta applies metadata operations in order (gsyncd's meta_ops) and
// returns the ones that failed; a failed one does not stop the rest.
// Ownership is changed before the mode (so setuid and setgid stick), times
// last.
func (v *Volume) ApplyMeta(ctx context.Context, metas []ops.Meta) []ops.Failure {
	do := func(i int) error { return v.applyMeta(metas[i]) }
	what := func(i int) string { return "META " + metas[i].GFID.String() }
	if distinct(len(metas), func(i int) gfid.GFID { return metas[i].GFID }) {
		return v.applyParallel(ctx, 0, len(metas), do, what) // one inode each: no order to keep
	}
	return v.applyBatch(ctx, len(metas), do, what)
}

func validateXattrs(m ops.Meta) error {
	for name := range m.Xattrs {
		if !strings.HasPrefix(name, "user.") || len(name) == len("user.") {
			return apply.Errorf(unix.EINVAL, "xattr %q is outside the user.* namespace", apply.TruncName(name))
		}
		if len(name) > 255 || strings.IndexByte(name, 0) >= 0 {
			return apply.Errorf(unix.EINVAL, "invalid xattr name %q", apply.TruncName(name))
		}
	}
	return nil
}

func (v *Volume) applyMeta(m ops.Meta) error {
	switch {
	case m.GFID.IsZero():
		return apply.Errorf(unix.EINVAL, "zero gfid")
	case m.GFID == gfid.Park:
		return apply.Errorf(unix.EPERM, "gfid %s is reserved", m.GFID)
	}
	if m.SetXattrs {
		if err := validateXattrs(m); err != nil {
			return err
		}
	}
	fd, err := v.openNode(m.GFID)
	if err != nil {
		return err
	}
	defer apply.CloseFd(fd)
	n := apply.PathNode(fd)
	st, err := n.Stat()
	if err != nil {
		return err
	}
	isLink := apply.IsLinkMode(st.Mode)
	if m.SetOwner {
		if err := n.Chown(m.UID, m.GID); err != nil {
			return fmt.Errorf("chown %d:%d: %w", m.UID, m.GID, err)
		}
	}
	if m.SetMode && !isLink {
		if err := n.Chmod(m.Mode & 0o7777); err != nil {
			return fmt.Errorf("chmod %#o: %w", m.Mode&0o7777, err)
		}
	}
	if m.SetXattrs && !isLink {
		if err := replaceUserXattrs(n, m.Xattrs); err != nil {
			return err
		}
	}
	if m.Atime != nil || m.Mtime != nil {
		if err := n.Utimes(m.Atime, m.Mtime); err != nil {
			return fmt.Errorf("setting times: %w", err)
		}
	}
	return nil
}

// replaceUserXattrs makes the user.* attributes of n exactly want; other
// namespaces are kept.
func replaceUserXattrs(n apply.Node, want map[string][]byte) error {
	have, err := n.Listxattr()
	if err != nil {
		return fmt.Errorf("listing xattrs: %w", err)
	}
	for _, name := range have {
		if !strings.HasPrefix(name, "user.") {
			continue
		}
		if _, keep := want[name]; keep {
			continue
		}
		if err := n.Removexattr(name); err != nil && err != unix.ENODATA {
			return fmt.Errorf("removing xattr %q: %w", name, err)
		}
	}
	for name, value := range want {
		if cur, err := n.Getxattr(name); err == nil && bytes.Equal(cur, value) {
			continue
		}
		if err := n.Setxattr(name, value); err != nil {
			return fmt.Errorf("setting xattr %q: %w", name, err)
		}
	}
	return nil
}
