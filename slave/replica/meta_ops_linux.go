package replica

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

// ApplyMeta applies metadata operations in order and returns the ones that
// failed; a failed one does not stop the rest. Ownership is changed before
// the mode (so setuid and setgid bits stick), times last.
func (r *Replica) ApplyMeta(ctx context.Context, metas []ops.Meta) []ops.Failure {
	return r.applyBatch(ctx, len(metas),
		func(i int) error { return r.applyMeta(metas[i]) },
		func(i int, err error) ops.Failure {
			return ops.Failure{Message: fmt.Sprintf("META %s: %v", metas[i].GFID, err)}
		})
}

func (r *Replica) validateXattrs(m ops.Meta) error {
	for name := range m.Xattrs {
		if !strings.HasPrefix(name, "user.") || len(name) == len("user.") {
			return apply.Errorf(unix.EINVAL, "xattr %q is outside the user.* namespace", apply.TruncName(name))
		}
		if r.ns == "user" && strings.HasPrefix(name, "user.georep.") {
			return apply.Errorf(unix.EPERM, "xattr %q is reserved for georep", apply.TruncName(name))
		}
		if len(name) > 255 || strings.IndexByte(name, 0) >= 0 {
			return apply.Errorf(unix.EINVAL, "invalid xattr name %q", apply.TruncName(name))
		}
	}
	return nil
}

func (r *Replica) applyMeta(m ops.Meta) error {
	switch {
	case m.GFID.IsZero():
		return apply.Errorf(unix.EINVAL, "zero gfid")
	case m.GFID == gfid.Park:
		return apply.Errorf(unix.EPERM, "gfid %s is reserved", m.GFID)
	}
	if m.SetXattrs {
		if err := r.validateXattrs(m); err != nil {
			return err
		}
	}
	n, _, done, err := r.openNode(m.GFID)
	if err != nil {
		return err
	}
	defer done()
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
		if err := n.Chmod(m.Mode & modePerm); err != nil {
			return fmt.Errorf("chmod %#o: %w", m.Mode&modePerm, err)
		}
	}
	if m.SetXattrs && !isLink && (r.asRoot || !noUserXattrs(st.Mode)) {
		if err := r.replaceUserXattrs(n, m.Xattrs); err != nil {
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

// replaceUserXattrs makes the user.* attributes of n exactly want (skipped
// for symlinks, and as non-root for special files: the kernel refuses user.*
// attributes there). georep's
// own attributes (user.georep.* as non-root) and other namespaces are kept.
func (r *Replica) replaceUserXattrs(n apply.Node, want map[string][]byte) error {
	have, err := n.Listxattr()
	if err != nil {
		return fmt.Errorf("listing xattrs: %w", err)
	}
	for _, name := range have {
		if !strings.HasPrefix(name, "user.") || (r.ns == "user" && strings.HasPrefix(name, "user.georep.")) {
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
