// Package replica owns the slave's replica: a directory tree beneath a replica
// root in which every inode carries the master's gfid, plus the gfid index
// (.georep/gfid for regular files, the only tree rsync writes into, and
// .georep/links for every other type) and the park directory (.georep/park)
// kept beside it. It
// applies entry operations (CREATE, MKDIR, MKNOD, LINK, SYMLINK, RENAME,
// UNLINK, RMDIR) and metadata operations by gfid, answers Stat and Entries,
// purges names, and keeps xtime marks.
//
// It is the counterpart of gsyncd's resource.py Server.entry_ops and
// Server.meta_ops (and the gfid-addressed helpers around them). It is domain
// code: the gRPC layer in package slave converts to and from the protocol.
//
// Confinement: every filesystem call is made relative to a directory file
// descriptor reached from the root's descriptor without following a symlink,
// with one validated name component at a time (or openat2 with
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS). Nothing outside the replica root is
// ever changed, whatever the input.
//
// Concurrency: a Replica serialises its operations internally; it is safe for
// concurrent use, but operations do not run in parallel.
package replica

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

// FileType is the type of a replica inode.
type FileType int

// The file types.
const (
	TypeRegular FileType = iota + 1
	TypeDir
	TypeSymlink
	TypeFifo
	TypeChar
	TypeBlock
	TypeSocket
)

var typeNames = [...]string{
	TypeRegular: "regular file",
	TypeDir:     "directory",
	TypeSymlink: "symlink",
	TypeFifo:    "fifo",
	TypeChar:    "character device",
	TypeBlock:   "block device",
	TypeSocket:  "socket",
}

func (t FileType) String() string {
	if t >= TypeRegular && t <= TypeSocket {
		return typeNames[t]
	}
	return fmt.Sprintf("FileType(%d)", int(t))
}

// File type bits of st_mode (Linux values; spelled out so this file builds
// everywhere).
const (
	modeTypeMask = 0o170000
	modeSock     = 0o140000
	modeLink     = 0o120000
	modeReg      = 0o100000
	modeBlock    = 0o060000
	modeDir      = 0o040000
	modeChar     = 0o020000
	modeFifo     = 0o010000
	modePerm     = 0o7777
)

// typeOfMode returns the FileType of st_mode m, or 0 if the type bits are
// unknown.
func typeOfMode(m uint32) FileType {
	switch m & modeTypeMask {
	case modeReg:
		return TypeRegular
	case modeDir:
		return TypeDir
	case modeLink:
		return TypeSymlink
	case modeFifo:
		return TypeFifo
	case modeChar:
		return TypeChar
	case modeBlock:
		return TypeBlock
	case modeSock:
		return TypeSocket
	}
	return 0
}

// Attr describes a replica inode.
type Attr struct {
	Type FileType
	// Mode is st_mode including the type bits.
	Mode     uint32
	UID, GID uint32
	Size     uint64
	Mtime    time.Time
	// Nlink counts the inode's names in the replica tree. For a
	// non-directory the link held by the gfid index is not counted.
	Nlink uint64
	Rdev  uint64
	// Target is a symlink's target.
	Target string
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
}

// DirEntry is one name in a replica directory.
type DirEntry struct {
	Name string
	// GFID is zero when the inode carries none (it was not created by georep).
	GFID gfid.GFID
	Type FileType
}

// Names of the replica's own directory and its contents.
const (
	// metaDir is the directory beneath the replica root that georep owns.
	// It is a reserved name in the root directory.
	metaDir  = ".georep"
	indexDir = "gfid"  // the data tree of the gfid index: regular files only
	linksDir = "links" // the links tree of the gfid index: every other type
	parkDir  = "park"
)

// maxName is NAME_MAX on Linux.
const maxName = 255

// ValidateName reports whether name may be used as one name component of a
// replica directory: not empty, not "." or "..", no '/' or NUL byte, and at
// most 255 bytes. Any other bytes (including invalid UTF-8) are accepted.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("invalid name %q: empty", name)
	case name == ".", name == "..":
		return fmt.Errorf("invalid name %q: \".\" and \"..\" are not names", name)
	case len(name) > maxName:
		return fmt.Errorf("invalid name %q: %d bytes, longer than %d", truncName(name), len(name), maxName)
	}
	for i := 0; i < len(name); i++ {
		switch name[i] {
		case '/':
			return fmt.Errorf("invalid name %q: contains '/'", name)
		case 0:
			return fmt.Errorf("invalid name %q: contains a NUL byte", name)
		}
	}
	return nil
}

func truncName(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
