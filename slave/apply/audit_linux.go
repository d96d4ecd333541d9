package apply

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/eintr"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// Audit describes the directories dirs for the master's audit: each
// directory's names after its After, sorted, each with its gfid, attributes,
// inode number and xattr digest, and with content the digest of each regular
// file's data. It describes at most limit entries in all: the directory that
// reaches it is cut short (More), those after it are left out of the answer.
// The names are listed under the engine's lock, as Entries lists them; data
// is digested after it, each file opened again by name and checked to be the
// inode listed (ESTALE when it is not: it changed meanwhile).
func (en *Engine) Audit(ctx context.Context, dirs []ops.AuditDirRequest, limit int, content bool) ([]ops.AuditDir, error) {
	if limit <= 0 {
		limit = 1
	}
	var out []ops.AuditDir
	for _, d := range dirs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if limit <= 0 {
			break
		}
		ad, lfd, err := en.auditDir(ctx, d, limit)
		if err != nil {
			return nil, err
		}
		limit -= len(ad.Entries)
		if content && lfd >= 0 {
			en.digestFiles(ctx, lfd, ad.Entries)
		}
		if lfd >= 0 {
			CloseFd(lfd)
		}
		out = append(out, ad)
		if ad.More {
			break
		}
	}
	return out, nil
}

// auditDir lists one directory under the lock and returns the descriptor
// its names are looked up in (-1 when it could not be listed), which the
// caller closes.
func (en *Engine) auditDir(ctx context.Context, d ops.AuditDirRequest, limit int) (ops.AuditDir, int, error) {
	ad := ops.AuditDir{GFID: d.GFID}
	if d.GFID.IsZero() {
		ad.Err = Errorf(unix.EINVAL, "audit: zero gfid")
		return ad, -1, nil
	}
	if err := en.lock(); err != nil {
		return ad, -1, err
	}
	defer en.mu.Unlock()
	fd, err := en.b.OpenReadDir(d.GFID)
	if err != nil {
		ad.Err = fmt.Errorf("audit of %s: %w", d.GFID, err)
		return ad, -1, nil
	}
	lfd, err := en.b.LookupDir(fd, d.GFID)
	if err != nil {
		CloseFd(fd)
		ad.Err = fmt.Errorf("audit of %s: %w", d.GFID, err)
		return ad, -1, nil
	}
	names, err := ReadDirNames(fd)
	if lfd != fd {
		CloseFd(fd)
	}
	if err != nil {
		CloseFd(lfd)
		ad.Err = fmt.Errorf("audit of %s: reading directory: %w", d.GFID, err)
		return ad, -1, nil
	}
	slices.Sort(names)
	if d.After != "" {
		i, found := slices.BinarySearch(names, d.After)
		if found {
			i++
		}
		names = names[i:]
	}
	for _, name := range names {
		if d.GFID == gfid.Root && en.hidden(name) {
			continue
		}
		if len(ad.Entries) == limit {
			ad.More = true
			break
		}
		if err := ctx.Err(); err != nil {
			CloseFd(lfd)
			return ad, -1, err
		}
		ni, err := en.b.Lookup(lfd, name)
		if err != nil {
			CloseFd(lfd)
			ad.Err = fmt.Errorf("audit of %s: %q: %w", d.GFID, name, err)
			return ad, -1, nil
		}
		if !ni.Exists {
			continue // removed meanwhile
		}
		e := ops.AuditEntry{Name: name, GFID: ni.GFID, Attr: AttrOf(ni.St), Ino: ni.St.Ino}
		e.Attr.Nlink = 0
		switch e.Attr.Type {
		case ops.TypeSymlink:
			if e.Attr.Target, err = ReadlinkAt(lfd, name); err != nil {
				e.Attr.Target = "" // changed meanwhile: the master sees a difference and looks again next round
			}
		case ops.TypeRegular, ops.TypeDir:
			e.XattrDigest, _ = en.userXattrDigest(AtNode(lfd, name))
		}
		ad.Entries = append(ad.Entries, e)
	}
	return ad, lfd, nil
}

// userXattrDigest is ops.XattrDigest of n's user.* xattrs, georep's own
// left out.
func (en *Engine) userXattrDigest(n Node) ([]byte, error) {
	names, err := n.Listxattr()
	if err != nil {
		if err == unix.ENOTSUP {
			return nil, nil
		}
		return nil, err
	}
	var m map[string][]byte
	for _, name := range names {
		if !strings.HasPrefix(name, "user.") || en.ownXattr(name) {
			continue
		}
		v, err := n.Getxattr(name)
		if err == unix.ENODATA {
			continue
		}
		if err != nil {
			return nil, err
		}
		if m == nil {
			m = map[string][]byte{}
		}
		m[name] = v
	}
	return ops.XattrDigest(m), nil
}

// digestFiles computes the content digest of the regular files among ents,
// names of the directory open as lfd.
func (en *Engine) digestFiles(ctx context.Context, lfd int, ents []ops.AuditEntry) {
	for i := range ents {
		e := &ents[i]
		if e.Attr.Type != ops.TypeRegular {
			continue
		}
		if ctx.Err() != nil {
			e.ContentErr = ctx.Err()
			continue
		}
		e.ContentDigest, e.ContentErr = digestAt(lfd, e.Name, e.Ino)
	}
}

// digestAt digests the data of name in dirfd, which must still be inode
// ino.
func digestAt(dirfd int, name string, ino uint64) ([]byte, error) {
	var fd int
	err := eintr.Retry(func() (err error) {
		fd, err = unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
		return err
	})
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	st, err := Fstat(fd)
	if err != nil {
		return nil, err
	}
	if st.Ino != ino || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, unix.ESTALE
	}
	d, _, err := ops.ContentDigest(f)
	return d, err
}
