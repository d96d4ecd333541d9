package crawl

import (
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/master/catalog"
	"github.com/georep/georep/master/glusterfs"
	"github.com/georep/georep/rpc/eintr"
	"github.com/georep/georep/rpc/gfid"
)

// A GlusterFS brick as a source (Config.Brick): GlusterFS names every inode
// with the gfid in its trusted.gfid xattr, keeps its own state in
// top-level directories of the brick, and leaves DHT link files where a
// file's name hashes to a brick other than the one holding its data.

const brickGFIDXattr = glusterfs.GFIDXattr

// errNoGFID is returned for a brick inode without trusted.gfid: its
// creation is still in progress on the brick.
var errNoGFID = errors.New("no trusted.gfid")

// brickGFID reads trusted.gfid of name in dirfd ("" for dirfd itself)
// without following a final symlink: one system call through the
// directory's /proc/self/fd link (glusterfs.BrickGFIDAt takes three, and
// the crawl reads one per inode).
func brickGFID(dirfd int, name string) (gfid.GFID, error) {
	var g gfid.GFID
	buf := make([]byte, 64)
	var n int
	err := eintr.Retry(func() (err error) {
		if name == "" {
			n, err = unix.Fgetxattr(dirfd, brickGFIDXattr, buf)
		} else {
			n, err = unix.Lgetxattr("/proc/self/fd/"+strconv.Itoa(dirfd)+"/"+name, brickGFIDXattr, buf)
		}
		return err
	})
	if errors.Is(err, unix.ENODATA) {
		return g, errNoGFID
	}
	if err != nil {
		return g, err
	}
	if n != len(g) {
		return g, fmt.Errorf("%s is %d bytes, want %d", brickGFIDXattr, n, len(g))
	}
	copy(g[:], buf[:n])
	return g, nil
}

// brickSkip decides, in brick mode, whether name in h is not replicated:
// GlusterFS's own top-level directories, and DHT link files (they point at
// the brick that holds the file; that brick's worker syncs it).
func (w *walker) brickSkip(h *dirHandle, name string, st *unix.Statx_t) (bool, error) {
	if h.top && glusterfs.BrickInternal(name) {
		return true, nil
	}
	return glusterfs.IsLinktoAt(h.fd, name, st)
}

// identify gives every inode of ins its gfid: assigned by the catalog for a
// plain directory, read from the brick (and recorded in the catalog) for a
// brick. fresh counts identities new to the catalog.
func (w *walker) identify(cat *catalog.Catalog, ins []*inode) (gfids []gfid.GFID, fresh int, err error) {
	keys := make([]catalog.Key, len(ins))
	for i, in := range ins {
		keys[i] = in.key
	}
	if !w.cfg.Brick {
		return cat.Identify(keys)
	}
	gfids = make([]gfid.GFID, len(ins))
	for i, in := range ins {
		if in.gfid.IsZero() {
			return nil, 0, fmt.Errorf("brick inode %d has no gfid", in.key.Ino)
		}
		gfids[i] = in.gfid
	}
	fresh, err = cat.Bind(keys, gfids)
	return gfids, fresh, err
}
