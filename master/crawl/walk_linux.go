package crawl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/georep/georep/master/catalog"
	"github.com/georep/georep/rpc/eintr"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
	"github.com/georep/georep/rpc/xattrat"
	"github.com/pkg/xattr"
	"golang.org/x/sys/unix"
)

// inode is one inode found by the walk, before it has a gfid.
type inode struct {
	key      catalog.Key
	gfid     gfid.GFID // a brick's trusted.gfid (Config.Brick)
	nlink    uint32
	node     catalog.Node // GFID and Links are filled in after identification
	links    []wlink
	xattrs   map[string][]byte
	children map[string]*inode // directories only
}

type wlink struct {
	parent *inode
	name   string
}

// dirHandle is a directory to list or whose subdirectories are still to be
// opened. Its fd is opened relative to its parent's and may be closed to
// bound the number of open descriptors, then reopened through the chain.
type dirHandle struct {
	parent  *dirHandle
	name    string
	in      *inode
	dev     uint64
	fd      int
	pending int  // subdirectories not yet opened
	top     bool // the source itself
}

// maxOpenDirs bounds the directory descriptors the walk holds at once.
const maxOpenDirs = 64

type walker struct {
	ctx     context.Context
	cfg     Config
	log     *slog.Logger
	root    *inode
	inodes  []*inode // discovery order, root first
	byKey   map[catalog.Key]*inode
	skip    map[[2]uint64]bool // (dev, ino) of our own files inside the source
	open    []*dirHandle
	noBtime bool
	stats   *Stats
	// known, when set, reports directories the catalog already holds:
	// the scoped crawl does not descend into them.
	known func(catalog.Key) bool
}

func statxAt(dirfd int, name string, flags int) (unix.Statx_t, error) {
	var st unix.Statx_t
	err := eintr.Retry(func() error {
		return unix.Statx(dirfd, name, flags|unix.AT_SYMLINK_NOFOLLOW|unix.AT_STATX_SYNC_AS_STAT,
			unix.STATX_BASIC_STATS|unix.STATX_BTIME, &st)
	})
	return st, err
}

func devOf(st *unix.Statx_t) uint64 { return unix.Mkdev(st.Dev_major, st.Dev_minor) }

func nsOf(ts unix.StatxTimestamp) int64 { return ts.Sec*1e9 + int64(ts.Nsec) }

// vanished reports errors that mean the entry went away (or was replaced by
// something else) while we looked at it: skipped, not fatal.
func vanished(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) ||
		errors.Is(err, unix.ESTALE)
}

// walk lists the whole tree under cfg.Source, depth first in byte order of
// names, without recursion and without following symlinks.
func (w *walker) walk() error {
	var rootFd int
	err := eintr.Retry(func() (err error) {
		rootFd, err = unix.Open(w.cfg.Source, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return fmt.Errorf("open source %s: %w", w.cfg.Source, err)
	}
	st, err := statxAt(rootFd, "", unix.AT_EMPTY_PATH)
	if err != nil {
		unix.Close(rootFd)
		return fmt.Errorf("stat source %s: %w", w.cfg.Source, err)
	}
	w.root = w.newInode(&st)
	w.root.children = map[string]*inode{}
	rh := &dirHandle{in: w.root, dev: devOf(&st), fd: rootFd, top: true}
	defer func() {
		w.closeAll()
		unix.Close(rootFd)
	}()
	if err := w.list(rh); err != nil {
		return err
	}
	return w.descend(w.subdirs(rh, nil))
}

// closeAll closes the directories the walk opened.
func (w *walker) closeAll() {
	for _, h := range w.open {
		if h.fd >= 0 {
			unix.Close(h.fd)
			h.fd = -1
		}
	}
	w.open = nil
}

// descend lists the directories on stack and everything below them, depth
// first.
func (w *walker) descend(stack []*dirHandle) error {
	for len(stack) > 0 {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		h := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		ok, err := w.openDir(h)
		if err != nil {
			return err
		}
		h.parent.pending--
		if h.parent.pending == 0 {
			w.closeDir(h.parent)
		}
		if !ok {
			continue
		}
		if err := w.list(h); err != nil {
			return err
		}
		stack = w.subdirs(h, stack)
		if h.pending == 0 {
			w.closeDir(h)
		}
	}
	return nil
}

// subdirs pushes h's subdirectories so that they pop in name order.
func (w *walker) subdirs(h *dirHandle, stack []*dirHandle) []*dirHandle {
	names := make([]string, 0, len(h.in.children))
	for name, c := range h.in.children {
		if c.node.Type == catalog.TypeDir && c.children == nil && (w.known == nil || !w.known(c.key)) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for i := len(names) - 1; i >= 0; i-- {
		c := h.in.children[names[i]]
		c.children = map[string]*inode{}
		stack = append(stack, &dirHandle{parent: h, name: names[i], in: c, dev: h.dev, fd: -1})
	}
	h.pending = len(names)
	return stack
}

func (w *walker) closeDir(h *dirHandle) {
	if h.parent == nil || h.fd < 0 {
		return // the root stays open
	}
	unix.Close(h.fd)
	h.fd = -1
	if i := slices.Index(w.open, h); i >= 0 {
		w.open = slices.Delete(w.open, i, i+1)
	}
}

// openDir opens h (reopening closed ancestors as needed) and checks that it
// is still the inode that was listed. ok is false when it vanished.
func (w *walker) openDir(h *dirHandle) (ok bool, err error) {
	var chain []*dirHandle
	for p := h; p.fd < 0; p = p.parent {
		chain = append(chain, p)
	}
	for i := len(chain) - 1; i >= 0; i-- {
		d := chain[i]
		var fd int
		err := eintr.Retry(func() (err error) {
			fd, err = unix.Openat(d.parent.fd, d.name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			return err
		})
		if err == nil {
			st, serr := statxAt(fd, "", unix.AT_EMPTY_PATH)
			switch {
			case serr != nil:
				err = serr
			case devOf(&st) != d.dev || st.Ino != d.in.key.Ino:
				err = unix.ENOENT // replaced by another directory
			}
			if err != nil {
				unix.Close(fd)
			}
		}
		if err != nil {
			if !vanished(err) {
				return false, fmt.Errorf("open directory %q: %w", w.relPath(d), err)
			}
			w.log.Debug("directory vanished during crawl", "path", w.relPath(d), "err", err)
			w.stats.Vanished++
			w.drop(h)
			return false, nil
		}
		d.fd = fd
		w.open = append(w.open, d)
	}
	for len(w.open) > maxOpenDirs {
		victim := w.open[0]
		if victim == h {
			victim = w.open[1]
		}
		unix.Close(victim.fd)
		victim.fd = -1
		w.open = slices.DeleteFunc(w.open, func(x *dirHandle) bool { return x == victim })
	}
	return true, nil
}

// drop removes a directory that vanished before it could be listed.
func (w *walker) drop(h *dirHandle) {
	delete(h.parent.in.children, h.name)
	h.in.links = slices.DeleteFunc(h.in.links, func(l wlink) bool { return l.parent == h.parent.in && l.name == h.name })
	if len(h.in.links) == 0 {
		delete(w.byKey, h.in.key)
		h.in.node.Type = catalog.TypeUnknown // removed from inodes after the walk
	}
}

func (w *walker) relPath(h *dirHandle) string {
	var parts []string
	for p := h; p != nil; p = p.parent {
		if p.name != "" && p.name != "." {
			parts = append(parts, p.name) // a top handle of a scoped crawl is named by its path
		}
	}
	slices.Reverse(parts)
	return strconv.Quote("/" + strings.Join(parts, "/"))
}

func (w *walker) newInode(st *unix.Statx_t) *inode {
	in := &inode{key: catalog.Key{Ino: st.Ino}, nlink: st.Nlink}
	if st.Mask&unix.STATX_BTIME != 0 {
		in.key.BtimeNs = nsOf(st.Btime)
	} else if !w.noBtime {
		w.noBtime = true
		w.log.Warn("source filesystem has no birth time; inode numbers alone identify files, a reused inode number may look like a rename", "source", w.cfg.Source)
	}
	mode := uint32(st.Mode)
	in.node = catalog.Node{
		Type:    catalog.TypeOfMode(mode),
		Mode:    mode,
		UID:     st.Uid,
		GID:     st.Gid,
		Size:    int64(st.Size),
		MtimeNs: nsOf(st.Mtime),
		CtimeNs: nsOf(st.Ctime),
	}
	if in.node.Type == catalog.TypeChar || in.node.Type == catalog.TypeBlock {
		in.node.Rdev = unix.Mkdev(st.Rdev_major, st.Rdev_minor)
	}
	w.inodes = append(w.inodes, in)
	return in
}

// list reads the names in h and stats each one.
func (w *walker) list(h *dirHandle) error {
	names, err := readNames(h.fd)
	if err != nil {
		if vanished(err) {
			w.stats.Vanished++
			return nil
		}
		return fmt.Errorf("list directory %s: %w", w.relPath(h), err)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := w.entry(h, name); err != nil {
			return err
		}
	}
	return nil
}

// entry stats name in h and records it as a child of h.
func (w *walker) entry(h *dirHandle, name string) error {
	if name == ReservedName && h.top {
		w.log.Warn("not replicating the top-level name reserved for the slave's own state", "name", name)
		w.stats.Skipped++
		return nil
	}
	st, err := statxAt(h.fd, name, 0)
	if err != nil {
		if vanished(err) {
			w.stats.Vanished++
			return nil
		}
		return fmt.Errorf("stat %s/%q: %w", w.relPath(h), name, err)
	}
	if dev := devOf(&st); dev != h.dev {
		w.log.Warn("skipping mount point", "dir", w.relPath(h), "name", name)
		w.stats.Skipped++
		return nil
	}
	if w.skip[[2]uint64{h.dev, st.Ino}] {
		return nil
	}
	if w.cfg.Brick {
		skip, err := w.brickSkip(h, name, &st)
		if err != nil {
			return fmt.Errorf("%s/%q: %w", w.relPath(h), name, err)
		}
		if skip {
			w.stats.Skipped++
			return nil
		}
	}
	key := catalog.Key{Ino: st.Ino}
	if st.Mask&unix.STATX_BTIME != 0 {
		key.BtimeNs = nsOf(st.Btime)
	}
	in := w.byKey[key]
	if in != nil && len(in.links) > 0 && (in.node.Type == catalog.TypeDir || uint32(st.Mode)&unix.S_IFMT == unix.S_IFDIR) {
		// A directory met twice: it moved during the walk.
		w.log.Debug("directory seen twice during crawl", "dir", w.relPath(h), "name", name)
		w.stats.Skipped++
		return nil
	}
	if in == nil {
		var g gfid.GFID
		if w.cfg.Brick {
			if g, err = brickGFID(h.fd, name); err != nil {
				if vanished(err) || errors.Is(err, errNoGFID) {
					w.log.Debug("skipping a brick entry without gfid", "dir", w.relPath(h), "name", name, "err", err)
					w.stats.Vanished++
					return nil
				}
				return fmt.Errorf("gfid of %s/%q: %w", w.relPath(h), name, err)
			}
		}
		in = w.newInode(&st)
		in.gfid = g
		w.byKey[key] = in
		switch in.node.Type {
		case catalog.TypeSymlink:
			target, err := readlinkat(h.fd, name)
			if err != nil {
				if vanished(err) || errors.Is(err, unix.EINVAL) {
					in.node.Type = catalog.TypeUnknown
					delete(w.byKey, key)
					w.stats.Vanished++
					return nil
				}
				return fmt.Errorf("readlink %s/%q: %w", w.relPath(h), name, err)
			}
			in.node.Target = target
		case catalog.TypeUnknown:
			delete(w.byKey, key)
			w.stats.Skipped++
			return nil
		}
		if w.cfg.SyncXattrs && in.node.Type != catalog.TypeSymlink {
			x, err := userXattrs(h.fd, name)
			if err != nil {
				if vanished(err) {
					in.node.Type = catalog.TypeUnknown
					delete(w.byKey, key)
					w.stats.Vanished++
					return nil
				}
				return fmt.Errorf("xattrs of %s/%q: %w", w.relPath(h), name, err)
			}
			in.xattrs = x
			in.node.XattrHash = hashXattrs(x)
		}
	}
	in.links = append(in.links, wlink{h.in, name})
	h.in.children[name] = in
	return nil
}

func readNames(fd int) ([]string, error) {
	buf := make([]byte, 32<<10)
	var names []string
	for {
		var n int
		err := eintr.Retry(func() (err error) {
			n, err = unix.Getdents(fd, buf)
			return err
		})
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		var n int
		err := eintr.Retry(func() (err error) {
			n, err = unix.Readlinkat(dirfd, name, buf)
			return err
		})
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// userXattrs reads the user.* xattrs of name in dirfd without following the
// final component: through listxattrat and getxattrat where the kernel has
// them, else through /proc/self/fd so that no path longer than one name is
// resolved.
func userXattrs(dirfd int, name string) (map[string][]byte, error) {
	if xattrat.Available() {
		return userXattrsAt(dirfd, name)
	}
	return userXattrsProc(dirfd, name)
}

// userXattrsProc is userXattrs through /proc/self/fd.
func userXattrsProc(dirfd int, name string) (map[string][]byte, error) {
	p := "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + name
	list, err := xattr.LList(p)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		return nil, unwrapXattr(err)
	}
	var m map[string][]byte
	for _, k := range list {
		if !strings.HasPrefix(k, "user.") {
			continue
		}
		v, err := xattr.LGet(p, k)
		if err != nil {
			if errors.Is(err, xattr.ENOATTR) {
				continue
			}
			return nil, unwrapXattr(err)
		}
		if m == nil {
			m = map[string][]byte{}
		}
		m[k] = v
	}
	return m, nil
}

func unwrapXattr(err error) error {
	var xe *xattr.Error
	if errors.As(err, &xe) {
		return xe.Err
	}
	return err
}

// hashXattrs digests xattrs by sorted name; nil for none.
func hashXattrs(m map[string][]byte) []byte { return ops.XattrDigest(m) }
