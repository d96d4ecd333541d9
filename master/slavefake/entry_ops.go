package slavefake

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// EntryOps applies namespace operations in order and returns the ones that
// failed; a failed entry does not stop the rest. Every operation is
// idempotent: CREATE of a name already holding the gfid succeeds, RENAME
// whose new name holds the gfid succeeds, UNLINK and RMDIR of a missing
// name (or of a name holding another inode) succeed, and a name holding
// another gfid is an EEXIST failure carrying that gfid. The error is
// always nil: a batch never fails whole.
func (s *Slave) EntryOps(ctx context.Context, entries []ops.Entry) ([]ops.Failure, error) {
	return s.batch(ctx, len(entries), func(i int) string { return describe(entries[i]) },
		func(i int) error { return s.applyEntry(entries[i]) }), nil
}

// describe names an entry for messages.
func describe(e ops.Entry) string {
	s := fmt.Sprintf("%s %s at %s/%q", e.Op, e.GFID, e.Parent, e.Name)
	if e.Op == ops.OpRename {
		s += fmt.Sprintf(" -> %s/%q", e.NewParent, e.NewName)
	}
	return s
}

func (s *Slave) applyEntry(e ops.Entry) error {
	if err := validateEntry(e); err != nil {
		return err
	}
	if apply, ok := map[ops.Op]func(ops.Entry) error{ops.OpLink: s.link, ops.OpRename: s.rename,
		ops.OpUnlink: s.unlink, ops.OpRmdir: s.rmdir}[e.Op]; ok {
		return apply(e)
	}
	return s.create(e) // CREATE, MKDIR, MKNOD, SYMLINK
}

func (s *Slave) unlink(e ops.Entry) error { return s.remove(e, false) }
func (s *Slave) rmdir(e ops.Entry) error  { return s.remove(e, true) }

// validateEntry refuses a malformed entry before anything is touched, as
// the slave's engine does.
func validateEntry(e ops.Entry) error { return ops.ValidateEntry(e, reserved) }

// reserved refuses MetaDir in the root, as every replica kind does.
func reserved(parent gfid.GFID, name string) error {
	if parent == gfid.Root && name == MetaDir {
		return errorf(syscall.EPERM, "reserved name %q in the replica root", name)
	}
	return nil
}

// typeBits are the st_mode type bits of t.
var typeBits = map[ops.FileType]uint32{
	ops.TypeRegular: syscall.S_IFREG, ops.TypeDir: syscall.S_IFDIR, ops.TypeSymlink: syscall.S_IFLNK,
	ops.TypeFifo: syscall.S_IFIFO, ops.TypeChar: syscall.S_IFCHR, ops.TypeBlock: syscall.S_IFBLK,
	ops.TypeSocket: syscall.S_IFSOCK,
}

// existsErr is the EEXIST of a name holding another gfid than wanted.
func existsErr(held gfid.GFID) error {
	return &Error{Errno: syscall.EEXIST, Msg: fmt.Sprintf("name exists and holds gfid %s", held), Existing: held}
}

// create applies CREATE, MKDIR, MKNOD and SYMLINK.
func (s *Slave) create(e ops.Entry) error {
	p, err := s.dir(e.Parent)
	if err != nil {
		return err
	}
	want := e.Type()
	if held, ok := p.children[e.Name]; ok {
		if held != e.GFID {
			return existsErr(held)
		}
		if have := s.inodes[held].typ(); have != want {
			return &Error{Errno: syscall.EEXIST, Msg: fmt.Sprintf("name holds gfid %s as a %s, not a %s", e.GFID, have, want), Existing: e.GFID}
		}
		return nil
	}
	if in := s.inodes[e.GFID]; in != nil {
		have := in.typ()
		if want == ops.TypeDir || have == ops.TypeDir {
			return errorf(syscall.EEXIST, "gfid exists at another name (as a %s)", have)
		}
		if have != want {
			return errorf(syscall.EEXIST, "gfid exists at another name as a %s, not a %s", have, want)
		}
		s.name(e.GFID, e.Parent, e.Name) // another name of an existing inode: a hardlink
		return nil
	}
	now := time.Now()
	in := &inode{mode: typeBits[want] | e.Mode&0o7777, uid: e.UID, gid: e.GID, atime: now, mtime: now, names: map[link]bool{}}
	switch want {
	case ops.TypeDir:
		in.children = map[string]gfid.GFID{}
	case ops.TypeSymlink:
		in.mode, in.target = syscall.S_IFLNK|0o777, e.Target
	case ops.TypeChar, ops.TypeBlock:
		in.rdev = e.Rdev
	}
	s.inodes[e.GFID] = in
	s.name(e.GFID, e.Parent, e.Name)
	return nil
}

// link applies LINK: another name for an existing non-directory.
func (s *Slave) link(e ops.Entry) error {
	p, err := s.dir(e.Parent)
	if err != nil {
		return err
	}
	if held, ok := p.children[e.Name]; ok {
		if held != e.GFID {
			return existsErr(held)
		}
		if s.inodes[held].isDir() {
			return errorf(syscall.EPERM, "LINK to a directory refused")
		}
		return nil
	}
	in := s.inodes[e.GFID]
	switch {
	case in == nil:
		return errorf(syscall.ENOENT, "gfid %s not found", e.GFID)
	case in.isDir():
		return errorf(syscall.EPERM, "LINK to a directory refused")
	}
	s.name(e.GFID, e.Parent, e.Name)
	return nil
}

// remove applies UNLINK (dir false) and RMDIR (dir true). A missing parent
// or name is success; a name that holds another inode is left alone.
func (s *Slave) remove(e ops.Entry, dir bool) error {
	p, err := s.dir(e.Parent)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil
		}
		return err
	}
	held, ok := p.children[e.Name]
	if !ok || held != e.GFID {
		return nil
	}
	in := s.inodes[held]
	switch {
	case in.isDir() && !dir:
		return errorf(syscall.EISDIR, "is a directory (UNLINK refused, use RMDIR)")
	case !in.isDir() && dir:
		return errorf(syscall.ENOTDIR, "not a directory (RMDIR refused)")
	case dir && len(in.children) > 0:
		return errorf(syscall.ENOTEMPTY, "directory not empty")
	}
	s.unname(e.Parent, e.Name)
	return nil
}

// name gives the inode of g the name parent/name, which is free.
func (s *Slave) name(g, parent gfid.GFID, name string) {
	s.inodes[parent].children[name] = g
	s.inodes[g].names[link{parent, name}] = true
}

// unname removes the name parent/name and forgets its inode when that was
// its last name; it reports whether it was.
func (s *Slave) unname(parent gfid.GFID, name string) (last bool) {
	p := s.inodes[parent]
	g := p.children[name]
	delete(p.children, name)
	in := s.inodes[g]
	delete(in.names, link{parent, name})
	if len(in.names) > 0 {
		return false
	}
	delete(s.inodes, g)
	return true
}
