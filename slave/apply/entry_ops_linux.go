package apply

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/eintr"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// ApplyEntries applies entries in order and returns the ones that failed; a
// failed entry does not stop the rest. Every operation is idempotent, so
// applying the same batch again converges: CREATE of a name already holding
// the gfid succeeds, RENAME whose new name holds the gfid succeeds, UNLINK
// and RMDIR of a missing name (or of a name holding another inode) succeed,
// and a name holding another gfid is an EEXIST failure carrying that gfid.
// When ctx is done, the entries not yet applied fail with ECANCELED.
//
// The runs of IndependentRuns (creates of non-directories that cannot
// affect each other: most of an initial sync) are applied by Config.Workers
// goroutines; everything else in order. With Config.ParallelEntries, the
// runs of IndependentEntryRuns instead: entries of any op that cannot
// affect each other (the RENAMEs looked at first, see renameFacts).
func (en *Engine) ApplyEntries(ctx context.Context, entries []ops.Entry) []ops.Failure {
	b := batch{
		do:   func(i int) error { return en.applyEntry(entries[i], nil) },
		what: func(i int) string { return Describe(entries[i]) },
	}
	en.begin()
	defer en.end()
	var runs [][2]int
	if en.cfg.ParallelEntries && en.cfg.Workers > 1 {
		facts := en.renameFacts(ctx, entries)
		runs = IndependentEntryRuns(entries, func(i int) RenameFacts { return facts[i] })
	} else {
		runs = IndependentRuns(entries)
	}
	var fails []ops.Failure
	for _, r := range runs {
		if r[1]-r[0] > 1 {
			if en.cfg.ParallelEntries {
				// The run's parents stay open for the run (dirs).
				d := &dirs{}
				fails = append(fails, en.parallel(ctx, r[0], r[1], batch{
					do:   func(i int) error { return en.applyEntry(entries[i], d) },
					what: b.what,
				})...)
				d.close()
				continue
			}
			fails = append(fails, en.parallel(ctx, r[0], r[1], b)...)
		} else {
			fails = append(fails, en.serial(ctx, r[0], r[1], b)...)
		}
	}
	return fails
}

// Describe names an entry for messages: op, gfid, parent and name.
func Describe(e ops.Entry) string {
	s := fmt.Sprintf("%s %s at %s/%q", e.Op, e.GFID, e.Parent, TruncName(e.Name))
	if e.Op == ops.OpRename {
		s += fmt.Sprintf(" -> %s/%q", e.NewParent, TruncName(e.NewName))
	}
	return s
}

// validateEntry refuses a malformed entry before anything is touched: what
// ops.ValidateEntry refuses, and the names the replica reserves in its root.
func (en *Engine) validateEntry(e ops.Entry) error {
	return ops.ValidateEntry(e, en.reserved)
}

// reserved refuses the names the replica keeps for itself in its root.
func (en *Engine) reserved(parent gfid.GFID, name string) error {
	if parent != gfid.Root {
		return nil
	}
	if name == MetaDir {
		return Errorf(unix.EPERM, "reserved name %q in the replica root", name)
	}
	if why, ok := en.cfg.Reserved[name]; ok {
		return Errorf(unix.EPERM, "%s", why)
	}
	return nil
}

// applyEntry applies e, opening its parents through d (nil: each opened
// and closed by this entry).
func (en *Engine) applyEntry(e ops.Entry, d *dirs) error {
	if err := en.validateEntry(e); err != nil {
		return err
	}
	switch e.Op {
	case ops.OpCreate, ops.OpMkdir, ops.OpMknod, ops.OpSymlink:
		return en.create(e, d)
	case ops.OpLink:
		return en.link(e, d)
	case ops.OpRename:
		return en.rename(e, d)
	case ops.OpUnlink:
		return en.remove(e, false, d)
	}
	return en.remove(e, true, d)
}

// openParent opens the directory an entry names as parent; the caller
// closes the descriptor.
func (en *Engine) openParent(g gfid.GFID) (int, error) {
	fd, _, err := en.openParentIn(nil, g)
	return fd, err
}

// openParentIn opens the directory an entry names as parent through d;
// release is called when done with the descriptor.
func (en *Engine) openParentIn(d *dirs, g gfid.GFID) (int, func(), error) {
	fd, release, err := d.open(en, g)
	switch errno := ErrnoOf(err); {
	case err == nil:
		return fd, release, nil
	case errno == unix.ENOENT:
		return -1, nil, Errorf(unix.ENOENT, "parent %s not found", g)
	case errno == unix.ENOTDIR:
		return -1, nil, Errorf(unix.ENOTDIR, "parent %s is not a directory", g)
	}
	return -1, nil, err
}

// ExistsErr is the EEXIST of a name holding another inode than wanted.
func ExistsErr(n Name) error {
	if n.GFID.IsZero() {
		return &Error{Errno: unix.EEXIST, Msg: "name exists and holds an inode without a gfid"}
	}
	return &Error{Errno: unix.EEXIST, Msg: fmt.Sprintf("name exists and holds gfid %s", n.GFID), Existing: n.GFID}
}

// create applies CREATE, MKDIR, MKNOD and SYMLINK.
// DirLocker is a Backend that several clients share (a GlusterFS volume
// served by several slave nodes): the creation of a directory, its lookups
// included, holds LockDir's lock on its gfid.
type DirLocker interface {
	LockDir(g gfid.GFID) (unlock func(), err error)
}

func (en *Engine) create(e ops.Entry, d *dirs) error {
	if l, ok := en.b.(DirLocker); ok && e.Op == ops.OpMkdir {
		unlock, err := l.LockDir(e.GFID)
		if err != nil {
			return err
		}
		defer unlock()
	}
	pfd, release, err := en.openParentIn(d, e.Parent)
	if err != nil {
		return err
	}
	defer release()
	want := e.Type()
	var in Inode
	located := false
	if en.cfg.CreateChecksName {
		// Most creates make a gfid no inode has: Create checks the name.
		if in, err = en.b.Locate(e.GFID); err != nil {
			return err
		}
		if in.Type == 0 || in.Stale {
			return en.b.Create(pfd, e)
		}
		located = true
	}
	ni, err := en.b.Lookup(pfd, e.Name)
	if err != nil {
		return err
	}
	if ni.Exists {
		if !en.b.Holds(ni, e.GFID) {
			return ExistsErr(ni)
		}
		if have := ops.TypeOfMode(ni.St.Mode); have != want {
			return &Error{Errno: unix.EEXIST, Msg: fmt.Sprintf("name holds gfid %s as a %s, not a %s", e.GFID, have, want), Existing: e.GFID}
		}
		return en.b.Named(pfd, e.Parent, e.Name, e.GFID, ni)
	}
	if !located {
		if in, err = en.b.Locate(e.GFID); err != nil {
			return err
		}
	}
	if have := in.Type; have != 0 && !in.Stale {
		if want == ops.TypeDir || have == ops.TypeDir {
			return Errorf(unix.EEXIST, "gfid exists at another name (as a %s)", have)
		}
		if have != want {
			return Errorf(unix.EEXIST, "gfid exists at another name as a %s, not a %s", have, want)
		}
		// Another name of an existing inode: a hardlink.
		return en.b.Link(e.GFID, in, pfd, e.Name)
	}
	return en.b.Create(pfd, e)
}

// link applies LINK: another name for an existing non-directory.
func (en *Engine) link(e ops.Entry, d *dirs) error {
	pfd, release, err := en.openParentIn(d, e.Parent)
	if err != nil {
		return err
	}
	defer release()
	ni, err := en.b.Lookup(pfd, e.Name)
	if err != nil {
		return err
	}
	if ni.Exists {
		if !en.b.Holds(ni, e.GFID) {
			return ExistsErr(ni)
		}
		if ni.IsDir() {
			return Errorf(unix.EPERM, "LINK to a directory refused")
		}
		return en.b.Named(pfd, e.Parent, e.Name, e.GFID, ni)
	}
	in, err := en.b.Locate(e.GFID)
	switch {
	case err != nil:
		return err
	case in.Type == 0:
		return Errorf(unix.ENOENT, "gfid %s not found", e.GFID)
	case in.Type == ops.TypeDir:
		return Errorf(unix.EPERM, "LINK to a directory refused")
	}
	return en.b.Link(e.GFID, in, pfd, e.Name)
}

// remove applies UNLINK (dir false) and RMDIR (dir true). A missing parent
// or name is success; a name that holds another inode is left alone.
func (en *Engine) remove(e ops.Entry, dir bool, d *dirs) error {
	pfd, release, err := d.open(en, e.Parent)
	if NotFound(err) {
		en.log.Debug("remove: parent gone, nothing to do", "op", e.Op.String(), "gfid", e.GFID.String(), "parent", e.Parent.String())
		return nil
	}
	if err != nil {
		return err
	}
	defer release()
	ni, err := en.b.Lookup(pfd, e.Name)
	if err != nil || !ni.Exists {
		return err
	}
	if !en.b.Holds(ni, e.GFID) {
		en.log.Debug("remove: name holds another inode, left alone", "op", e.Op.String(), "gfid", e.GFID.String(), "found", ni.GFID.String(), "name", e.Name)
		return nil
	}
	switch {
	case ni.IsDir() && !dir:
		return Errorf(unix.EISDIR, "is a directory (UNLINK refused, use RMDIR)")
	case !ni.IsDir() && dir:
		return Errorf(unix.ENOTDIR, "not a directory (RMDIR refused)")
	}
	if err := unlink(pfd, e.Name, dir); err != nil {
		return err
	}
	_, err = en.b.Forget(e.GFID, ni)
	return err
}

// unlink removes name from dirfd (a directory when dir is set); a name
// already gone is fine.
func unlink(dirfd int, name string, dir bool) error {
	flags, what := 0, "unlink"
	if dir {
		flags, what = unix.AT_REMOVEDIR, "rmdir"
	}
	if err := eintr.Retry(func() error { return unix.Unlinkat(dirfd, name, flags) }); err != nil && err != unix.ENOENT {
		return fmt.Errorf("%s %q: %w", what, TruncName(name), err)
	}
	return nil
}
