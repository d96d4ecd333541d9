package ops

import (
	"crypto/sha256"
	"encoding/binary"
	"io"
	"slices"
	"sync"

	"github.com/zeebo/xxh3"

	"github.com/georep/georep/rpc/gfid"
)

// AuditEntry is one name of a directory as the slave's audit describes it:
// what it holds, and digests of its user.* xattrs and (when asked) of its
// data, computed where the data lives.
type AuditEntry struct {
	Name string
	GFID gfid.GFID // zero when the inode carries none
	Attr Attr      // Nlink is not set
	Ino  uint64
	// XattrDigest is XattrDigest of the inode's user.* xattrs (georep's
	// own left out); nil when it has none.
	XattrDigest []byte
	// ContentDigest is the xxh3-128 digest of a regular file's data (16
	// bytes big endian), when asked; ContentErr says why it could not be
	// computed.
	ContentDigest []byte
	ContentErr    error
}

// AuditDir is the audit's listing of one directory.
type AuditDir struct {
	GFID    gfid.GFID
	Entries []AuditEntry // sorted by name
	// More: the directory has names after the last entry.
	More bool
	// Err: the directory could not be listed.
	Err error
}

// AuditDirRequest asks for the names of directory GFID after After.
type AuditDirRequest struct {
	GFID  gfid.GFID
	After string
}

// XattrDigest digests a set of xattrs: SHA-256 over the names in byte
// order, each name and value preceded by its length (8 bytes big endian).
// It is nil for none. The master's catalog and the slave's audit compute
// it alike, so that xattrs are compared without crossing the link.
func XattrDigest(m map[string][]byte) []byte {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := sha256.New()
	var n [8]byte
	for _, k := range keys {
		binary.BigEndian.PutUint64(n[:], uint64(len(k)))
		h.Write(n[:])
		h.Write([]byte(k))
		binary.BigEndian.PutUint64(n[:], uint64(len(m[k])))
		h.Write(n[:])
		h.Write(m[k])
	}
	return h.Sum(nil)
}

// digestBufs are ContentDigest's read buffers.
var digestBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// ContentDigest is the xxh3-128 digest of what r holds (16 bytes big
// endian) and its length, read in 256 KiB blocks.
func ContentDigest(r io.Reader) ([]byte, int64, error) {
	h := xxh3.New()
	buf := digestBufs.Get().(*[]byte)
	defer digestBufs.Put(buf)
	n, err := io.CopyBuffer(struct{ io.Writer }{h}, struct{ io.Reader }{r}, *buf)
	if err != nil {
		return nil, n, err
	}
	d := h.Sum128().Bytes()
	return d[:], n, nil
}
