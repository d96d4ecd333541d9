package catalog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"

	"github.com/georep/georep/rpc/gfid"
)

// Type is the file type of a node.
type Type uint8

const (
	TypeUnknown Type = iota
	TypeReg
	TypeDir
	TypeSymlink
	TypeFifo
	TypeChar
	TypeBlock
	TypeSocket
)

var typeNames = [...]string{"unknown", "reg", "dir", "symlink", "fifo", "char", "block", "socket"}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// TypeOfMode returns the Type of a Linux st_mode.
func TypeOfMode(mode uint32) Type {
	switch mode & 0o170000 {
	case 0o100000:
		return TypeReg
	case 0o040000:
		return TypeDir
	case 0o120000:
		return TypeSymlink
	case 0o010000:
		return TypeFifo
	case 0o020000:
		return TypeChar
	case 0o060000:
		return TypeBlock
	case 0o140000:
		return TypeSocket
	}
	return TypeUnknown
}

// Key identifies an inode on the source: inode number and birth time in ns
// (0 where the filesystem has no birth time).
type Key struct {
	Ino     uint64
	BtimeNs int64
}

func (k Key) bytes() []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, k.Ino)
	binary.BigEndian.PutUint64(b[8:], uint64(k.BtimeNs))
	return b
}

func keyFromBytes(b []byte) (Key, error) {
	if len(b) != 16 {
		return Key{}, fmt.Errorf("%w: identity key of %d bytes", ErrCorrupt, len(b))
	}
	return Key{binary.BigEndian.Uint64(b), int64(binary.BigEndian.Uint64(b[8:]))}, nil
}

// Link is one name of a node: the gfid of its parent directory and the name in it.
type Link struct {
	Parent gfid.GFID
	Name   string
}

// Node is a gfid's record as last synced to the slave.
type Node struct {
	GFID    gfid.GFID
	Type    Type
	Mode    uint32 // st_mode, type bits included
	UID     uint32
	GID     uint32
	Size    int64
	MtimeNs int64
	CtimeNs int64
	Rdev    uint64
	Target  string // symlink target
	// Links are the node's names; the root has none, a directory exactly one.
	Links []Link
	// XattrHash is a digest of the node's user.* xattrs, nil when there are
	// none or they are not synced.
	XattrHash []byte
}

// FileMode converts Mode to an fs.FileMode (permission and type bits).
func (n *Node) FileMode() fs.FileMode {
	m := fs.FileMode(n.Mode & 0o777)
	if n.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if n.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if n.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch n.Type {
	case TypeDir:
		m |= fs.ModeDir
	case TypeSymlink:
		m |= fs.ModeSymlink
	case TypeFifo:
		m |= fs.ModeNamedPipe
	case TypeChar:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case TypeBlock:
		m |= fs.ModeDevice
	case TypeSocket:
		m |= fs.ModeSocket
	}
	return m
}

// Equal reports whether a and b are the same record. Links compare as sets.
func (n *Node) Equal(o *Node) bool {
	if n.GFID != o.GFID || n.Type != o.Type || n.Mode != o.Mode || n.UID != o.UID || n.GID != o.GID ||
		n.Size != o.Size || n.MtimeNs != o.MtimeNs || n.CtimeNs != o.CtimeNs || n.Rdev != o.Rdev ||
		n.Target != o.Target || !bytes.Equal(n.XattrHash, o.XattrHash) || len(n.Links) != len(o.Links) {
		return false
	}
	if len(n.Links) == 1 {
		return n.Links[0] == o.Links[0]
	}
	set := make(map[Link]int, len(n.Links))
	for _, l := range n.Links {
		set[l]++
	}
	for _, l := range o.Links {
		if set[l] == 0 {
			return false
		}
		set[l]--
	}
	return true
}

// ErrCorrupt is wrapped by errors about undecodable catalog contents.
var ErrCorrupt = errors.New("catalog corrupt")

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: bad varint", ErrCorrupt)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: bad varint", ErrCorrupt)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) u32() uint32 {
	v := d.uvarint()
	if v > 1<<32-1 && d.err == nil {
		d.err = fmt.Errorf("%w: value %d overflows uint32", ErrCorrupt, v)
	}
	return uint32(v)
}

func (d *decoder) bytes(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = fmt.Errorf("%w: truncated record", ErrCorrupt)
		return nil
	}
	s := d.b[:n:n]
	d.b = d.b[n:]
	return s
}
