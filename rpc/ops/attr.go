package ops

import (
	"fmt"
	"time"

	"github.com/georep/georep/rpc/gfid"
)

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
)

// TypeOfMode returns the FileType of st_mode m, or 0 if the type bits are
// unknown.
func TypeOfMode(m uint32) FileType {
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

// DirEntry is one name in a replica directory.
type DirEntry struct {
	Name string
	// GFID is zero when the inode carries none (it was not created by georep).
	GFID gfid.GFID
	Type FileType
}
