package glusterfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/eintr"
	"github.com/georep/georep/rpc/gfid"
)

// Extended attributes GlusterFS keeps on a brick (gsyncd's resource.py
// Server: GFID_XATTR, GX_NSPACE, linkto_check).
const (
	// GFIDXattr holds the 16-byte gfid of every inode on a brick.
	GFIDXattr = "trusted.gfid"
	// LinktoXattr marks a DHT linkto file: a zero-size placeholder on the
	// brick a name hashes to, pointing at the subvolume that holds the
	// file. Its value is that subvolume's name.
	LinktoXattr = "trusted.glusterfs.dht.linkto"
	// nspace prefixes the marker and geo-replication xattrs. gsyncd uses
	// "system.glusterfs" when unprivileged; on a brick it is always root.
	nspace = "trusted.glusterfs"
)

// XTimeKey is the marker translator's xtime xattr of volume volID,
// trusted.glusterfs.<volid>.xtime: when anything below the inode last
// changed (set only with geo-replication.indexing on).
func XTimeKey(volID string) string { return nspace + "." + volID + ".xtime" }

// StimeKey is the xattr that records, on the brick root, up to when a
// geo-replication session from master volume masterVolID to slave volume
// slaveVolID has synced this brick: trusted.glusterfs.<master>.<slave>.stime.
func StimeKey(masterVolID, slaveVolID string) string {
	return nspace + "." + masterVolID + "." + slaveVolID + ".stime"
}

// EntryStimeKey is the session's entry_stime: up to when the entry
// operations (not yet the data) of this brick's changelogs were applied, so
// that a restarted worker does not replay them.
func EntryStimeKey(masterVolID, slaveVolID string) string {
	return nspace + "." + masterVolID + "." + slaveVolID + ".entry_stime"
}

// ErrBadXattr: an xattr GlusterFS defines holds a value of the wrong form.
var ErrBadXattr = errors.New("malformed GlusterFS xattr")

// BrickGFID returns the gfid of the file at path on a brick (not following
// a final symlink), from trusted.gfid. A file without one (not yet looked up
// through the volume, or not on a brick) is an error wrapping unix.ENODATA.
func BrickGFID(path string) (gfid.GFID, error) {
	var buf [17]byte
	n, err := eintr.Value(func() (int, error) { return unix.Lgetxattr(path, GFIDXattr, buf[:]) })
	if err != nil {
		return gfid.GFID{}, fmt.Errorf("%s of %s: %w", GFIDXattr, path, err)
	}
	return gfidValue(buf[:n], path)
}

// BrickGFIDAt is BrickGFID for the entry name of the directory dirfd (not
// following a symlink).
func BrickGFIDAt(dirfd int, name string) (gfid.GFID, error) {
	var buf [17]byte
	n, err := getxattrAt(dirfd, name, GFIDXattr, buf[:])
	if err != nil {
		return gfid.GFID{}, fmt.Errorf("%s of %s: %w", GFIDXattr, name, err)
	}
	return gfidValue(buf[:n], name)
}

func gfidValue(b []byte, name string) (gfid.GFID, error) {
	g, err := gfid.FromBytes(b)
	if err != nil {
		return g, fmt.Errorf("%s of %s: %w: %w", GFIDXattr, name, ErrBadXattr, err)
	}
	return g, nil
}

// XTime returns the xtime of volume volID on path (see XTimeKey). A missing
// xattr is (zero, false, nil).
func XTime(path, volID string) (time.Time, bool, error) {
	return getTime(path, XTimeKey(volID))
}

// Stime returns the session's stime on the brick root (see StimeKey). A
// missing xattr (the session never synced this brick) is (zero, false, nil).
func Stime(brickRoot, masterVolID, slaveVolID string) (time.Time, bool, error) {
	return getTime(brickRoot, StimeKey(masterVolID, slaveVolID))
}

// SetStime records t as the session's stime on the brick root, in gsyncd's
// format (EncodeTime). gsyncd always writes 0 nanoseconds; t's are kept.
func SetStime(brickRoot, masterVolID, slaveVolID string, t time.Time) error {
	return setTime(brickRoot, StimeKey(masterVolID, slaveVolID), t)
}

// EntryStime returns the session's entry_stime on the brick root (see
// EntryStimeKey); missing is (zero, false, nil).
func EntryStime(brickRoot, masterVolID, slaveVolID string) (time.Time, bool, error) {
	return getTime(brickRoot, EntryStimeKey(masterVolID, slaveVolID))
}

// SetEntryStime records t as the session's entry_stime on the brick root.
func SetEntryStime(brickRoot, masterVolID, slaveVolID string, t time.Time) error {
	return setTime(brickRoot, EntryStimeKey(masterVolID, slaveVolID), t)
}

// getTime reads an xtime-format xattr: 8 bytes, seconds and nanoseconds as
// big-endian uint32 (Python struct '!II').
func getTime(path, key string) (time.Time, bool, error) {
	var buf [9]byte
	n, err := eintr.Value(func() (int, error) { return unix.Lgetxattr(path, key, buf[:]) })
	switch {
	case errors.Is(err, unix.ENODATA):
		return time.Time{}, false, nil
	case err != nil:
		return time.Time{}, false, fmt.Errorf("%s of %s: %w", key, path, err)
	}
	t, err := DecodeTime(buf[:n])
	if err != nil {
		return time.Time{}, false, fmt.Errorf("%s of %s: %w", key, path, err)
	}
	return t, true, nil
}

func setTime(path, key string, t time.Time) error {
	b, err := EncodeTime(t)
	if err == nil {
		_, err = eintr.Value(func() (int, error) { return 0, unix.Lsetxattr(path, key, b, 0) })
	}
	if err != nil {
		return fmt.Errorf("set %s of %s: %w", key, path, err)
	}
	return nil
}

// EncodeTime encodes t as GlusterFS's xtime/stime value: seconds and
// nanoseconds since the epoch, each a big-endian uint32. Times before 1970
// or after 2106 cannot be encoded.
func EncodeTime(t time.Time) ([]byte, error) {
	sec := t.Unix()
	if sec < 0 || sec > math.MaxUint32 {
		return nil, fmt.Errorf("%w: time %v outside the uint32 seconds range", ErrBadXattr, t)
	}
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b[0:4], uint32(sec))
	binary.BigEndian.PutUint32(b[4:8], uint32(t.Nanosecond()))
	return b, nil
}

// DecodeTime decodes an xtime/stime value (see EncodeTime); the error wraps
// ErrBadXattr.
func DecodeTime(b []byte) (time.Time, error) {
	if len(b) != 8 {
		return time.Time{}, fmt.Errorf("%w: %d bytes, want 8", ErrBadXattr, len(b))
	}
	sec, nsec := binary.BigEndian.Uint32(b[0:4]), binary.BigEndian.Uint32(b[4:8])
	if nsec >= 1e9 {
		return time.Time{}, fmt.Errorf("%w: %d nanoseconds", ErrBadXattr, nsec)
	}
	return time.Unix(int64(sec), int64(nsec)), nil
}

// LinktoMode reports whether a file's mode and size could be a DHT linkto
// file's: a regular file of size 0 whose permission bits are exactly the
// sticky bit (---------T). Only such files need the xattr check.
func LinktoMode(mode uint32, size uint64) bool {
	return mode&unix.S_IFMT == unix.S_IFREG && mode&0o7777 == unix.S_ISVTX && size == 0
}

// IsLinkto reports whether path (not following a symlink) is a DHT linkto
// file: LinktoMode, and a non-empty trusted.glusterfs.dht.linkto. A brick
// worker skips linkto files; the file itself lives on another brick. A path
// that vanished is not a linkto file.
func IsLinkto(path string) (bool, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("linkto check of %s: %w", path, err)
	}
	if !LinktoMode(st.Mode, uint64(st.Size)) {
		return false, nil
	}
	var buf [256]byte
	n, err := eintr.Value(func() (int, error) { return unix.Lgetxattr(path, LinktoXattr, buf[:]) })
	return linktoResult(n, err, path)
}

// IsLinktoAt is IsLinkto for the entry name of directory dirfd, given the
// statx result the caller already has (it needs STATX_TYPE, STATX_MODE and
// STATX_SIZE): a file that fails LinktoMode costs no system call.
func IsLinktoAt(dirfd int, name string, stx *unix.Statx_t) (bool, error) {
	if !LinktoMode(uint32(stx.Mode), stx.Size) {
		return false, nil
	}
	var buf [256]byte
	n, err := getxattrAt(dirfd, name, LinktoXattr, buf[:])
	return linktoResult(n, err, name)
}

func linktoResult(n int, err error, name string) (bool, error) {
	switch {
	case errors.Is(err, unix.ENODATA), errors.Is(err, unix.ENOENT):
		return false, nil
	case errors.Is(err, unix.ERANGE): // longer than any subvolume name we expect: still a linkto
		return true, nil
	case err != nil:
		return false, fmt.Errorf("%s of %s: %w", LinktoXattr, name, err)
	}
	return n > 0, nil
}

// getxattrAt reads xattr key of the entry name of dirfd without following a
// symlink: Linux has no fgetxattrat, so the entry is opened O_PATH|O_NOFOLLOW
// and read through its /proc/self/fd link, which resolves to the inode
// itself (a symlink included) and not through it.
func getxattrAt(dirfd int, name, key string, buf []byte) (int, error) {
	fd, err := eintr.Value(func() (int, error) {
		return unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	return eintr.Value(func() (int, error) {
		return unix.Getxattr("/proc/self/fd/"+strconv.Itoa(fd), key, buf)
	})
}

// BrickInternal reports whether name, an entry of a brick's root directory,
// is GlusterFS's own and never replicated: .glusterfs (the gfid index,
// changelogs, indices), .trashcan (the trash translator), and AFR's
// .glusterfs-anonymous-inode-<volid> (entries being healed). gsyncd skips
// the first two (resource.py GLUSTER brickserver.entries).
func BrickInternal(name string) bool {
	return name == ".glusterfs" || name == ".trashcan" || strings.HasPrefix(name, ".glusterfs-anonymous-inode-")
}

// VolumeIDXattr is what glusterd writes on a brick's root: the 16-byte id of
// the volume the brick belongs to. A brick directory without it is not
// (or no longer) the brick: an unmounted brick filesystem looks so.
const VolumeIDXattr = "trusted.glusterfs.volume-id"

// BrickVolumeID returns the volume id a brick root carries (VolumeIDXattr),
// "" when it carries none.
func BrickVolumeID(brickRoot string) (string, error) {
	var buf [17]byte
	n, err := eintr.Value(func() (int, error) { return unix.Lgetxattr(brickRoot, VolumeIDXattr, buf[:]) })
	if errors.Is(err, unix.ENODATA) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("%s of %s: %w", VolumeIDXattr, brickRoot, err)
	}
	id, err := gfid.FromBytes(buf[:n])
	if err != nil {
		return "", fmt.Errorf("%s of %s: %w: %w", VolumeIDXattr, brickRoot, ErrBadXattr, err)
	}
	return id.String(), nil
}
