package apply

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/eintr"
	"github.com/georep/georep/rpc/ops"
)

// rename applies RENAME.
func (en *Engine) rename(e ops.Entry, d *dirs) error {
	nfd, nrelease, err := en.openParentIn(d, e.NewParent)
	if err != nil {
		return err
	}
	defer nrelease()
	ofd, orelease, err := d.open(en, e.Parent)
	if err != nil && !NotFound(err) {
		return err
	}
	var oi Name
	if err == nil {
		defer orelease()
		if oi, err = en.b.Lookup(ofd, e.Name); err != nil {
			return err
		}
	}
	ni, err := en.b.Lookup(nfd, e.NewName)
	if err != nil {
		return err
	}
	oldHolds, newHolds := en.b.Holds(oi, e.GFID), en.b.Holds(ni, e.GFID)
	switch {
	case oldHolds && newHolds:
		if e.Parent == e.NewParent && e.Name == e.NewName {
			return nil
		}
		if oi.IsDir() || ni.IsDir() {
			return &Error{Errno: unix.EEXIST, Msg: fmt.Sprintf("directory gfid %s is held by both names", e.GFID), Existing: e.GFID}
		}
		// Two hardlinks of the same inode: rename(2) would do nothing.
		return unlink(ofd, e.Name, false)
	case oldHolds:
		return en.b.Rename(e.GFID, oi.IsDir(), ofd, e.Name, nfd, e.NewParent, e.NewName, ni)
	case newHolds:
		// Already renamed (a replay).
		return en.b.Named(nfd, e.NewParent, e.NewName, e.GFID, ni)
	}
	return en.renameFromElsewhere(e, nfd, ni)
}

// renameFromElsewhere applies a RENAME whose old name does not hold the
// gfid: it takes the inode from wherever it is.
func (en *Engine) renameFromElsewhere(e ops.Entry, nfd int, ni Name) error {
	in, err := en.b.Locate(e.GFID)
	switch {
	case err != nil:
		return err
	case in.Type == 0:
		return Errorf(unix.ENOENT, "gfid %s not found", e.GFID)
	case in.Type == ops.TypeDir:
		cfd, name, err := en.b.DirAt(e.GFID)
		if err != nil {
			return err
		}
		defer CloseFd(cfd)
		return en.b.Rename(e.GFID, true, cfd, name, nfd, e.NewParent, e.NewName, ni)
	}
	// A non-directory: give it the new name by linking it, replacing what
	// the new name holds as rename(2) would.
	if !ni.Exists {
		return en.b.Link(e.GFID, in, nfd, e.NewName)
	}
	if ni.IsDir() {
		return Errorf(unix.EISDIR, "new name is a directory")
	}
	tmp := ".georep." + e.GFID.String() + ".tmp"
	_ = eintr.Retry(func() error { return unix.Unlinkat(nfd, tmp, 0) })
	if err := en.b.Link(e.GFID, in, nfd, tmp); err != nil {
		return err
	}
	if err := en.b.Rename(e.GFID, false, nfd, tmp, nfd, e.NewParent, e.NewName, ni); err != nil {
		_ = eintr.Retry(func() error { return unix.Unlinkat(nfd, tmp, 0) })
		return err
	}
	return nil
}
