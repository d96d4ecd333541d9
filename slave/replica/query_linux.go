package replica

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

func attrOf(st unix.Stat_t) ops.Attr {
	return ops.Attr{
		Type:  ops.TypeOfMode(st.Mode),
		Mode:  st.Mode,
		UID:   st.Uid,
		GID:   st.Gid,
		Size:  uint64(st.Size),
		Mtime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
		Nlink: uint64(st.Nlink),
		Rdev:  st.Rdev,
	}
}

// Stat describes the inode of gfid g. For an unknown gfid the error wraps
// fs.ErrNotExist.
func (r *Replica) Stat(ctx context.Context, g gfid.GFID) (ops.Attr, error) {
	if err := ctx.Err(); err != nil {
		return ops.Attr{}, err
	}
	if g.IsZero() {
		return ops.Attr{}, apply.Errorf(unix.EINVAL, "stat: zero gfid")
	}
	if err := r.lock(); err != nil {
		return ops.Attr{}, err
	}
	defer r.mu.Unlock()
	n, isDir, done, err := r.openNode(g)
	if err != nil {
		return ops.Attr{}, fmt.Errorf("stat %s: %w", g, err)
	}
	defer done()
	st, err := n.Stat()
	if err != nil {
		return ops.Attr{}, fmt.Errorf("stat %s: %w", g, err)
	}
	a := attrOf(st)
	if !isDir && a.Nlink > 0 {
		a.Nlink-- // the index's own link
	}
	if a.Type == ops.TypeSymlink {
		if a.Target, err = n.Readlink(); err != nil {
			return ops.Attr{}, fmt.Errorf("stat %s: readlink: %w", g, err)
		}
	}
	return a, nil
}

// Entries lists the directory of gfid dir, sorted by name. The replica's own
// .georep directory is never listed.
func (r *Replica) Entries(ctx context.Context, dir gfid.GFID) ([]ops.DirEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if dir.IsZero() {
		return nil, apply.Errorf(unix.EINVAL, "entries: zero gfid")
	}
	if err := r.lock(); err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	fd, err := r.openDir(dir)
	if err != nil {
		return nil, fmt.Errorf("entries of %s: %w", dir, err)
	}
	defer apply.CloseFd(fd)
	names, err := apply.ReadDirNames(fd)
	if err != nil {
		return nil, fmt.Errorf("entries of %s: reading directory: %w", dir, err)
	}
	slices.Sort(names)
	out := make([]ops.DirEntry, 0, len(names))
	for _, name := range names {
		if dir == gfid.Root && name == metaDir {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ni, err := r.lookup(fd, name)
		if err != nil {
			return nil, fmt.Errorf("entries of %s: %q: %w", dir, name, err)
		}
		if !ni.exists {
			continue // removed meanwhile
		}
		out = append(out, ops.DirEntry{Name: name, GFID: ni.g, Type: ops.TypeOfMode(ni.st.Mode)})
	}
	return out, nil
}

// xtimeAttr is the attribute holding master volume vol's xtime.
func (r *Replica) xtimeAttr(volumeID string) (string, error) {
	vol, err := gfid.Parse(volumeID)
	if err != nil {
		return "", apply.Errorf(unix.EINVAL, "volume id: %v", err)
	}
	return r.ns + ".georep." + vol.String() + ".xtime", nil
}

// SetXtime records master volume volumeID's xtime (sec, nsec) on the inode of
// gfid g, in the attribute <ns>.georep.<volumeID>.xtime as 8+4 bytes big
// endian.
func (r *Replica) SetXtime(ctx context.Context, g gfid.GFID, volumeID string, sec int64, nsec int32) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	attr, err := r.xtimeAttr(volumeID)
	if err != nil {
		return fmt.Errorf("set xtime on %s: %w", g, err)
	}
	if g.IsZero() {
		return apply.Errorf(unix.EINVAL, "set xtime: zero gfid")
	}
	if nsec < 0 || nsec >= 1e9 {
		return apply.Errorf(unix.EINVAL, "set xtime on %s: nanoseconds %d out of range", g, nsec)
	}
	if err := r.lock(); err != nil {
		return err
	}
	defer r.mu.Unlock()
	n, _, done, err := r.openNode(g)
	if err != nil {
		return fmt.Errorf("set xtime on %s: %w", g, err)
	}
	defer done()
	var v [12]byte
	binary.BigEndian.PutUint64(v[:8], uint64(sec))
	binary.BigEndian.PutUint32(v[8:], uint32(nsec))
	if err := n.Setxattr(attr, v[:]); err != nil {
		return fmt.Errorf("set xtime on %s: %s: %w", g, attr, err)
	}
	return nil
}

// Xtime reads master volume volumeID's xtime from the inode of gfid g; ok is
// false when the inode carries none.
func (r *Replica) Xtime(ctx context.Context, g gfid.GFID, volumeID string) (sec int64, nsec int32, ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, false, err
	}
	attr, err := r.xtimeAttr(volumeID)
	if err != nil {
		return 0, 0, false, fmt.Errorf("xtime of %s: %w", g, err)
	}
	if g.IsZero() {
		return 0, 0, false, apply.Errorf(unix.EINVAL, "xtime: zero gfid")
	}
	if err := r.lock(); err != nil {
		return 0, 0, false, err
	}
	defer r.mu.Unlock()
	n, _, done, err := r.openNode(g)
	if err != nil {
		return 0, 0, false, fmt.Errorf("xtime of %s: %w", g, err)
	}
	defer done()
	v, err := n.Getxattr(attr)
	switch {
	case err == unix.ENODATA:
		return 0, 0, false, nil
	case err != nil:
		return 0, 0, false, fmt.Errorf("xtime of %s: %s: %w", g, attr, err)
	case len(v) != 12:
		return 0, 0, false, apply.Errorf(unix.EINVAL, "xtime of %s: %s holds %d bytes, want 12", g, attr, len(v))
	}
	return int64(binary.BigEndian.Uint64(v[:8])), int32(binary.BigEndian.Uint32(v[8:])), true, nil
}

// Purge removes parent/name, recursively when it is a directory, and drops
// the index entries of the inodes whose last name went. When only is not
// zero, the name is removed only if it holds that gfid (otherwise nothing
// happens). A missing name is not an error. removed counts the inodes
// removed: directories, and non-directories whose last name was removed.
// (As non-root, symlinks and special files carry no gfid attribute, so their
// index links cannot be found and stay behind.)
func (r *Replica) Purge(ctx context.Context, parent gfid.GFID, name string, only gfid.GFID) (removed uint64, err error) {
	if err := validateParentName(parent, name); err != nil {
		return 0, fmt.Errorf("purge %s/%q: %w", parent, apply.TruncName(name), err)
	}
	if err := r.lock(); err != nil {
		return 0, err
	}
	defer r.mu.Unlock()
	pfd, err := r.openParent(parent)
	if err != nil {
		return 0, fmt.Errorf("purge %s/%q: %w", parent, name, err)
	}
	defer apply.CloseFd(pfd)
	ni, err := r.lookup(pfd, name)
	if err != nil {
		return 0, fmt.Errorf("purge %s/%q: %w", parent, name, err)
	}
	if !ni.exists {
		return 0, nil
	}
	if !only.IsZero() && !r.holds(ni, only) {
		r.log.Debug("purge: name holds another gfid, left alone", "parent", parent.String(), "name", name, "want", only.String(), "found", ni.g.String())
		return 0, nil
	}
	if ni.g == gfid.Root || ni.g == gfid.Park {
		return 0, apply.Errorf(unix.EPERM, "purge %s/%q: refusing to remove gfid %s", parent, name, ni.g)
	}
	err = r.purge(ctx, pfd, name, ni, &removed, 0)
	if err != nil {
		return removed, fmt.Errorf("purge %s/%q: %w", parent, name, err)
	}
	return removed, nil
}

// maxPurgeDepth bounds the recursion (and the directory descriptors held) of
// a purge.
const maxPurgeDepth = 1024

func (r *Replica) purge(ctx context.Context, dirfd int, name string, ni nameInfo, removed *uint64, depth int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !ni.isDir() {
		if err := apply.Retry0(func() error { return unix.Unlinkat(dirfd, name, 0) }); err != nil && err != unix.ENOENT {
			return fmt.Errorf("unlink %q: %w", name, err)
		}
		last := ni.st.Nlink <= 1
		if !ni.g.IsZero() {
			ie, err := r.readIndex(ni.g)
			if err == nil && ie.kind == idxFile && ie.st.Ino == ni.st.Ino && ie.st.Dev == ni.st.Dev {
				last = ie.st.Nlink <= 1
				if err := r.dropFileIndex(ni.g, ni.st.Ino); err != nil {
					return fmt.Errorf("gfid index of %q: %w", name, err)
				}
			}
		}
		if last {
			*removed++
		}
		return nil
	}
	if depth >= maxPurgeDepth {
		return apply.Errorf(unix.ELOOP, "directory tree deeper than %d levels", maxPurgeDepth)
	}
	fd, err := apply.OpenDirAt(dirfd, name)
	if err != nil {
		return fmt.Errorf("open %q: %w", name, err)
	}
	names, err := apply.ReadDirNames(fd)
	if err != nil {
		apply.CloseFd(fd)
		return fmt.Errorf("reading %q: %w", name, err)
	}
	for _, child := range names {
		ci, err := r.lookup(fd, child)
		if err == nil && ci.exists {
			err = r.purge(ctx, fd, child, ci, removed, depth+1)
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
	if !ni.g.IsZero() {
		if err := r.dropDirIndexIfGone(ni.g); err != nil {
			return fmt.Errorf("gfid index of %q: %w", name, err)
		}
	}
	return nil
}
