package ops

import (
	"fmt"
	"syscall"
	"time"

	"github.com/georep/georep/rpc/gfid"
)

// Op is an entry operation, as recorded in a changelog.
type Op int

// The entry operations.
const (
	OpCreate Op = iota + 1
	OpMkdir
	OpMknod
	OpLink
	OpSymlink
	OpRename
	OpUnlink
	OpRmdir
)

var opNames = [...]string{
	OpCreate:  "CREATE",
	OpMkdir:   "MKDIR",
	OpMknod:   "MKNOD",
	OpLink:    "LINK",
	OpSymlink: "SYMLINK",
	OpRename:  "RENAME",
	OpUnlink:  "UNLINK",
	OpRmdir:   "RMDIR",
}

// String returns the changelog name of the operation ("CREATE", "MKDIR", ...).
func (o Op) String() string {
	if o >= OpCreate && o <= OpRmdir {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// Entry is one namespace operation on the replica.
type Entry struct {
	Op   Op
	GFID gfid.GFID
	// Parent is the parent directory's gfid; for RENAME the old parent.
	Parent gfid.GFID
	// Name is any bytes except '/' and NUL; for RENAME the old name.
	Name string
	// NewParent and NewName are the destination of a RENAME.
	NewParent gfid.GFID
	NewName   string
	// Mode is st_mode including the type bits (CREATE, MKDIR, MKNOD, SYMLINK).
	Mode     uint32
	UID, GID uint32
	// Rdev is the device number (Linux dev_t encoding) of a MKNOD of a
	// character or block device.
	Rdev uint64
	// Target is a SYMLINK's target, kept verbatim and never resolved.
	Target string
}

// Failure reports one entry or meta operation of a batch that was not
// applied. Failures are data: the rest of the batch is still applied.
type Failure struct {
	// Index is the position of the failed item in the batch.
	Index int
	// Errno is the Linux errno that best describes the failure, e.g. EINVAL
	// for a refused request, ENOENT, EEXIST, ENOTEMPTY.
	Errno syscall.Errno
	// Message names the operation, the gfid and the name.
	Message string
	// Existing is, for EEXIST, the gfid found at the name (zero when the name
	// holds an inode without a gfid, or when unknown).
	Existing gfid.GFID
}

// Meta is a metadata operation on one inode.
type Meta struct {
	GFID gfid.GFID
	// SetMode applies Mode's permission bits (07777, incl. setuid, setgid,
	// sticky). Skipped for symlinks.
	SetMode bool
	Mode    uint32
	// SetOwner applies numeric UID and GID (lchown semantics: a symlink
	// itself is changed).
	SetOwner bool
	UID, GID uint32
	// Atime and Mtime, when non-nil, are set; on a symlink the link's own
	// times are set.
	Atime, Mtime *time.Time
	// SetXattrs makes the inode's user.* extended attributes exactly Xattrs
	// (other user.* attributes are removed; trusted.* is never touched).
	// Skipped for symlinks.
	SetXattrs bool
	Xattrs    map[string][]byte
}

// FileData is the whole new content of a regular file the replica already
// holds, with the attributes to give it afterwards (WriteFiles).
type FileData struct {
	GFID gfid.GFID
	Data []byte
	// Mode's permission bits (07777) are applied after UID and GID.
	Mode     uint32
	UID, GID uint32
	Mtime    time.Time
	// ClearACL (sync-acls): the file has no extended POSIX ACL on the
	// master, so the replica's file must have none either.
	ClearACL bool
}

// FileAttrs are what a file written from a stream (the slave's WriteFile)
// is given once its data is in: owner, then the access ACL (with SetACL:
// ACL, the raw value of system.posix_acl_access; empty removes it), then
// the permission bits (07777), then the mtime.
type FileAttrs struct {
	Mode     uint32
	UID, GID uint32
	Mtime    time.Time
	SetACL   bool
	ACL      []byte
}

// Type is the file type the entry creates (CREATE, MKDIR, MKNOD, SYMLINK;
// regular for any other op).
func (e Entry) Type() FileType {
	switch e.Op {
	case OpMkdir:
		return TypeDir
	case OpSymlink:
		return TypeSymlink
	case OpMknod:
		return TypeOfMode(e.Mode)
	}
	return TypeRegular
}
