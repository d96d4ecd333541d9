package glusterfs

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
	"github.com/georep/georep/slave/apply"
)

// Stat describes the inode of gfid g. For an unknown gfid the error wraps
// fs.ErrNotExist.
func (v *Volume) Stat(ctx context.Context, g gfid.GFID) (ops.Attr, error) {
	if err := ctx.Err(); err != nil {
		return ops.Attr{}, err
	}
	if g.IsZero() {
		return ops.Attr{}, apply.Errorf(unix.EINVAL, "stat: zero gfid")
	}
	if err := v.lock(); err != nil {
		return ops.Attr{}, err
	}
	defer v.mu.Unlock()
	fd, err := v.openGFID(g, unix.O_PATH)
	if err == unix.ENOENT {
		return ops.Attr{}, apply.Errorf(unix.ENOENT, "stat %s: gfid not found", g)
	}
	if err != nil {
		return ops.Attr{}, fmt.Errorf("stat %s: %w", g, err)
	}
	defer apply.CloseFd(fd)
	st, err := apply.Fstat(fd)
	if err != nil {
		return ops.Attr{}, fmt.Errorf("stat %s: %w", g, err)
	}
	a := ops.Attr{
		Type: ops.TypeOfMode(st.Mode), Mode: st.Mode, UID: st.Uid, GID: st.Gid,
		Size: uint64(st.Size), Mtime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
		Nlink: uint64(st.Nlink), Rdev: st.Rdev,
	}
	if a.Type == ops.TypeSymlink {
		if a.Target, err = apply.ReadlinkAt(fd, ""); err != nil {
			return ops.Attr{}, fmt.Errorf("stat %s: readlink: %w", g, err)
		}
	}
	return a, nil
}

// openDirByGFID opens directory g for reading: the root directly, any
// other directory by name in its parent, located by dirLocation and
// checked against the gfid of what was opened. (GlusterFS's gfid-access
// refuses to open .gfid/<gfid> of a directory for reading.)
func (v *Volume) openDirByGFID(g gfid.GFID) (int, error) {
	if g == gfid.Root {
		return apply.OpenBeneath(v.rootFd, ".", unix.O_RDONLY|unix.O_DIRECTORY)
	}
	pfd, name, err := v.dirLocation(g)
	if err != nil {
		return -1, err
	}
	defer apply.CloseFd(pfd)
	fd, err := apply.OpenBeneath(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return -1, fmt.Errorf("open directory %s (%q): %w", g, apply.TruncName(name), err)
	}
	got, err := gfidOfFd(fd)
	if err == nil && got != g {
		err = apply.Errorf(unix.ESTALE, "directory %s moved while being opened", g)
	}
	if err != nil {
		apply.CloseFd(fd)
		return -1, err
	}
	return fd, nil
}

// Entries lists the directory of gfid dir, sorted by name, each name with
// its gfid. georep's .georep directory is never listed.
func (v *Volume) Entries(ctx context.Context, dir gfid.GFID) ([]ops.DirEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if dir.IsZero() {
		return nil, apply.Errorf(unix.EINVAL, "entries: zero gfid")
	}
	if err := v.lock(); err != nil {
		return nil, err
	}
	defer v.mu.Unlock()
	fd, err := v.openDirByGFID(dir)
	if err != nil {
		return nil, fmt.Errorf("entries of %s: %w", dir, err)
	}
	defer apply.CloseFd(fd)
	// Names are looked up in .gfid/<dir>, as everywhere else, not through
	// the descriptor opened for reading: lookups by name in a directory
	// reached by name answered ENOENT for names renamed into it through
	// .gfid/<dir> (see dirLocation).
	pfd, err := v.openParent(dir)
	if err != nil {
		return nil, fmt.Errorf("entries of %s: %w", dir, err)
	}
	defer apply.CloseFd(pfd)
	names, err := apply.ReadDirNames(fd)
	if err != nil {
		return nil, fmt.Errorf("entries of %s: reading directory: %w", dir, err)
	}
	slices.Sort(names)
	out := make([]ops.DirEntry, 0, len(names))
	for _, name := range names {
		if name == "." || name == ".." || dir == gfid.Root && (name == metaDir || name == gfidDir || slices.Contains(InternalRootNames, name)) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ni, err := v.lookup(pfd, name)
		if err != nil {
			return nil, fmt.Errorf("entries of %s: %q: %w", dir, name, err)
		}
		if !ni.exists {
			continue
		}
		out = append(out, ops.DirEntry{Name: name, GFID: ni.g, Type: ops.TypeOfMode(ni.st.Mode)})
	}
	return out, nil
}

func xtimeAttr(volumeID string) (string, error) {
	vol, err := gfid.Parse(volumeID)
	if err != nil {
		return "", apply.Errorf(unix.EINVAL, "volume id: %v", err)
	}
	return "trusted.georep." + vol.String() + ".xtime", nil
}

// SetXtime records master volume volumeID's xtime on the inode of gfid g,
// in trusted.georep.<volumeID>.xtime as 8+4 bytes big endian (the plain
// replica's format).
func (v *Volume) SetXtime(ctx context.Context, g gfid.GFID, volumeID string, sec int64, nsec int32) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	attr, err := xtimeAttr(volumeID)
	if err != nil {
		return fmt.Errorf("set xtime on %s: %w", g, err)
	}
	if g.IsZero() {
		return apply.Errorf(unix.EINVAL, "set xtime: zero gfid")
	}
	if nsec < 0 || nsec >= 1e9 {
		return apply.Errorf(unix.EINVAL, "set xtime on %s: nanoseconds %d out of range", g, nsec)
	}
	if err := v.lock(); err != nil {
		return err
	}
	defer v.mu.Unlock()
	fd, err := v.openNode(g)
	if err != nil {
		return fmt.Errorf("set xtime on %s: %w", g, err)
	}
	defer apply.CloseFd(fd)
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(sec))
	binary.BigEndian.PutUint32(b[8:], uint32(nsec))
	if err := (apply.PathNode(fd)).Setxattr(attr, b[:]); err != nil {
		return fmt.Errorf("set xtime on %s: %s: %w", g, attr, err)
	}
	return nil
}

// Xtime reads master volume volumeID's xtime from the inode of gfid g; ok is
// false when the inode carries none.
func (v *Volume) Xtime(ctx context.Context, g gfid.GFID, volumeID string) (sec int64, nsec int32, ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, false, err
	}
	attr, err := xtimeAttr(volumeID)
	if err != nil {
		return 0, 0, false, fmt.Errorf("xtime of %s: %w", g, err)
	}
	if g.IsZero() {
		return 0, 0, false, apply.Errorf(unix.EINVAL, "xtime: zero gfid")
	}
	if err := v.lock(); err != nil {
		return 0, 0, false, err
	}
	defer v.mu.Unlock()
	fd, err := v.openNode(g)
	if err != nil {
		return 0, 0, false, fmt.Errorf("xtime of %s: %w", g, err)
	}
	defer apply.CloseFd(fd)
	b, err := apply.PathNode(fd).Getxattr(attr)
	switch {
	case err == unix.ENODATA:
		return 0, 0, false, nil
	case err != nil:
		return 0, 0, false, fmt.Errorf("xtime of %s: %s: %w", g, attr, err)
	case len(b) != 12:
		return 0, 0, false, apply.Errorf(unix.EINVAL, "xtime of %s: %s holds %d bytes, want 12", g, attr, len(b))
	}
	return int64(binary.BigEndian.Uint64(b[:8])), int32(binary.BigEndian.Uint32(b[8:])), true, nil
}

// openNode opens the inode of gfid g O_PATH; an unknown gfid is ENOENT.
func (v *Volume) openNode(g gfid.GFID) (int, error) {
	fd, err := v.openGFID(g, unix.O_PATH)
	if err == unix.ENOENT {
		return -1, apply.Errorf(unix.ENOENT, "gfid %s not found", g)
	}
	return fd, err
}

// Purge removes parent/name, recursively when it is a directory. When only
// is not zero, the name is removed only if it holds that gfid. A missing
// name is not an error. removed counts directories and non-directories
// whose last name was removed.
func (v *Volume) Purge(ctx context.Context, parent gfid.GFID, name string, only gfid.GFID) (removed uint64, err error) {
	if err := validateParentName(parent, name); err != nil {
		return 0, fmt.Errorf("purge %s/%q: %w", parent, apply.TruncName(name), err)
	}
	if err := v.lock(); err != nil {
		return 0, err
	}
	defer v.mu.Unlock()
	pfd, err := v.openParent(parent)
	if err != nil {
		return 0, fmt.Errorf("purge %s/%q: %w", parent, name, err)
	}
	defer apply.CloseFd(pfd)
	ni, err := v.lookup(pfd, name)
	if err != nil {
		return 0, fmt.Errorf("purge %s/%q: %w", parent, name, err)
	}
	if !ni.exists {
		return 0, nil
	}
	if !only.IsZero() && ni.g != only {
		return 0, nil
	}
	if ni.g == gfid.Root || ni.g == gfid.Park {
		return 0, apply.Errorf(unix.EPERM, "purge %s/%q: refusing to remove gfid %s", parent, name, ni.g)
	}
	if err := v.purge(ctx, pfd, name, ni, &removed, 0); err != nil {
		return removed, fmt.Errorf("purge %s/%q: %w", parent, name, err)
	}
	return removed, nil
}

const maxPurgeDepth = 1024

func (v *Volume) purge(ctx context.Context, dirfd int, name string, ni nameInfo, removed *uint64, depth int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !ni.isDir() {
		if err := apply.Retry0(func() error { return unix.Unlinkat(dirfd, name, 0) }); err != nil && err != unix.ENOENT {
			return fmt.Errorf("unlink %q: %w", name, err)
		}
		if ni.st.Nlink <= 1 {
			*removed++
		}
		return nil
	}
	if depth >= maxPurgeDepth {
		return apply.Errorf(unix.ELOOP, "directory tree deeper than %d levels", maxPurgeDepth)
	}
	fd, err := apply.OpenBeneath(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("open %q: %w", name, err)
	}
	names, err := apply.ReadDirNames(fd)
	if err != nil {
		apply.CloseFd(fd)
		return fmt.Errorf("reading %q: %w", name, err)
	}
	// Children are looked up and removed in .gfid/<gfid> (see Entries);
	// through the descriptor read only for a directory without a gfid.
	if !ni.g.IsZero() {
		apply.CloseFd(fd)
		if fd, err = v.openParent(ni.g); err != nil {
			return fmt.Errorf("open %q: %w", name, err)
		}
	}
	for _, child := range names {
		if child == "." || child == ".." {
			continue
		}
		ci, err := v.lookup(fd, child)
		if err == nil && ci.exists {
			err = v.purge(ctx, fd, child, ci, removed, depth+1)
		}
		if err != nil {
			apply.CloseFd(fd)
			return err
		}
	}
	apply.CloseFd(fd)
	if err := apply.Retry0(func() error { return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR) }); err != nil && err != unix.ENOENT {
		return fmt.Errorf("rmdir %q: %w", name, err)
	}
	*removed++
	return nil
}
