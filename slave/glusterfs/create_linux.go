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
	fd, st, err := v.openGFIDStat(g, unix.O_PATH)
	if err == unix.ENOENT {
		return st, false, nil
	}
	if err != nil {
		return st, false, fmt.Errorf("lookup gfid %s: %w", g, err)
	}
	apply.CloseFd(fd)
	return st, true, nil
}

// Create makes the inode with gsyncd's glusterfs.gfid.newfile on
// .gfid/<parent>, then gives it e's owner and mode.
func (v *volume) Create(pfd int, e ops.Entry) error {
	mode := wantMode(e)
	want := ops.TypeOfMode(mode)
	if err := v.newEntryAt(pfd, e.Name, e.GFID, mode, e.Rdev, e.Target); err != nil {
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
	fd, st, err := v.openGFIDStat(e.GFID, unix.O_PATH)
	if err != nil {
		return fmt.Errorf("open new %s: %w", want, err)
	}
	defer apply.CloseFd(fd)
	// The new inode, as openGFID just stat-ed it (a FUSE round trip to the
	// bricks each): glusterfs.gfid.newfile made it owned by 0:0 (or the
	// group of a setgid parent) with the blob's mode and umask 0, so for a
	// root-owned entry neither chown nor chmod has anything to change.
	// Each is done when the inode differs, never skipped on assumption.
	n := apply.PathNode(fd)
	chowned := false
	if st.Uid != e.UID || st.Gid != e.GID {
		if err := n.Chown(e.UID, e.GID); err != nil {
			return fmt.Errorf("chown %d:%d: %w", e.UID, e.GID, err)
		}
		chowned = true
	}
	// After chown, so that setuid and setgid stick: chown may have cleared
	// them, so a mode with either is set again whenever chown ran.
	if want != ops.TypeSymlink && (st.Mode&0o7777 != mode&0o7777 || chowned && mode&(unix.S_ISUID|unix.S_ISGID) != 0) {
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
