package catalog

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/georep/georep/rpc/gfid"
)

// The node record of schema 2 (the value of a node key). There is no
// per-record version: the store's schema version covers every record.
//
//	flags      1 byte: bits 0-2 the Type; recKey: the inode key follows;
//	           recNoBtime: that key's birth time is 0; recRdev, recTarget,
//	           recXattr: those fields follow
//	mode       uvarint, st_mode with the Type's own type bits cleared (xor)
//	uid        uvarint
//	gid        varint, gid - uid
//	size       varint
//	mtime      varint, ns
//	ctime      varint, ctime - mtime
//	[ino       uvarint
//	 btime     varint, btime - mtime; absent with recNoBtime]
//	[rdev      uvarint]
//	[target    uvarint length, bytes]
//	[xattrs    uvarint length, bytes]
//	links      uvarint count, then per link the parent's 16 bytes and the
//	           name (uvarint length, bytes)
//
// Differences (gid from uid, ctime and btime from mtime) wrap around in
// int64 arithmetic, so every value round-trips, the impossible times (-1)
// included; a file's btime, mtime and ctime are usually microseconds apart,
// so two of the three take 2-4 bytes instead of 9.
//
// The key is the reverse of the node's identity (gfid → inode key, what
// would otherwise be a table of its own): it is what Commit needs to forget
// the identity of a deleted gfid. It is only believed while the identity
// table still maps it to this gfid (a Reassign or a Bind may have given the
// key to another gfid since).
const (
	recTypeMask = 0x07
	recKey      = 0x08
	recNoBtime  = 0x10
	recRdev     = 0x20
	recTarget   = 0x40
	recXattr    = 0x80
)

// typeBits are the st_mode type bits of each Type.
var typeBits = [...]uint32{TypeUnknown: 0, TypeReg: 0o100000, TypeDir: 0o040000, TypeSymlink: 0o120000,
	TypeFifo: 0o010000, TypeChar: 0o020000, TypeBlock: 0o060000, TypeSocket: 0o140000}

// encodeNode appends n's record, with key as the reverse of its identity
// when key is not nil. n.Type must be a known Type (Commit checks).
func encodeNode(b []byte, n *Node, key *Key) []byte {
	flags := byte(n.Type) & recTypeMask
	if key != nil {
		flags |= recKey
		if key.BtimeNs == 0 {
			flags |= recNoBtime
		}
	}
	if n.Rdev != 0 {
		flags |= recRdev
	}
	if n.Target != "" {
		flags |= recTarget
	}
	if len(n.XattrHash) > 0 {
		flags |= recXattr
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(n.Mode^typeBits[n.Type]))
	b = binary.AppendUvarint(b, uint64(n.UID))
	b = binary.AppendVarint(b, int64(n.GID)-int64(n.UID))
	b = binary.AppendVarint(b, n.Size)
	b = binary.AppendVarint(b, n.MtimeNs)
	b = binary.AppendVarint(b, n.CtimeNs-n.MtimeNs)
	if key != nil {
		b = binary.AppendUvarint(b, key.Ino)
		if key.BtimeNs != 0 {
			b = binary.AppendVarint(b, key.BtimeNs-n.MtimeNs)
		}
	}
	if n.Rdev != 0 {
		b = binary.AppendUvarint(b, n.Rdev)
	}
	if n.Target != "" {
		b = appendBytes(b, []byte(n.Target))
	}
	if len(n.XattrHash) > 0 {
		b = appendBytes(b, n.XattrHash)
	}
	b = binary.AppendUvarint(b, uint64(len(n.Links)))
	for _, l := range n.Links {
		b = append(b, l.Parent[:]...)
		b = appendBytes(b, []byte(l.Name))
	}
	return b
}

// recordView is a record read without allocating: its fields, and its
// links still encoded.
type recordView struct {
	typ                Type
	mode, uid, gid     uint32
	size, mtime, ctime int64
	key                Key
	hasKey             bool
	rdev               uint64
	target, xattrs     []byte
	nlinks             int
	links              []byte
}

func viewRecord(b []byte) (recordView, error) {
	var r recordView
	if len(b) < 1 {
		return r, fmt.Errorf("%w: empty record", ErrCorrupt)
	}
	flags := b[0]
	r.typ = Type(flags & recTypeMask)
	d := &decoder{b: b[1:]}
	mode := d.uvarint()
	if mode > 1<<32-1 && d.err == nil {
		d.err = fmt.Errorf("%w: mode %d overflows uint32", ErrCorrupt, mode)
	}
	r.mode = uint32(mode) ^ typeBits[r.typ]
	r.uid = d.u32()
	gid := int64(r.uid) + d.varint()
	if (gid < 0 || gid > 1<<32-1) && d.err == nil {
		d.err = fmt.Errorf("%w: gid %d out of range", ErrCorrupt, gid)
	}
	r.gid = uint32(gid)
	r.size = d.varint()
	r.mtime = d.varint()
	r.ctime = r.mtime + d.varint()
	if flags&recKey != 0 {
		r.hasKey = true
		r.key.Ino = d.uvarint()
		if flags&recNoBtime == 0 {
			r.key.BtimeNs = r.mtime + d.varint()
		}
	} else if flags&recNoBtime != 0 && d.err == nil {
		d.err = fmt.Errorf("%w: flags %#x", ErrCorrupt, flags)
	}
	if flags&recRdev != 0 {
		r.rdev = d.uvarint()
	}
	if flags&recTarget != 0 {
		r.target = d.bytes(d.uvarint())
	}
	if flags&recXattr != 0 {
		r.xattrs = d.bytes(d.uvarint())
	}
	nl := d.uvarint()
	if nl > uint64(len(d.b)) && d.err == nil { // each link takes 17 bytes at least
		d.err = fmt.Errorf("%w: %d links", ErrCorrupt, nl)
	}
	r.nlinks, r.links = int(nl), d.b
	return r, d.err
}

// forEachLink calls fn with the parent (16 bytes) and the name of every
// link; both are only valid during fn.
func (r *recordView) forEachLink(fn func(parent, name []byte)) error {
	d := &decoder{b: r.links}
	for i := 0; i < r.nlinks && d.err == nil; i++ {
		parent := d.bytes(16)
		name := d.bytes(d.uvarint())
		if d.err == nil {
			fn(parent, name)
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	return d.err
}

// decodeNode decodes g's record; hasKey says whether it holds the reverse
// of an identity, key.
func decodeNode(g gfid.GFID, b []byte) (n Node, key Key, hasKey bool, err error) {
	r, err := viewRecord(b)
	if err == nil {
		n = Node{GFID: g, Type: r.typ, Mode: r.mode, UID: r.uid, GID: r.gid, Size: r.size,
			MtimeNs: r.mtime, CtimeNs: r.ctime, Rdev: r.rdev, Target: string(r.target)}
		if len(r.xattrs) > 0 {
			n.XattrHash = slices.Clone(r.xattrs)
		}
		if r.nlinks > 0 {
			n.Links = make([]Link, 0, r.nlinks)
		}
		err = r.forEachLink(func(parent, name []byte) {
			l := Link{Name: string(name)}
			copy(l.Parent[:], parent)
			n.Links = append(n.Links, l)
		})
	}
	if err != nil {
		return Node{}, Key{}, false, fmt.Errorf("node %s: %w", g, err)
	}
	return n, r.key, r.hasKey, nil
}
