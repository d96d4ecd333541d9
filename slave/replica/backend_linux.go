package replica

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/eintr"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
	"github.com/georep/georep/slave/apply"
)

// The replica is an apply.Backend: the engine (package slave/apply) decides
// what an operation does, these methods do it on the replica root and keep
// the gfid index in step.

// OpenDir opens directory g through the gfid index.
func (r *store) OpenDir(g gfid.GFID) (int, error) { return r.openDir(g) }

// OpenReadDir opens directory g through the gfid index.
func (r *store) OpenReadDir(g gfid.GFID) (int, error) { return r.openDir(g) }

// LookupDir returns fd: names are looked up where they are read.
func (r *store) LookupDir(fd int, _ gfid.GFID) (int, error) { return fd, nil }

// Lookup looks name up in the directory dirfd, without following a symlink.
func (r *store) Lookup(dirfd int, name string) (apply.Name, error) {
	st, err := apply.LstatAt(dirfd, name)
	if err == unix.ENOENT {
		return apply.Name{}, nil
	}
	if err != nil {
		return apply.Name{}, err
	}
	g, err := r.gfidOf(apply.AtNode(dirfd, name))
	if err != nil {
		return apply.Name{}, err
	}
	return apply.Name{Exists: true, St: st, GFID: g}, nil
}

// Holds reports whether the name n holds gfid g. As non-root a symlink or
// special file carries no gfid attribute; it holds g when it is the inode
// of g's index entry.
func (r *store) Holds(n apply.Name, g gfid.GFID) bool {
	if !n.Exists {
		return false
	}
	if n.GFID == g {
		return true
	}
	if !n.GFID.IsZero() || r.asRoot || !noUserXattrs(n.St.Mode) {
		return false
	}
	ie, err := r.readIndex(g)
	return err == nil && ie.kind == idxFile && ie.st.Ino == n.St.Ino && ie.st.Dev == n.St.Dev
}

// Locate reads the index entry of g. A directory pointer that no longer
// resolves is stale.
func (r *store) Locate(g gfid.GFID) (apply.Inode, error) {
	ie, err := r.readIndex(g)
	if err != nil {
		return apply.Inode{}, err
	}
	switch ie.kind {
	case idxFile:
		return apply.Inode{Type: ops.TypeOfMode(ie.st.Mode), St: ie.st}, nil
	case idxDir:
		fd, err := r.openDir(g)
		if err == nil {
			apply.CloseFd(fd)
			return apply.Inode{Type: ops.TypeDir}, nil
		}
		if !apply.NotFound(err) {
			return apply.Inode{}, err
		}
		return apply.Inode{Type: ops.TypeDir, Stale: true}, nil
	}
	return apply.Inode{}, nil
}

// DirAt returns the parent and name the index gives directory g.
func (r *store) DirAt(g gfid.GFID) (int, string, error) {
	ie, err := r.readIndex(g)
	if err != nil {
		return -1, "", err
	}
	if ie.kind != idxDir {
		return -1, "", apply.Errorf(unix.ENOTDIR, "gfid %s is not a directory", g)
	}
	dfd, err := r.openDir(g)
	if err != nil {
		return -1, "", err
	}
	apply.CloseFd(dfd)
	cfd, err := r.openDir(ie.parent)
	if err != nil {
		return -1, "", err
	}
	return cfd, ie.name, nil
}

// Create makes the inode, marks it with its gfid and indexes it.
func (r *store) Create(pfd int, e ops.Entry) error {
	switch t := e.Type(); t {
	case ops.TypeDir:
		return r.mkdir(pfd, e)
	case ops.TypeRegular:
		return r.mkfile(pfd, e)
	default:
		return r.mknode(pfd, e, t)
	}
}

// Link creates the name dirfd/name for non-directory g by linking its index
// entry.
func (r *store) Link(g gfid.GFID, in apply.Inode, dirfd int, name string) error {
	sfd, err := r.openShard(treeOfMode(in.St.Mode), g, false)
	if err != nil {
		return err
	}
	defer apply.CloseFd(sfd)
	return eintr.Retry(func() error { return unix.Linkat(sfd, g.String(), dirfd, name, 0) })
}

// Named makes sure the index entry of g, which parent/name (open as
// dirfd/name) holds, exists.
func (r *store) Named(dirfd int, parent gfid.GFID, name string, g gfid.GFID, n apply.Name) error {
	if !n.IsDir() {
		return r.linkIndex(dirfd, name, g)
	}
	ie, err := r.readIndex(g)
	if err != nil && !apply.NotFound(err) {
		return err
	}
	if err == nil && ie.kind == idxDir && ie.parent == parent && ie.name == name {
		return nil
	}
	if err == nil && ie.kind == idxDir {
		if fd, derr := r.openDir(g); derr == nil {
			apply.CloseFd(fd)
			r.log.Warn("directory gfid found at two names; keeping the index entry", "gfid", g.String(), "name", name)
			return nil
		}
	}
	if err == nil && ie.kind == idxFile && ie.st.Nlink > 1 {
		return apply.Errorf(unix.EEXIST, "gfid index holds a %s for directory gfid %s", ops.TypeOfMode(ie.st.Mode), g)
	}
	r.log.Debug("repairing gfid index entry", "gfid", g.String(), "parent", parent.String(), "name", name)
	// What the data tree holds for g is stale (a live regular file was
	// refused above): a directory's entry lives in the links tree only.
	if err := r.dropIndexEntry(dataTree, g); err != nil {
		return err
	}
	return r.setDirIndex(g, parent, name)
}

// Rename renames (ofd, oname), which holds g, to (nfd, nname) in directory
// nparent, replacing what the new name held as rename(2) does, and keeps
// the index consistent.
func (r *store) Rename(g gfid.GFID, isDir bool, ofd int, oname string, nfd int, nparent gfid.GFID, nname string, replaced apply.Name) error {
	if isDir {
		beneath, err := r.isBeneath(nparent, g)
		if err != nil {
			return err
		}
		if beneath {
			return apply.Errorf(unix.EINVAL, "cannot move directory %s into its own subtree (%s)", g, nparent)
		}
	}
	if err := eintr.Retry(func() error { return unix.Renameat(ofd, oname, nfd, nname) }); err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	if isDir {
		if err := r.setDirIndex(g, nparent, nname); err != nil {
			return fmt.Errorf("gfid index: %w", err)
		}
	}
	if !replaced.Exists || replaced.GFID.IsZero() {
		return nil
	}
	_, err := r.Forget(replaced.GFID, replaced)
	return err
}

// Forget drops the index entry of g whose name n went, if that was its last
// name: a directory's when it no longer resolves, a non-directory's when
// the index holds its last link. (As non-root, symlinks and special files
// carry no gfid attribute, so a purge cannot find their index links, which
// stay behind.)
func (r *store) Forget(g gfid.GFID, n apply.Name) (bool, error) {
	if n.IsDir() {
		if g.IsZero() {
			return true, nil
		}
		return true, r.dropDirIndexIfGone(g)
	}
	last := n.St.Nlink <= 1
	if g.IsZero() {
		return last, nil
	}
	ie, err := r.readIndex(g)
	if err == nil && ie.kind == idxFile && ie.st.Ino == n.St.Ino && ie.st.Dev == n.St.Dev {
		last = ie.st.Nlink <= 1
	}
	return last, r.dropFileIndex(g, n.St.Ino)
}

// dropDirIndexIfGone drops directory g's index entry if it no longer resolves.
func (r *store) dropDirIndexIfGone(g gfid.GFID) error {
	fd, err := r.openDir(g)
	if err == nil {
		apply.CloseFd(fd)
		return nil
	}
	if !apply.NotFound(err) {
		return err
	}
	return r.dropDirIndex(g)
}

// OpenNode returns the inode of gfid g: an open directory, or the index
// hardlink of a non-directory (whose link the index holds).
func (r *store) OpenNode(g gfid.GFID) (apply.Handle, error) {
	ie, err := r.readIndex(g)
	if err != nil {
		return apply.Handle{}, err
	}
	switch ie.kind {
	case idxNone:
		if g == gfid.Root || g == gfid.Park {
			break
		}
		return apply.Handle{}, apply.Errorf(unix.ENOENT, "gfid %s not found", g)
	case idxFile:
		sfd, err := r.openShard(ie.tree, g, false)
		if err != nil {
			return apply.Handle{}, err
		}
		return apply.Handle{Node: apply.AtNode(sfd, g.String()), OwnLinks: 1, Done: func() { apply.CloseFd(sfd) }}, nil
	}
	fd, err := r.openDir(g)
	if err != nil {
		return apply.Handle{}, err
	}
	return apply.Handle{Node: apply.FdNode(fd), Done: func() { apply.CloseFd(fd) }}, nil
}

var (
	_ apply.Backend = (*store)(nil)
	_ apply.Batcher = (*store)(nil)
)
