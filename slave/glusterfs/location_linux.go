package glusterfs

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
	"github.com/georep/georep/slave/apply"
)

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
func (v *volume) dirLocation(g gfid.GFID) (int, string, error) {
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
func (v *volume) resolvePath(g gfid.GFID, path string) (int, string, error) {
	comps := strings.Split(path[1:], "/")
	pfd, err := v.openGFID(gfid.Root, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return -1, "", fmt.Errorf("open the volume root: %w", err)
	}
	for i, c := range comps {
		ni, err := v.Lookup(pfd, c)
		if err != nil {
			apply.CloseFd(pfd)
			return -1, "", fmt.Errorf("at %q: %w", path, err)
		}
		if i == len(comps)-1 {
			if !ni.Exists || ni.GFID != g {
				apply.CloseFd(pfd)
				return -1, "", apply.Errorf(unix.ESTALE, "not at %q", path)
			}
			return pfd, c, nil
		}
		if !ni.IsDir() || ni.GFID.IsZero() {
			apply.CloseFd(pfd)
			return -1, "", apply.Errorf(unix.ESTALE, "not at %q: %q is not a directory there", path, c)
		}
		next, err := v.OpenDir(ni.GFID)
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
func (v *volume) dirPaths(g gfid.GFID) ([]string, error) {
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
