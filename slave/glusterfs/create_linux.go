package glusterfs

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/eintr"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
	"github.com/georep/georep/slave/apply"
)

// errReservedGFIDDir says why the root's .gfid cannot be replicated to a
// GlusterFS slave volume. A directory of that name can be created (with
// glusterfs.gfid.newfile on .gfid/<root>), but the slave's aux-gfid mount
// answers every lookup of the name with its own virtual directory, so the
// entry could never be found, renamed or removed by name: CREATE replays
// would fail with EEXIST on gfid 00000000-0000-0000-0000-00000000000d,
// RENAME and RMDIR with ENOENT, Purge with EOPNOTSUPP.
const errReservedGFIDDir = `name ".gfid" in the volume root is reserved by GlusterFS's aux-gfid access path on the slave ` +
	`(the slave reaches every inode as .gfid/<gfid>): it cannot be replicated to a GlusterFS slave volume; rename it on the master`

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

// statGFID stats the inode of g without following it; ok is false when the
// volume has no such gfid.
func (v *volume) statGFID(g gfid.GFID) (st unix.Stat_t, ok bool, err error) {
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

// Create makes the inode with gsyncd's glusterfs.gfid.newfile on
// .gfid/<parent>, then gives it e's owner and mode.
func (v *volume) Create(pfd int, e ops.Entry) error {
	mode := wantMode(e)
	want := ops.TypeOfMode(mode)
	if err := v.newEntry(e.Parent, e.Name, e.GFID, mode, e.Rdev, e.Target); err != nil {
		if err == unix.EEXIST || err == unix.ENODATA {
			// Raced, or the gfid appeared elsewhere: report what is there.
			if ni, lerr := v.Lookup(pfd, e.Name); lerr == nil && ni.Exists && ni.GFID != e.GFID {
				return apply.ExistsErr(ni)
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
func (v *volume) linkGFID(g gfid.GFID, dirfd int, name string) error {
	fd, err := v.openGFID(g, unix.O_PATH)
	if err != nil {
		if err == unix.ENOENT {
			return apply.Errorf(unix.ENOENT, "gfid %s not found", g)
		}
		return err
	}
	defer apply.CloseFd(fd)
	if err := eintr.Retry(func() error { return unix.Linkat(fd, "", dirfd, name, unix.AT_EMPTY_PATH) }); err != nil {
		return fmt.Errorf("link: %w", err)
	}
	return nil
}
