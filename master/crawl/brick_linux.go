package crawl

import (
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/master/catalog"
	"github.com/georep/georep/rpc/gfid"
)

// A GlusterFS brick as a source (Config.Brick): GlusterFS names every inode
// with the gfid in its trusted.gfid xattr, keeps its own state in
// top-level directories of the brick, and leaves DHT link files where a
// file's name hashes to a brick other than the one holding its data.

const (
	brickGFIDXattr   = "trusted.gfid"
	brickLinktoXattr = "trusted.glusterfs.dht.linkto"
)

// brickInternal reports the top-level names of a brick that are
// GlusterFS's own, never replicated (gsyncd skips them too).
func brickInternal(name string) bool {
	switch name {
	case ".glusterfs", ".trashcan", ".shard", ".landfill":
		return true
	}
	return false
}

// errNoGFID is returned for a brick inode without trusted.gfid: its
// creation is still in progress on the brick.
var errNoGFID = errors.New("no trusted.gfid")

// brickGFID reads trusted.gfid of name in dirfd ("" for dirfd itself)
// without following a final symlink.
func brickGFID(dirfd int, name string) (gfid.GFID, error) {
	var g gfid.GFID
	buf := make([]byte, 64)
	var n int
	err := retry(func() (err error) {
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

// isLinkto reports whether name in dirfd is a DHT link file: a regular file
// with no permission bits but the sticky bit, and the linkto xattr. It
// points at the brick that holds the file; that brick's worker syncs it.
func isLinkto(dirfd int, name string, st *unix.Statx_t) bool {
	if uint32(st.Mode)&unix.S_IFMT != unix.S_IFREG || uint32(st.Mode)&0o7777 != unix.S_ISVTX {
		return false
	}
	_, err := unix.Lgetxattr("/proc/self/fd/"+strconv.Itoa(dirfd)+"/"+name, brickLinktoXattr, nil)
	return err == nil || errors.Is(err, unix.ERANGE)
}

// brickSkip decides, in brick mode, whether name in h is not replicated.
func (w *walker) brickSkip(h *dirHandle, name string, st *unix.Statx_t) bool {
	if h.top && brickInternal(name) {
		return true
	}
	return isLinkto(h.fd, name, st)
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
