package replica

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/eintr"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/slave/apply"
)

// Replica is an open replica root. Create it with Open and release it with
// Close. Its operations are the apply engine's (package slave/apply) on the
// store.
type Replica struct {
	*apply.Engine
	s *store
}

// parallelWorkers is how many creates of a parallel run the engine applies
// at once. On this project's VM disks one create waits on the filesystem far
// longer than it uses CPU: 4 workers made an initial sync's entry ops
// several times faster than 1 (4× with 2 measured on ext4); more gained
// nothing on 2 cores.
const parallelWorkers = 4

// store is the replica root as an apply.Backend: the tree, the gfid index
// and the park directory.
type store struct {
	root     string
	log      *slog.Logger
	ns       string // xattr namespace of georep's own attributes: "trusted" or "user"
	gfidAttr string // ns + ".georep.gfid"
	asRoot   bool

	rootFd  int // the replica root, open for the life of the Replica
	indexFd int // <root>/.georep/gfid, the data tree of the gfid index
	linksFd int // <root>/.georep/links, the links tree of the gfid index

	// dirs caches directory fds by gfid during one ApplyEntries or ApplyMeta
	// call (nil outside one), so that a batch of creates in one directory
	// resolves it once. See cachedDir.
	dirs  map[gfid.GFID]int
	dirMu sync.Mutex // guards dirs
}

// Open opens the replica rooted at root, an existing directory, creating
// georep's .georep directory (gfid index and park) in it when missing. The
// root directory gets the gfid gfid.Root, the park directory gfid.Park.
//
// georep's own extended attributes live in the trusted namespace when the
// process runs as root (euid 0), else in the user namespace; Open fails if the
// filesystem does not support extended attributes.
func Open(root string, log *slog.Logger) (*Replica, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("replica root %s: %w", root, err)
	}
	fd, err := eintr.Value(func() (int, error) {
		return unix.Open(abs, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	switch {
	case err == unix.ENOTDIR:
		return nil, fmt.Errorf("replica root %s: not a directory", abs)
	case err != nil:
		return nil, fmt.Errorf("replica root %s: %w", abs, &os.PathError{Op: "open", Path: abs, Err: err})
	}
	asRoot := unix.Geteuid() == 0
	ns := "user"
	if asRoot {
		ns = "trusted"
	}
	r := &store{
		root:     abs,
		log:      log,
		ns:       ns,
		gfidAttr: ns + ".georep.gfid",
		asRoot:   asRoot,
		rootFd:   fd,
		indexFd:  -1,
		linksFd:  -1,
	}
	if err := r.setup(); err != nil {
		apply.CloseFd(r.linksFd)
		apply.CloseFd(r.indexFd)
		apply.CloseFd(r.rootFd)
		return nil, err
	}
	log.Info("replica open", "root", abs, "xattr_namespace", ns)
	cfg := apply.Config{
		Workers:         parallelWorkers,
		Namespace:       ns,
		NoSpecialXattrs: !asRoot,
		StreamWrites:    true,
		Closed:          fmt.Errorf("replica %s: %w", abs, os.ErrClosed),
	}
	return &Replica{Engine: apply.New(r, cfg, log), s: r}, nil
}

func (r *store) setup() error {
	probe := r.ns + ".georep.probe"
	err := apply.FdNode(r.rootFd).Setxattr(probe, []byte("1"))
	switch {
	case err == unix.ENOTSUP:
		return fmt.Errorf("replica root %s: filesystem does not support extended attributes", r.root)
	case err != nil:
		return fmt.Errorf("replica root %s: probing extended attributes (%s): %w", r.root, probe, err)
	}
	if err := apply.FdNode(r.rootFd).Removexattr(probe); err != nil {
		return fmt.Errorf("replica root %s: removing probe attribute %s: %w", r.root, probe, err)
	}

	if err := apply.MkdirAllowExisting(r.rootFd, metaDir, 0o700); err != nil {
		return fmt.Errorf("replica root %s: creating %s: %w", r.root, metaDir, err)
	}
	mfd, err := apply.OpenDirAt(r.rootFd, metaDir)
	if err != nil {
		return fmt.Errorf("replica root %s: opening %s (must be a directory, not a symlink): %w", r.root, metaDir, err)
	}
	defer apply.CloseFd(mfd)
	if err := eintr.Retry(func() error { return unix.Fchmod(mfd, 0o700) }); err != nil {
		return fmt.Errorf("replica root %s: chmod %s: %w", r.root, metaDir, err)
	}
	// The procfs trick must work: every no-follow xattr call on a non-directory uses it.
	if _, err := apply.AtNode(r.rootFd, metaDir).Stat(); err != nil {
		return fmt.Errorf("replica root %s: stat %s: %w", r.root, metaDir, err)
	}
	if _, err := eintr.Value(func() (int, error) { return unix.Lgetxattr(apply.ProcPath(r.rootFd, metaDir), r.gfidAttr, nil) }); err != nil && err != unix.ENODATA {
		return fmt.Errorf("replica root %s: xattr access through /proc/self/fd (is procfs mounted?): %w", r.root, err)
	}
	for _, d := range []string{indexDir, parkDir} {
		if err := apply.MkdirAllowExisting(mfd, d, 0o700); err != nil {
			return fmt.Errorf("replica root %s: creating %s/%s: %w", r.root, metaDir, d, err)
		}
	}
	r.indexFd, err = apply.OpenDirAt(mfd, indexDir)
	if err != nil {
		return fmt.Errorf("replica root %s: opening %s/%s: %w", r.root, metaDir, indexDir, err)
	}
	if err := r.setupLinks(mfd); err != nil {
		return fmt.Errorf("replica root %s: %w", r.root, err)
	}
	pfd, err := apply.OpenDirAt(mfd, parkDir)
	if err != nil {
		return fmt.Errorf("replica root %s: opening %s/%s: %w", r.root, metaDir, parkDir, err)
	}
	defer apply.CloseFd(pfd)

	for _, w := range []struct {
		fd   int
		g    gfid.GFID
		what string
		link string
	}{
		{r.rootFd, gfid.Root, "replica root", rootLink},
		{pfd, gfid.Park, metaDir + "/" + parkDir, parkLink},
	} {
		have, err := r.gfidOf(apply.FdNode(w.fd))
		if err != nil {
			return fmt.Errorf("replica root %s: reading gfid of %s: %w", r.root, w.what, err)
		}
		switch {
		case have.IsZero():
			if err := apply.FdNode(w.fd).Setxattr(r.gfidAttr, w.g[:]); err != nil {
				return fmt.Errorf("replica root %s: setting gfid of %s: %w", r.root, w.what, err)
			}
		case have != w.g:
			return fmt.Errorf("replica root %s: %s carries gfid %s, want %s", r.root, w.what, have, w.g)
		}
		if err := r.writeDirLink(w.g, w.link); err != nil {
			return fmt.Errorf("replica root %s: gfid index entry of %s: %w", r.root, w.what, err)
		}
	}
	return nil
}

// Close releases the replica. Operations after Close fail.
func (r *Replica) Close() error {
	return r.CloseWith(func() error {
		s := r.s
		err := errors.Join(unix.Close(s.linksFd), unix.Close(s.indexFd), unix.Close(s.rootFd))
		s.linksFd, s.indexFd, s.rootFd = -1, -1, -1
		return err
	})
}

// Root returns the absolute path of the replica root.
func (r *Replica) Root() string { return r.s.root }

// DataDir returns the absolute path of the data tree of the gfid index,
// <root>/.georep/gfid, where rsync receives file data: the regular file of
// gfid ab... is DataDir()/ab/<gfid>, a hardlink of the replica inode.
// DataDir holds only shard directories and hardlinks of regular files: no
// symlink, directory pointer, device, fifo or socket that a receiving rsync
// could follow or write into (those index entries live in .georep/links).
func (r *Replica) DataDir() string { return filepath.Join(r.s.root, metaDir, indexDir) }

// setupLinks creates and opens the links tree .georep/links (mfd is .georep).
func (r *store) setupLinks(mfd int) error {
	if err := apply.MkdirAllowExisting(mfd, linksDir, 0o700); err != nil {
		return fmt.Errorf("creating %s/%s: %w", metaDir, linksDir, err)
	}
	var err error
	if r.linksFd, err = apply.OpenDirAt(mfd, linksDir); err != nil {
		return fmt.Errorf("opening %s/%s: %w", metaDir, linksDir, err)
	}
	return nil
}

// gfidOf reads the gfid an inode carries; zero when it carries none (or a
// malformed one).
func (r *store) gfidOf(n apply.Node) (gfid.GFID, error) {
	b, err := n.Getxattr(r.gfidAttr)
	switch {
	case err == unix.ENODATA || err == unix.ENOTSUP:
		return gfid.GFID{}, nil
	case err == unix.EPERM && !r.asRoot:
		// user.* attributes cannot exist on symlinks and special files.
		return gfid.GFID{}, nil
	case err != nil:
		return gfid.GFID{}, err
	}
	g, err := gfid.FromBytes(b)
	if err != nil {
		r.log.Warn("malformed gfid attribute ignored", "attr", r.gfidAttr, "err", err)
		return gfid.GFID{}, nil
	}
	return g, nil
}

// setGFID marks a freshly created inode with its gfid. As non-root, only
// regular files and directories can carry a user.* attribute; any other inode
// (special) is identified by its index hardlink instead.
func (r *store) setGFID(n apply.Node, g gfid.GFID, special bool) error {
	err := n.Setxattr(r.gfidAttr, g[:])
	if err == unix.EPERM && !r.asRoot && special {
		return nil
	}
	return err
}

// noUserXattrs reports whether an inode of st_mode m cannot carry user.*
// attributes (anything but regular files and directories).
func noUserXattrs(m uint32) bool {
	t := m & unix.S_IFMT
	return t != unix.S_IFREG && t != unix.S_IFDIR
}
