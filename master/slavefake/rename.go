package slavefake

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// rename applies RENAME.
func (s *Slave) rename(e ops.Entry) error {
	np, err := s.dir(e.NewParent)
	if err != nil {
		return err
	}
	var oldHeld gfid.GFID
	var oldOK bool
	op, err := s.dir(e.Parent)
	switch {
	case err == nil:
		oldHeld, oldOK = op.children[e.Name]
	case !errors.Is(err, syscall.ENOENT):
		return err
	}
	newHeld, newOK := np.children[e.NewName]
	oldHolds, newHolds := oldOK && oldHeld == e.GFID, newOK && newHeld == e.GFID
	switch {
	case oldHolds && newHolds:
		if e.Parent == e.NewParent && e.Name == e.NewName {
			return nil
		}
		if s.inodes[e.GFID].isDir() {
			return &Error{Errno: syscall.EEXIST, Msg: fmt.Sprintf("directory gfid %s is held by both names", e.GFID), Existing: e.GFID}
		}
		// Two hardlinks of the same inode: rename(2) would do nothing.
		s.unname(e.Parent, e.Name)
		return nil
	case oldHolds:
		return s.move(e.GFID, e.Parent, e.Name, e.NewParent, e.NewName)
	case newHolds:
		return nil // already renamed (a replay)
	}
	return s.renameFromElsewhere(e)
}

// renameFromElsewhere applies a RENAME whose old name does not hold the
// gfid: it takes the inode from wherever it is.
func (s *Slave) renameFromElsewhere(e ops.Entry) error {
	in := s.inodes[e.GFID]
	switch {
	case in == nil:
		return errorf(syscall.ENOENT, "gfid %s not found", e.GFID)
	case in.isDir():
		for l := range in.names { // a directory has one name
			return s.move(e.GFID, l.parent, l.name, e.NewParent, e.NewName)
		}
		return errorf(syscall.ESTALE, "directory %s has no name", e.GFID)
	}
	// A non-directory: give it the new name too, replacing what the new
	// name holds as rename(2) would.
	held, ok := s.inodes[e.NewParent].children[e.NewName]
	if ok {
		if s.inodes[held].isDir() {
			return errorf(syscall.EISDIR, "new name is a directory")
		}
		s.unname(e.NewParent, e.NewName)
	}
	s.name(e.GFID, e.NewParent, e.NewName)
	return nil
}

// move is rename(2) of parent/name, which holds g, to nparent/nname,
// replacing what that holds: a directory only by a directory, and only an
// empty one; never a directory into itself or below it.
func (s *Slave) move(g, parent gfid.GFID, name string, nparent gfid.GFID, nname string) error {
	in := s.inodes[g]
	if in.isDir() {
		for a := nparent; ; {
			if a == g {
				return errorf(syscall.EINVAL, "directory %s cannot move beneath itself", g)
			}
			l, ok := s.parentOf(a)
			if !ok {
				break
			}
			a = l
		}
	}
	if held, ok := s.inodes[nparent].children[nname]; ok {
		over := s.inodes[held]
		switch {
		case in.isDir() && !over.isDir():
			return errorf(syscall.ENOTDIR, "new name is not a directory")
		case !in.isDir() && over.isDir():
			return errorf(syscall.EISDIR, "new name is a directory")
		case over.isDir() && len(over.children) > 0:
			return errorf(syscall.ENOTEMPTY, "new name is a directory not empty")
		}
		s.unname(nparent, nname)
	}
	s.dropName(g, parent, name)
	s.name(g, nparent, nname)
	return nil
}

// dropName removes the name parent/name of g and keeps the inode.
func (s *Slave) dropName(g, parent gfid.GFID, name string) {
	delete(s.inodes[parent].children, name)
	delete(s.inodes[g].names, link{parent, name})
}

// parentOf returns the parent of directory g; false for the root, the park
// directory and a gfid unknown.
func (s *Slave) parentOf(g gfid.GFID) (gfid.GFID, bool) {
	in := s.inodes[g]
	if in == nil {
		return gfid.GFID{}, false
	}
	for l := range in.names {
		return l.parent, true
	}
	return gfid.GFID{}, false
}
