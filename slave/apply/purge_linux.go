package apply

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// Purge removes parent/name, recursively when it is a directory, and tells
// the backend of every inode whose last name went (Backend.Forget). When
// only is not zero, the name is removed only if it holds that gfid
// (otherwise nothing happens). A missing name is not an error. removed
// counts the inodes removed: directories, and non-directories whose last
// name was removed.
func (en *Engine) Purge(ctx context.Context, parent gfid.GFID, name string, only gfid.GFID) (removed uint64, err error) {
	if err := ops.ValidateParentName(parent, name, en.reserved); err != nil {
		return 0, fmt.Errorf("purge %s/%q: %w", parent, TruncName(name), err)
	}
	if err := en.lock(); err != nil {
		return 0, err
	}
	defer en.mu.Unlock()
	pfd, err := en.openParent(parent)
	if err != nil {
		return 0, fmt.Errorf("purge %s/%q: %w", parent, name, err)
	}
	defer CloseFd(pfd)
	ni, err := en.b.Lookup(pfd, name)
	if err != nil {
		return 0, fmt.Errorf("purge %s/%q: %w", parent, name, err)
	}
	if !ni.Exists {
		return 0, nil
	}
	if !only.IsZero() && !en.b.Holds(ni, only) {
		en.log.Debug("purge: name holds another gfid, left alone", "parent", parent.String(), "name", name, "want", only.String(), "found", ni.GFID.String())
		return 0, nil
	}
	if ni.GFID == gfid.Root || ni.GFID == gfid.Park {
		return 0, Errorf(unix.EPERM, "purge %s/%q: refusing to remove gfid %s", parent, name, ni.GFID)
	}
	if err := en.purge(ctx, pfd, name, ni, &removed, 0); err != nil {
		return removed, fmt.Errorf("purge %s/%q: %w", parent, name, err)
	}
	return removed, nil
}

// maxPurgeDepth bounds the recursion (and the directory descriptors held) of
// a purge.
const maxPurgeDepth = 1024

func (en *Engine) purge(ctx context.Context, dirfd int, name string, ni Name, removed *uint64, depth int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ni.IsDir() {
		if depth >= maxPurgeDepth {
			return Errorf(unix.ELOOP, "directory tree deeper than %d levels", maxPurgeDepth)
		}
		if err := en.purgeChildren(ctx, dirfd, name, ni, removed, depth); err != nil {
			return err
		}
	}
	if err := unlink(dirfd, name, ni.IsDir()); err != nil {
		return err
	}
	last, err := en.b.Forget(ni.GFID, ni)
	if err != nil {
		return fmt.Errorf("forgetting %q: %w", TruncName(name), err)
	}
	if last {
		*removed++
	}
	return nil
}

// purgeChildren purges every name of the directory dirfd/name.
func (en *Engine) purgeChildren(ctx context.Context, dirfd int, name string, ni Name, removed *uint64, depth int) error {
	fd, err := OpenDirAt(dirfd, name)
	if err != nil {
		return fmt.Errorf("open %q: %w", name, err)
	}
	defer CloseFd(fd)
	names, err := ReadDirNames(fd)
	if err != nil {
		return fmt.Errorf("reading %q: %w", name, err)
	}
	lfd, err := en.b.LookupDir(fd, ni.GFID)
	if err != nil {
		return fmt.Errorf("open %q: %w", name, err)
	}
	if lfd != fd {
		defer CloseFd(lfd)
	}
	for _, child := range names {
		ci, err := en.b.Lookup(lfd, child)
		if err == nil && ci.Exists {
			err = en.purge(ctx, lfd, child, ci, removed, depth+1)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
