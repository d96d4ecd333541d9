package ops

import (
	"strings"
	"syscall"

	"github.com/georep/georep/rpc/gfid"
)

// maxTarget bounds a symlink target: shorter than PATH_MAX.
const maxTarget = syscall.PathMax

// ValidateEntry refuses an entry op that no replica may apply, before
// anything is touched: an unknown op, a zero or reserved gfid (the root, the
// park), a zero parent, an invalid name, a mode that is not of the op's type,
// an empty symlink target or one with a NUL byte or of PATH_MAX bytes and
// more. Every refusal is EINVAL but for the reserved gfids (EPERM). reserved
// says which names in which directories the replica keeps for itself (nil:
// none); it is asked, in this order, after the parent and name of the op and
// then the new parent and name of a RENAME are checked.
func ValidateEntry(e Entry, reserved func(parent gfid.GFID, name string) error) error {
	if e.Op < OpCreate || e.Op > OpRmdir {
		return nameErrorf(syscall.EINVAL, "unknown entry op %d", int(e.Op))
	}
	if e.GFID.IsZero() {
		return nameErrorf(syscall.EINVAL, "zero gfid")
	}
	if e.GFID == gfid.Root || e.GFID == gfid.Park {
		return nameErrorf(syscall.EPERM, "gfid %s is reserved", e.GFID)
	}
	if err := ValidateParentName(e.Parent, e.Name, reserved); err != nil {
		return err
	}
	t := e.Mode & syscall.S_IFMT
	switch e.Op {
	case OpRename:
		return ValidateParentName(e.NewParent, e.NewName, reserved)
	case OpCreate:
		if t != 0 && t != syscall.S_IFREG {
			return nameErrorf(syscall.EINVAL, "CREATE with mode %#o: not a regular file", e.Mode)
		}
	case OpMkdir:
		if t != 0 && t != syscall.S_IFDIR {
			return nameErrorf(syscall.EINVAL, "MKDIR with mode %#o: not a directory", e.Mode)
		}
	case OpMknod:
		switch t {
		case syscall.S_IFREG, syscall.S_IFIFO, syscall.S_IFCHR, syscall.S_IFBLK, syscall.S_IFSOCK:
		default:
			return nameErrorf(syscall.EINVAL, "MKNOD with mode %#o: not a regular file, fifo, device or socket", e.Mode)
		}
	case OpSymlink:
		switch {
		case e.Target == "":
			return nameErrorf(syscall.EINVAL, "empty symlink target")
		case strings.IndexByte(e.Target, 0) >= 0:
			return nameErrorf(syscall.EINVAL, "symlink target contains a NUL byte")
		case len(e.Target) >= maxTarget:
			return nameErrorf(syscall.EINVAL, "symlink target of %d bytes is too long", len(e.Target))
		}
	}
	return nil
}

// ValidateParentName refuses a zero parent and an invalid name (EINVAL,
// whatever ValidateName says: the replicas have always answered so), then
// asks reserved (nil: nothing reserved).
func ValidateParentName(parent gfid.GFID, name string, reserved func(gfid.GFID, string) error) error {
	if parent.IsZero() {
		return nameErrorf(syscall.EINVAL, "zero parent gfid")
	}
	if err := ValidateName(name); err != nil {
		return nameErrorf(syscall.EINVAL, "%v", err)
	}
	if reserved != nil {
		return reserved(parent, name)
	}
	return nil
}
