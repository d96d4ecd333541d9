package apply

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// ApplyMeta applies metadata operations (gsyncd's meta_ops) and returns the
// ones that failed; a failed one does not stop the rest. Ownership is
// changed before the mode (so setuid and setgid bits stick), times last.
// Operations on distinct gfids are applied side by side, else in order.
func (en *Engine) ApplyMeta(ctx context.Context, metas []ops.Meta) []ops.Failure {
	return en.perInode(ctx, len(metas), func(i int) gfid.GFID { return metas[i].GFID }, batch{
		do:   func(i int) error { return en.applyMeta(metas[i]) },
		what: func(i int) string { return "META " + metas[i].GFID.String() },
	})
}

func (en *Engine) validateXattrs(m ops.Meta) error {
	for name := range m.Xattrs {
		if !strings.HasPrefix(name, "user.") || len(name) == len("user.") {
			return Errorf(unix.EINVAL, "xattr %q is outside the user.* namespace", TruncName(name))
		}
		if en.ownXattr(name) {
			return Errorf(unix.EPERM, "xattr %q is reserved for georep", TruncName(name))
		}
		if len(name) > 255 || strings.IndexByte(name, 0) >= 0 {
			return Errorf(unix.EINVAL, "invalid xattr name %q", TruncName(name))
		}
	}
	return nil
}

// ownXattr reports whether the user.* attribute name is georep's own.
func (en *Engine) ownXattr(name string) bool {
	return en.cfg.Namespace == "user" && strings.HasPrefix(name, "user.georep.")
}

func (en *Engine) applyMeta(m ops.Meta) error {
	switch {
	case m.GFID.IsZero():
		return Errorf(unix.EINVAL, "zero gfid")
	case m.GFID == gfid.Park:
		return Errorf(unix.EPERM, "gfid %s is reserved", m.GFID)
	}
	if m.SetXattrs {
		if err := en.validateXattrs(m); err != nil {
			return err
		}
	}
	h, err := en.b.OpenNode(m.GFID)
	if err != nil {
		return err
	}
	defer h.Done()
	n := h.Node
	st, err := n.Stat()
	if err != nil {
		return err
	}
	isLink := IsLinkMode(st.Mode)
	// Owner and mode are changed only when they differ from what the stat
	// above says (each change is a round trip on a FUSE replica); a chown
	// may clear setuid and setgid, so the mode is set again after one.
	chowned := false
	if m.SetOwner && (st.Uid != m.UID || st.Gid != m.GID) {
		if err := n.Chown(m.UID, m.GID); err != nil {
			return fmt.Errorf("chown %d:%d: %w", m.UID, m.GID, err)
		}
		chowned = true
	}
	if m.SetMode && !isLink && NeedChmod(st.Mode, m.Mode, chowned) {
		if err := n.Chmod(m.Mode & 0o7777); err != nil {
			return fmt.Errorf("chmod %#o: %w", m.Mode&0o7777, err)
		}
	}
	special := st.Mode&unix.S_IFMT != unix.S_IFREG && !IsDirMode(st.Mode)
	if m.SetXattrs && !isLink && !(en.cfg.NoSpecialXattrs && special) {
		if err := en.replaceUserXattrs(n, m.Xattrs); err != nil {
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

// replaceUserXattrs makes the user.* attributes of n exactly want. georep's
// own attributes (user.georep.* as non-root) and other namespaces are kept.
func (en *Engine) replaceUserXattrs(n Node, want map[string][]byte) error {
	have, err := n.Listxattr()
	if err != nil {
		return fmt.Errorf("listing xattrs: %w", err)
	}
	for _, name := range have {
		if !strings.HasPrefix(name, "user.") || en.ownXattr(name) {
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

// NeedChmod reports whether an inode whose st_mode was have must be
// chmod-ed to get the permission bits of want: when they differ, or when
// want has setuid or setgid and a chown (chowned) or a write since may
// have cleared them.
func NeedChmod(have, want uint32, chowned bool) bool {
	return have&0o7777 != want&0o7777 || chowned && want&(unix.S_ISUID|unix.S_ISGID) != 0
}
