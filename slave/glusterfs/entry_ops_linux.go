package glusterfs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
	"github.com/georep/georep/slave/apply"
)

// ApplyEntries applies entries in order and returns the ones that failed;
// a failed entry does not stop the rest. Every operation is idempotent, as
// in package replica: CREATE of a name already holding the gfid succeeds,
// RENAME whose new name holds the gfid succeeds, UNLINK and RMDIR of a
// missing name (or of a name holding another inode) succeed, and a name
// holding another gfid is an EEXIST failure carrying that gfid. When ctx is
// done, the entries not yet applied fail with ECANCELED.
//
// Runs of creates of non-directories that cannot affect each other (most of
// an initial sync) are applied side by side; everything else in order.
func (v *Volume) ApplyEntries(ctx context.Context, entries []ops.Entry) []ops.Failure {
	do := func(i int) error { return v.applyEntry(entries[i]) }
	what := func(i int) string { return describe(entries[i]) }
	var fails []ops.Failure
	for _, r := range independentRuns(entries) {
		if r[1]-r[0] > 1 {
			fails = append(fails, v.applyParallel(ctx, r[0], r[1], do, what)...)
			continue
		}
		for _, f := range v.applyBatch(ctx, 1, func(int) error { return do(r[0]) }, func(int) string { return what(r[0]) }) {
			f.Index = r[0]
			fails = append(fails, f)
		}
	}
	return fails
}

// applyBatch applies n operations in order, each under the lock.
func (v *Volume) applyBatch(ctx context.Context, n int, do func(i int) error, what func(i int) string) []ops.Failure {
	var fails []ops.Failure
	for i := range n {
		var err error
		if cerr := ctx.Err(); cerr != nil {
			err = apply.Errorf(unix.ECANCELED, "not applied: %v", cerr)
		} else if err = v.lock(); err == nil {
			err = do(i)
			v.mu.Unlock()
		}
		if err != nil {
			fails = append(fails, v.failure(i, err, what))
		}
	}
	return fails
}

func describe(e ops.Entry) string {
	s := fmt.Sprintf("%s %s at %s/%q", e.Op, e.GFID, e.Parent, apply.TruncName(e.Name))
	if e.Op == ops.OpRename {
		s += fmt.Sprintf(" -> %s/%q", e.NewParent, apply.TruncName(e.NewName))
	}
	return s
}

func validateParentName(parent gfid.GFID, name string) error {
	if parent.IsZero() {
		return apply.Errorf(unix.EINVAL, "zero parent gfid")
	}
	if err := ops.ValidateName(name); err != nil {
		return apply.Errorf(unix.EINVAL, "%v", err)
	}
	if parent == gfid.Root && name == metaDir {
		return apply.Errorf(unix.EPERM, "reserved name %q in the replica root", name)
	}
	if parent == gfid.Root && name == gfidDir {
		return apply.Errorf(unix.EPERM, "%s", errReservedGFIDDir)
	}
	return nil
}

// errReservedGFIDDir says why the root's .gfid cannot be replicated to a
// GlusterFS slave volume. A directory of that name can be created (with
// glusterfs.gfid.newfile on .gfid/<root>), but the slave's aux-gfid mount
// answers every lookup of the name with its own virtual directory, so the
// entry could never be found, renamed or removed by name: CREATE replays
// would fail with EEXIST on gfid 00000000-0000-0000-0000-00000000000d,
// RENAME and RMDIR with ENOENT, Purge with EOPNOTSUPP.
const errReservedGFIDDir = `name ".gfid" in the volume root is reserved by GlusterFS's aux-gfid access path on the slave ` +
	`(the slave reaches every inode as .gfid/<gfid>): it cannot be replicated to a GlusterFS slave volume; rename it on the master`

// validateEntry refuses a malformed entry before anything is touched (the
// rules of package replica).
func validateEntry(e ops.Entry) error {
	if e.Op < ops.OpCreate || e.Op > ops.OpRmdir {
		return apply.Errorf(unix.EINVAL, "unknown entry op %d", int(e.Op))
	}
	if e.GFID.IsZero() {
		return apply.Errorf(unix.EINVAL, "zero gfid")
	}
	if e.GFID == gfid.Root || e.GFID == gfid.Park {
		return apply.Errorf(unix.EPERM, "gfid %s is reserved", e.GFID)
	}
	if err := validateParentName(e.Parent, e.Name); err != nil {
		return err
	}
	t := e.Mode & unix.S_IFMT
	switch e.Op {
	case ops.OpRename:
		return validateParentName(e.NewParent, e.NewName)
	case ops.OpCreate:
		if t != 0 && t != unix.S_IFREG {
			return apply.Errorf(unix.EINVAL, "CREATE with mode %#o: not a regular file", e.Mode)
		}
	case ops.OpMkdir:
		if t != 0 && t != unix.S_IFDIR {
			return apply.Errorf(unix.EINVAL, "MKDIR with mode %#o: not a directory", e.Mode)
		}
	case ops.OpMknod:
		switch t {
		case unix.S_IFREG, unix.S_IFIFO, unix.S_IFCHR, unix.S_IFBLK, unix.S_IFSOCK:
		default:
			return apply.Errorf(unix.EINVAL, "MKNOD with mode %#o: not a regular file, fifo, device or socket", e.Mode)
		}
	case ops.OpSymlink:
		switch {
		case e.Target == "":
			return apply.Errorf(unix.EINVAL, "empty symlink target")
		case strings.IndexByte(e.Target, 0) >= 0:
			return apply.Errorf(unix.EINVAL, "symlink target contains a NUL byte")
		case len(e.Target) >= unix.PathMax:
			return apply.Errorf(unix.EINVAL, "symlink target of %d bytes is too long", len(e.Target))
		}
	}
	return nil
}

func (v *Volume) applyEntry(e ops.Entry) error {
	if err := validateEntry(e); err != nil {
		return err
	}
	switch e.Op {
	case ops.OpCreate, ops.OpMkdir, ops.OpMknod, ops.OpSymlink:
		return v.create(e)
	case ops.OpLink:
		return v.link(e)
	case ops.OpRename:
		return v.rename(e)
	case ops.OpUnlink:
		return v.remove(e, false)
	}
	return v.remove(e, true)
}

// wantMode is the st_mode an entry creates.
func wantMode(e ops.Entry) uint32 {
	perm := e.Mode & 0o7777
	switch e.Op {
	case ops.OpMkdir:
		return unix.S_IFDIR | perm
	case ops.OpSymlink:
		return unix.S_IFLNK | 0o777
	case ops.OpMknod:
		return e.Mode
	}
	return unix.S_IFREG | perm
}

func existsErr(ni nameInfo) error {
	if ni.g.IsZero() {
		return &apply.Error{Errno: unix.EEXIST, Msg: "name exists and holds an inode without a gfid"}
	}
	return &apply.Error{Errno: unix.EEXIST, Msg: fmt.Sprintf("name exists and holds gfid %s", ni.g), Existing: ni.g}
}

// statGFID stats the inode of g without following it; ok is false when the
// volume has no such gfid.
func (v *Volume) statGFID(g gfid.GFID) (st unix.Stat_t, ok bool, err error) {
	fd, err := v.openGFID(g, unix.O_PATH)
	if err == unix.ENOENT {
		return st, false, nil
	}
	if err != nil {
		return st, false, fmt.Errorf("lookup gfid %s: %w", g, err)
	}
	defer apply.CloseFd(fd)
	st, err = apply.Fstat(fd)
	return st, err == nil, err
}

// create applies CREATE, MKDIR, MKNOD and SYMLINK.
func (v *Volume) create(e ops.Entry) error {
	pfd, err := v.openParent(e.Parent)
	if err != nil {
		return err
	}
	defer apply.CloseFd(pfd)
	mode := wantMode(e)
	want := ops.TypeOfMode(mode)
	ni, err := v.lookup(pfd, e.Name)
	if err != nil {
		return err
	}
	if ni.exists {
		if ni.g != e.GFID {
			return existsErr(ni)
		}
		if have := ops.TypeOfMode(ni.st.Mode); have != want {
			return &apply.Error{Errno: unix.EEXIST, Msg: fmt.Sprintf("name holds gfid %s as a %s, not a %s", e.GFID, have, want), Existing: e.GFID}
		}
		return nil
	}
	st, ok, err := v.statGFID(e.GFID)
	if err != nil {
		return err
	}
	if ok {
		have := ops.TypeOfMode(st.Mode)
		if want == ops.TypeDir || have == ops.TypeDir {
			return apply.Errorf(unix.EEXIST, "gfid exists at another name (as a %s)", have)
		}
		if have != want {
			return apply.Errorf(unix.EEXIST, "gfid exists at another name as a %s, not a %s", have, want)
		}
		// Another name of an existing inode: a hardlink.
		return v.linkGFID(e.GFID, pfd, e.Name)
	}
	if err := v.newEntry(e.Parent, e.Name, e.GFID, mode, e.Rdev, e.Target); err != nil {
		if err == unix.EEXIST || err == unix.ENODATA {
			// Raced, or the gfid appeared elsewhere: report what is there.
			if ni, lerr := v.lookup(pfd, e.Name); lerr == nil && ni.exists && ni.g != e.GFID {
				return existsErr(ni)
			}
			return apply.Errorf(unix.EEXIST, "create: %v", err)
		}
		if err == unix.ENOENT {
			return apply.Errorf(unix.ENOENT, "parent %s not found", e.Parent)
		}
		return fmt.Errorf("create: %w", err)
	}
	fd, err := v.openGFID(e.GFID, unix.O_PATH)
	if err != nil {
		return fmt.Errorf("open new %s: %w", want, err)
	}
	defer apply.CloseFd(fd)
	n := apply.PathNode(fd)
	if err := n.Chown(e.UID, e.GID); err != nil {
		return fmt.Errorf("chown %d:%d: %w", e.UID, e.GID, err)
	}
	if want != ops.TypeSymlink {
		// After chown, so that setuid and setgid stick.
		if err := n.Chmod(mode & 0o7777); err != nil {
			return fmt.Errorf("chmod %#o: %w", mode&0o7777, err)
		}
	}
	return nil
}

// linkGFID gives the non-directory of gfid g the name dirfd/name.
func (v *Volume) linkGFID(g gfid.GFID, dirfd int, name string) error {
	fd, err := v.openGFID(g, unix.O_PATH)
	if err != nil {
		if err == unix.ENOENT {
			return apply.Errorf(unix.ENOENT, "gfid %s not found", g)
		}
		return err
	}
	defer apply.CloseFd(fd)
	if err := apply.Retry0(func() error { return unix.Linkat(fd, "", dirfd, name, unix.AT_EMPTY_PATH) }); err != nil {
		return fmt.Errorf("link: %w", err)
	}
	return nil
}

// link applies LINK: another name for an existing non-directory.
func (v *Volume) link(e ops.Entry) error {
	pfd, err := v.openParent(e.Parent)
	if err != nil {
		return err
	}
	defer apply.CloseFd(pfd)
	ni, err := v.lookup(pfd, e.Name)
	if err != nil {
		return err
	}
	if ni.exists {
		if ni.g != e.GFID {
			return existsErr(ni)
		}
		if ni.isDir() {
			return apply.Errorf(unix.EPERM, "LINK to a directory refused")
		}
		return nil
	}
	st, ok, err := v.statGFID(e.GFID)
	switch {
	case err != nil:
		return err
	case !ok:
		return apply.Errorf(unix.ENOENT, "gfid %s not found", e.GFID)
	case apply.IsDirMode(st.Mode):
		return apply.Errorf(unix.EPERM, "LINK to a directory refused")
	}
	return v.linkGFID(e.GFID, pfd, e.Name)
}

// rename applies RENAME.
func (v *Volume) rename(e ops.Entry) error {
	nfd, err := v.openParent(e.NewParent)
	if err != nil {
		return err
	}
	defer apply.CloseFd(nfd)
	ofd, err := v.openParent(e.Parent)
	if err != nil && !apply.NotFound(err) {
		return err
	}
	var oi nameInfo
	if err == nil {
		defer apply.CloseFd(ofd)
		if oi, err = v.lookup(ofd, e.Name); err != nil {
			return err
		}
	}
	ni, err := v.lookup(nfd, e.NewName)
	if err != nil {
		return err
	}
	oldHolds, newHolds := oi.exists && oi.g == e.GFID, ni.exists && ni.g == e.GFID
	switch {
	case oldHolds && newHolds:
		if e.Parent == e.NewParent && e.Name == e.NewName {
			return nil
		}
		if oi.isDir() || ni.isDir() {
			return &apply.Error{Errno: unix.EEXIST, Msg: fmt.Sprintf("directory gfid %s is held by both names", e.GFID), Existing: e.GFID}
		}
		// Two hardlinks of one inode: rename(2) would do nothing.
		if err := apply.Retry0(func() error { return unix.Unlinkat(ofd, e.Name, 0) }); err != nil && err != unix.ENOENT {
			return fmt.Errorf("unlink old name: %w", err)
		}
		return nil
	case oldHolds:
		return v.move(ofd, e.Name, nfd, e.NewName)
	case newHolds:
		return nil // already renamed (a replay)
	}
	// The old name does not hold the gfid: take it from wherever it is.
	st, ok, err := v.statGFID(e.GFID)
	switch {
	case err != nil:
		return err
	case !ok:
		return apply.Errorf(unix.ENOENT, "gfid %s not found", e.GFID)
	case apply.IsDirMode(st.Mode):
		dfd, name, err := v.dirLocation(e.GFID)
		if err != nil {
			return err
		}
		defer apply.CloseFd(dfd)
		return v.move(dfd, name, nfd, e.NewName)
	}
	if !ni.exists {
		return v.linkGFID(e.GFID, nfd, e.NewName)
	}
	if ni.isDir() {
		return apply.Errorf(unix.EISDIR, "new name is a directory")
	}
	tmp := ".georep." + e.GFID.String() + ".tmp"
	_ = apply.Retry0(func() error { return unix.Unlinkat(nfd, tmp, 0) })
	if err := v.linkGFID(e.GFID, nfd, tmp); err != nil {
		return err
	}
	if err := apply.Retry0(func() error { return unix.Renameat(nfd, tmp, nfd, e.NewName) }); err != nil {
		_ = apply.Retry0(func() error { return unix.Unlinkat(nfd, tmp, 0) })
		return fmt.Errorf("rename: %w", err)
	}
	return nil
}

func (v *Volume) move(ofd int, oname string, nfd int, nname string) error {
	if err := apply.Retry0(func() error { return unix.Renameat(ofd, oname, nfd, nname) }); err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	return nil
}

// dirLocation returns the parent (O_PATH, opened by its gfid) and name of
// directory g, where the volume holds it now.
//
// The volume names a directory's path in two virtual attributes, and
// neither is enough alone: glusterfs.ancestry.path is read from the
// bricks' own handle links (.glusterfs/ab/cd/<gfid> ->
// ../../xy/zw/<pargfid>/<name>, rewritten by every rename, so current),
// but answered ENODATA for a directory renamed a few times (GlusterFS
// 10.3); glusterfs.gfid2path is the brick's in-memory inode table
// (inode_path), which can still name where the directory was. And the path
// is never walked through the kernel: on an aux-gfid mount whose
// directories are renamed through .gfid/<pargfid>, a walk from the mount
// root answered ENOENT for a component that was there (seen for one
// Entries call in five after random directory renames, on one and on two
// bricks). So each candidate path is resolved one component at a time by
// gfid (lookup in .gfid/<pargfid>, then .gfid/<gfid> of what is found
// there), and the last component must hold g. A directory found at none of
// them is ESTALE: the caller fails and the master retries.
func (v *Volume) dirLocation(g gfid.GFID) (int, string, error) {
	paths, err := v.dirPaths(g)
	if err != nil {
		return -1, "", err
	}
	var errs []error
	for _, path := range paths {
		pfd, name, err := v.resolvePath(g, path)
		if err == nil {
			return pfd, name, nil
		}
		errs = append(errs, err)
	}
	return -1, "", apply.Errorf(unix.ESTALE, "directory %s: %v", g, errors.Join(errs...))
}

// resolvePath finds directory g at path ("/a/b"), walking it by gfid from
// the root; it returns the parent (O_PATH) and the name holding g.
func (v *Volume) resolvePath(g gfid.GFID, path string) (int, string, error) {
	comps := strings.Split(path[1:], "/")
	pfd, err := v.openGFID(gfid.Root, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return -1, "", fmt.Errorf("open the volume root: %w", err)
	}
	for i, c := range comps {
		ni, err := v.lookup(pfd, c)
		if err != nil {
			apply.CloseFd(pfd)
			return -1, "", fmt.Errorf("at %q: %w", path, err)
		}
		if i == len(comps)-1 {
			if !ni.exists || ni.g != g {
				apply.CloseFd(pfd)
				return -1, "", apply.Errorf(unix.ESTALE, "not at %q", path)
			}
			return pfd, c, nil
		}
		if !ni.isDir() || ni.g.IsZero() {
			apply.CloseFd(pfd)
			return -1, "", apply.Errorf(unix.ESTALE, "not at %q: %q is not a directory there", path, c)
		}
		next, err := v.openParent(ni.g)
		apply.CloseFd(pfd)
		if err != nil {
			return -1, "", fmt.Errorf("at %q: %w", path, err)
		}
		pfd = next
	}
	apply.CloseFd(pfd)
	return -1, "", apply.Errorf(unix.EIO, "empty path %q", path) // not reached: dirPaths refuses "/"
}

// dirPaths is where the volume says directory g is, paths from the volume
// root ("/a/b"): glusterfs.ancestry.path first, then glusterfs.gfid2path
// when it names another path (see dirLocation). It fails with ENOENT when
// the volume has no gfid g, ENOTDIR when g is not a directory.
func (v *Volume) dirPaths(g gfid.GFID) ([]string, error) {
	fd, err := v.openGFID(g, unix.O_PATH)
	if err == unix.ENOENT {
		return nil, apply.Errorf(unix.ENOENT, "gfid %s not found", g)
	}
	if err != nil {
		return nil, fmt.Errorf("lookup gfid %s: %w", g, err)
	}
	defer apply.CloseFd(fd)
	st, err := apply.Fstat(fd)
	if err != nil {
		return nil, err
	}
	if !apply.IsDirMode(st.Mode) {
		return nil, apply.Errorf(unix.ENOTDIR, "gfid %s is a %s, not a directory", g, ops.TypeOfMode(st.Mode))
	}
	var paths []string
	var errs []error
	for _, attr := range []string{ancestryAttr, gfid2pathAttr} {
		path, err := readDirPath(apply.PathNode(fd), attr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s of %s: %w", attr, g, err))
			continue
		}
		if !slices.Contains(paths, path) {
			paths = append(paths, path)
		}
	}
	if len(paths) == 0 {
		return nil, errors.Join(errs...)
	}
	return paths, nil
}

// readDirPath reads a directory path attribute and checks it is an
// absolute path of valid names other than "/".
func readDirPath(n apply.Node, attr string) (string, error) {
	b, err := n.Getxattr(attr)
	if err != nil {
		return "", err
	}
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	path := string(b)
	if !strings.HasPrefix(path, "/") || path == "/" || strings.Contains(path, "//") {
		return "", apply.Errorf(unix.EIO, "not a directory path: %q", apply.TruncName(path))
	}
	for _, c := range strings.Split(path[1:], "/") {
		if err := ops.ValidateName(c); err != nil {
			return "", apply.Errorf(unix.EIO, "%v", err)
		}
	}
	return path, nil
}

// remove applies UNLINK (dir false) and RMDIR (dir true). A missing parent
// or name is success; a name holding another inode is left alone.
func (v *Volume) remove(e ops.Entry, dir bool) error {
	pfd, err := v.openParent(e.Parent)
	if apply.NotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer apply.CloseFd(pfd)
	ni, err := v.lookup(pfd, e.Name)
	if err != nil || !ni.exists {
		return err
	}
	if ni.g != e.GFID {
		v.log.Debug("remove: name holds another inode, left alone", "op", e.Op.String(), "gfid", e.GFID.String(), "found", ni.g.String(), "name", e.Name)
		return nil
	}
	switch {
	case ni.isDir() && !dir:
		return apply.Errorf(unix.EISDIR, "is a directory (UNLINK refused, use RMDIR)")
	case !ni.isDir() && dir:
		return apply.Errorf(unix.ENOTDIR, "not a directory (RMDIR refused)")
	}
	flags, what := 0, "unlink"
	if dir {
		flags, what = unix.AT_REMOVEDIR, "rmdir"
	}
	if err := apply.Retry0(func() error { return unix.Unlinkat(pfd, e.Name, flags) }); err != nil && err != unix.ENOENT {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
