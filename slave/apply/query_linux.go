package apply

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// AttrOf is the Attr of stat result st.
func AttrOf(st unix.Stat_t) ops.Attr {
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
func (en *Engine) Stat(ctx context.Context, g gfid.GFID) (ops.Attr, error) {
	if err := ctx.Err(); err != nil {
		return ops.Attr{}, err
	}
	if g.IsZero() {
		return ops.Attr{}, Errorf(unix.EINVAL, "stat: zero gfid")
	}
	if err := en.lock(); err != nil {
		return ops.Attr{}, err
	}
	defer en.mu.Unlock()
	h, err := en.b.OpenNode(g)
	if err != nil {
		return ops.Attr{}, fmt.Errorf("stat %s: %w", g, err)
	}
	defer h.Done()
	st, err := h.Node.Stat()
	if err != nil {
		return ops.Attr{}, fmt.Errorf("stat %s: %w", g, err)
	}
	a := AttrOf(st)
	a.Nlink -= min(a.Nlink, h.OwnLinks)
	if a.Type == ops.TypeSymlink {
		if a.Target, err = h.Node.Readlink(); err != nil {
			return ops.Attr{}, fmt.Errorf("stat %s: readlink: %w", g, err)
		}
	}
	return a, nil
}

// Entries lists the directory of gfid dir, sorted by name, each name with
// its gfid. georep's .georep directory (and Config.Hidden) is never listed.
func (en *Engine) Entries(ctx context.Context, dir gfid.GFID) ([]ops.DirEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if dir.IsZero() {
		return nil, Errorf(unix.EINVAL, "entries: zero gfid")
	}
	if err := en.lock(); err != nil {
		return nil, err
	}
	defer en.mu.Unlock()
	fd, err := en.b.OpenReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("entries of %s: %w", dir, err)
	}
	defer CloseFd(fd)
	lfd, err := en.b.LookupDir(fd, dir)
	if err != nil {
		return nil, fmt.Errorf("entries of %s: %w", dir, err)
	}
	if lfd != fd {
		defer CloseFd(lfd)
	}
	names, err := ReadDirNames(fd)
	if err != nil {
		return nil, fmt.Errorf("entries of %s: reading directory: %w", dir, err)
	}
	slices.Sort(names)
	out := make([]ops.DirEntry, 0, len(names))
	for _, name := range names {
		if dir == gfid.Root && en.hidden(name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ni, err := en.b.Lookup(lfd, name)
		if err != nil {
			return nil, fmt.Errorf("entries of %s: %q: %w", dir, name, err)
		}
		if !ni.Exists {
			continue // removed meanwhile
		}
		out = append(out, ops.DirEntry{Name: name, GFID: ni.GFID, Type: ops.TypeOfMode(ni.St.Mode)})
	}
	return out, nil
}

// hidden reports whether Entries leaves name in the root out.
func (en *Engine) hidden(name string) bool {
	_, reserved := en.cfg.Reserved[name]
	return name == MetaDir || reserved || slices.Contains(en.cfg.Hidden, name)
}

// xtimeAttr is the attribute holding master volume volumeID's xtime.
func (en *Engine) xtimeAttr(volumeID string) (string, error) {
	vol, err := gfid.Parse(volumeID)
	if err != nil {
		return "", Errorf(unix.EINVAL, "volume id: %v", err)
	}
	return en.cfg.Namespace + ".georep." + vol.String() + ".xtime", nil
}

// SetXtime records master volume volumeID's xtime (sec, nsec) on the inode of
// gfid g, in the attribute <namespace>.georep.<volumeID>.xtime as 8+4 bytes
// big endian.
func (en *Engine) SetXtime(ctx context.Context, g gfid.GFID, volumeID string, sec int64, nsec int32) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	attr, err := en.xtimeAttr(volumeID)
	if err != nil {
		return fmt.Errorf("set xtime on %s: %w", g, err)
	}
	if g.IsZero() {
		return Errorf(unix.EINVAL, "set xtime: zero gfid")
	}
	if nsec < 0 || nsec >= 1e9 {
		return Errorf(unix.EINVAL, "set xtime on %s: nanoseconds %d out of range", g, nsec)
	}
	if err := en.lock(); err != nil {
		return err
	}
	defer en.mu.Unlock()
	h, err := en.b.OpenNode(g)
	if err != nil {
		return fmt.Errorf("set xtime on %s: %w", g, err)
	}
	defer h.Done()
	var v [12]byte
	binary.BigEndian.PutUint64(v[:8], uint64(sec))
	binary.BigEndian.PutUint32(v[8:], uint32(nsec))
	if err := h.Node.Setxattr(attr, v[:]); err != nil {
		return fmt.Errorf("set xtime on %s: %s: %w", g, attr, err)
	}
	return nil
}

// Xtime reads master volume volumeID's xtime from the inode of gfid g; ok is
// false when the inode carries none.
func (en *Engine) Xtime(ctx context.Context, g gfid.GFID, volumeID string) (sec int64, nsec int32, ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, false, err
	}
	attr, err := en.xtimeAttr(volumeID)
	if err != nil {
		return 0, 0, false, fmt.Errorf("xtime of %s: %w", g, err)
	}
	if g.IsZero() {
		return 0, 0, false, Errorf(unix.EINVAL, "xtime: zero gfid")
	}
	if err := en.lock(); err != nil {
		return 0, 0, false, err
	}
	defer en.mu.Unlock()
	h, err := en.b.OpenNode(g)
	if err != nil {
		return 0, 0, false, fmt.Errorf("xtime of %s: %w", g, err)
	}
	defer h.Done()
	v, err := h.Node.Getxattr(attr)
	switch {
	case err == unix.ENODATA:
		return 0, 0, false, nil
	case err != nil:
		return 0, 0, false, fmt.Errorf("xtime of %s: %s: %w", g, attr, err)
	case len(v) != 12:
		return 0, 0, false, Errorf(unix.EINVAL, "xtime of %s: %s holds %d bytes, want 12", g, attr, len(v))
	}
	return int64(binary.BigEndian.Uint64(v[:8])), int32(binary.BigEndian.Uint32(v[8:])), true, nil
}
