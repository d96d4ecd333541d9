package replica

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
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

func timespec(t *time.Time) *unix.Timespec {
	if t == nil {
		return nil
	}
	ts := unix.NsecToTimespec(t.UnixNano())
	if t.Year() < 1678 || t.Year() > 2261 { // outside UnixNano's range
		ts = unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
	}
	return &ts
}

func (r *Replica) validateXattrs(m ops.Meta) error {
	for name := range m.Xattrs {
		if !strings.HasPrefix(name, "user.") || len(name) == len("user.") {
			return errf(unix.EINVAL, "xattr %q is outside the user.* namespace", truncName(name))
		}
		if r.ns == "user" && strings.HasPrefix(name, "user.georep.") {
			return errf(unix.EPERM, "xattr %q is reserved for georep", truncName(name))
		}
		if len(name) > 255 || strings.IndexByte(name, 0) >= 0 {
			return errf(unix.EINVAL, "invalid xattr name %q", truncName(name))
		}
	}
	return nil
}

func (r *Replica) applyMeta(m ops.Meta) error {
	switch {
	case m.GFID.IsZero():
		return errf(unix.EINVAL, "zero gfid")
	case m.GFID == gfid.Park:
		return errf(unix.EPERM, "gfid %s is reserved", m.GFID)
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
	st, err := n.stat()
	if err != nil {
		return err
	}
	isLink := isLinkMode(st.Mode)
	if m.SetOwner {
		if err := n.chown(m.UID, m.GID); err != nil {
			return fmt.Errorf("chown %d:%d: %w", m.UID, m.GID, err)
		}
	}
	if m.SetMode && !isLink {
		if err := n.chmod(m.Mode & modePerm); err != nil {
			return fmt.Errorf("chmod %#o: %w", m.Mode&modePerm, err)
		}
	}
	if m.SetXattrs && !isLink && (r.asRoot || !noUserXattrs(st.Mode)) {
		if err := r.replaceUserXattrs(n, m.Xattrs); err != nil {
			return err
		}
	}
	if m.Atime != nil || m.Mtime != nil {
		if err := n.utimes(timespec(m.Atime), timespec(m.Mtime)); err != nil {
			return fmt.Errorf("setting times: %w", err)
		}
	}
	return nil
}

// replaceUserXattrs makes the user.* attributes of n exactly want (skipped
// for symlinks, and as non-root for special files: the kernel refuses user.*
// attributes there). georep's
// own attributes (user.georep.* as non-root) and other namespaces are kept.
func (r *Replica) replaceUserXattrs(n node, want map[string][]byte) error {
	have, err := n.listxattr()
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
		if err := n.removexattr(name); err != nil && err != unix.ENODATA {
			return fmt.Errorf("removing xattr %q: %w", name, err)
		}
	}
	for name, value := range want {
		if cur, err := n.getxattr(name); err == nil && bytes.Equal(cur, value) {
			continue
		}
		if err := n.setxattr(name, value); err != nil {
			return fmt.Errorf("setting xattr %q: %w", name, err)
		}
	}
	return nil
}
