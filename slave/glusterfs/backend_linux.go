package glusterfs

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/eintr"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
	"github.com/georep/georep/slave/apply"
)

// The volume is an apply.Backend: the engine (package slave/apply) decides
// what an operation does, these methods do it through the aux-gfid mount.
// GlusterFS keeps every inode's gfid itself, so there is no record of gfids
// to keep in step.

// OpenDir opens directory g as .gfid/<g> (O_PATH) for *at calls.
func (v *volume) OpenDir(g gfid.GFID) (int, error) {
	fd, err := v.openGFID(g, unix.O_PATH|unix.O_DIRECTORY)
	switch {
	case err == nil:
		return fd, nil
	case err == unix.ENOENT || err == unix.ENOTDIR:
		return -1, err
	case err == unix.ELOOP:
		return -1, unix.ENOTDIR
	}
	return -1, fmt.Errorf("open directory %s: %w", g, err)
}

// OpenReadDir opens directory g for reading (openDirByGFID).
func (v *volume) OpenReadDir(g gfid.GFID) (int, error) { return v.openDirByGFID(g) }

// LookupDir opens .gfid/<g>: names are looked up there, as everywhere else,
// not through the descriptor opened for reading: lookups by name in a
// directory reached by name answered ENOENT for names renamed into it
// through .gfid/<dir> (see dirLocation). A directory without a gfid is
// looked up in where it was read.
func (v *volume) LookupDir(fd int, g gfid.GFID) (int, error) {
	if g.IsZero() {
		return fd, nil
	}
	return v.OpenDir(g)
}

// Holds reports whether n carries gfid g.
func (v *volume) Holds(n apply.Name, g gfid.GFID) bool { return n.Exists && n.GFID == g }

// Locate stats .gfid/<g>.
func (v *volume) Locate(g gfid.GFID) (apply.Inode, error) {
	st, ok, err := v.statGFID(g)
	if err != nil || !ok {
		return apply.Inode{}, err
	}
	return apply.Inode{Type: ops.TypeOfMode(st.Mode), St: st}, nil
}

// DirAt finds where the volume holds directory g (dirLocation).
func (v *volume) DirAt(g gfid.GFID) (int, string, error) { return v.dirLocation(g) }

// Link gives the non-directory g the name dirfd/name.
func (v *volume) Link(g gfid.GFID, _ apply.Inode, dirfd int, name string) error {
	return v.linkGFID(g, dirfd, name)
}

// Rename renames ofd/oname to nfd/nname.
func (v *volume) Rename(_ gfid.GFID, _ bool, ofd int, oname string, nfd int, _ gfid.GFID, nname string, _ apply.Name) error {
	if err := eintr.Retry(func() error { return unix.Renameat(ofd, oname, nfd, nname) }); err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	return nil
}

// Named has nothing to do: the name found holds the gfid.
func (v *volume) Named(int, gfid.GFID, string, gfid.GFID, apply.Name) error { return nil }

// Forget has nothing to drop; a non-directory's last name went when it had
// one link.
func (v *volume) Forget(_ gfid.GFID, n apply.Name) (bool, error) {
	return n.IsDir() || n.St.Nlink <= 1, nil
}

// OpenNode opens .gfid/<g> O_PATH.
func (v *volume) OpenNode(g gfid.GFID) (apply.Handle, error) {
	fd, err := v.openNode(g)
	if err != nil {
		return apply.Handle{}, err
	}
	return apply.Handle{Node: apply.PathNode(fd), Done: func() { apply.CloseFd(fd) }}, nil
}

var _ apply.Backend = (*volume)(nil)
