package glusterfs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/beneath"
	"github.com/georep/georep/rpc/eintr"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/slave/apply"
)

// Names on the volume and in the private state directory.
const (
	metaDir  = apply.MetaDir // georep's directory in the volume root (reserved name)
	parkName = "park"        // .georep/park, gfid.Park
	gfidDir  = ".gfid"       // the aux-gfid mount's virtual directory
	// gfidAttr is the virtual attribute holding an inode's gfid as text.
	gfidAttr = "glusterfs.gfid.string"
	// newfileAttr creates an inode with a given gfid (gfid-access).
	newfileAttr = "glusterfs.gfid.newfile"
	// gfid2pathAttr and ancestryAttr are virtual attributes holding a
	// directory's path from the volume root.
	gfid2pathAttr = "glusterfs.gfid2path"
	ancestryAttr  = "glusterfs.ancestry.path"
)

// Volume is a mounted slave volume. Create it with Open, release it with
// Close. Its operations are the apply engine's (package slave/apply) on the
// volume's aux-gfid mount.
type Volume struct {
	*apply.Engine
	v *volume
}

// parallelOps is how many creates of one parallel run (and meta ops or
// writes of distinct gfids) the engine applies at once. Each is a few round
// trips through FUSE to the bricks, which wait far longer than they compute:
// serial, an initial sync of small files ran at a few hundred operations a
// second. The plain replica's disk saturates with fewer (4).
const parallelOps = 8

// volume is the mounted volume as an apply.Backend.
type volume struct {
	cfg   Config
	log   *slog.Logger
	state string // the private state directory
	point string // the mount point
	data  string // the rsync directory: ab is a bind mount of <point>/.gfid
	cl    *client
	binds []string // the shard bind mounts in data

	rootFd int // the mount root, O_PATH
}

// Open mounts the volume and makes sure georep's directory and the park
// directory (gfid.Park) exist on it.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Volume, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("gluster-volume: the slave must run as root to mount a GlusterFS volume and create inodes with given gfids")
	}
	base := cfg.StateDir
	if base == "" {
		base = "/run/georep"
		if err := os.MkdirAll(base, 0o700); err != nil {
			base = os.TempDir()
		}
	} else if err := os.MkdirAll(base, 0o700); err != nil {
		return nil, fmt.Errorf("state-dir %s: %w", base, err)
	}
	state, err := os.MkdirTemp(base, "glusterfs-"+cfg.Volume+"-")
	if err != nil {
		return nil, fmt.Errorf("state-dir %s: %w", base, err)
	}
	v := &volume{cfg: cfg, log: log, state: state, point: filepath.Join(state, "mnt"), data: filepath.Join(state, "rsync"), rootFd: -1}
	fail := func(err error) (*Volume, error) {
		return nil, errors.Join(err, v.close())
	}
	if err := os.Mkdir(v.point, 0o700); err != nil {
		return fail(err)
	}
	if v.cl, err = mountVolume(ctx, cfg, v.point, filepath.Join(state, "glusterfs.log"), log); err != nil {
		return fail(err)
	}
	if v.rootFd, err = eintr.Value(func() (int, error) {
		return unix.Open(v.point, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	}); err != nil {
		return fail(fmt.Errorf("open mount %s: %w", v.point, err))
	}
	if err := v.setup(); err != nil {
		return fail(err)
	}
	if err := v.makeDataDir(); err != nil {
		return fail(err)
	}
	log.Info("slave volume mounted", "volume", cfg.Volume, "mount", v.point)
	ecfg := apply.Config{
		Workers: parallelOps,
		// The volume keeps every gfid itself: nothing of ours to keep in
		// step, so independent entry ops of any kind go side by side.
		ParallelEntries: true,
		// glusterfs.gfid.newfile fails EEXIST on a name taken, and Create
		// reports what it holds.
		CreateChecksName: true,
		Namespace:        "trusted",
		Reserved: map[string]string{gfidDir: errReservedGFIDDir,
			DirLockName: `name "` + DirLockName + `" in the volume root is reserved by georep's slave on a GlusterFS volume (its slave nodes' directory lock): rename it on the master`},
		Hidden: InternalRootNames,
		Closed: apply.Errorf(unix.EBADF, "slave volume is closed"),
	}
	return &Volume{Engine: apply.New(v, ecfg, log), v: v}, nil
}

// setup creates .georep (any gfid) and .georep/park (gfid.Park), holding
// the directory lock of the park's gfid all along: several slave nodes may
// start at once on a new volume, and the first makes both.
func (v *volume) setup() error {
	unlock, err := v.LockDir(gfid.Park)
	if err != nil {
		return err
	}
	defer unlock()
	ni, err := v.Lookup(v.rootFd, metaDir)
	if err != nil {
		return fmt.Errorf("%s: %w", metaDir, err)
	}
	if !ni.Exists {
		if err := v.newEntry(gfid.Root, metaDir, gfid.New(), unix.S_IFDIR|0o700, 0, ""); err != nil && apply.ErrnoOf(err) != unix.EEXIST {
			return fmt.Errorf("create %s: %w", metaDir, err)
		}
		if ni, err = v.Lookup(v.rootFd, metaDir); err != nil {
			return fmt.Errorf("%s: %w", metaDir, err)
		}
	}
	if !ni.IsDir() {
		return fmt.Errorf("%s in the volume root is not a directory: move it away", metaDir)
	}
	mfd, err := beneath.Open(v.rootFd, metaDir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("open %s: %w", metaDir, err)
	}
	defer apply.CloseFd(mfd)
	pi, err := v.Lookup(mfd, parkName)
	if err != nil {
		return fmt.Errorf("%s/%s: %w", metaDir, parkName, err)
	}
	if !pi.Exists {
		if err := v.newEntry(ni.GFID, parkName, gfid.Park, unix.S_IFDIR|0o700, 0, ""); err != nil {
			return fmt.Errorf("create %s/%s with gfid %s: %w", metaDir, parkName, gfid.Park, err)
		}
		return nil
	}
	if !pi.IsDir() || pi.GFID != gfid.Park {
		return fmt.Errorf("%s/%s holds gfid %s, want the park directory %s: move it away", metaDir, parkName, pi.GFID, gfid.Park)
	}
	return nil
}

// makeDataDir makes the rsync directory: 256 shard directories ab, each a
// bind mount of <mount>/.gfid (nosymfollow like the mount), so that the
// master's paths ab/<gfid> land in the inode of that gfid on the attached
// mount. Symlinks ab -> <mount>/.gfid do not work: rsync 3.4+ opens the
// directories of a destination path without following symlinks (ELOOP).
func (v *volume) makeDataDir() error {
	if err := os.Mkdir(v.data, 0o700); err != nil {
		return err
	}
	src := filepath.Join(v.point, gfidDir)
	for i := range 256 {
		dst := filepath.Join(v.data, fmt.Sprintf("%02x", i))
		if err := os.Mkdir(dst, 0o700); err != nil {
			return err
		}
		if err := eintr.Retry(func() error { return unix.Mount(src, dst, "", unix.MS_BIND, "") }); err != nil {
			return fmt.Errorf("bind %s on %s: %w", src, dst, err)
		}
		v.binds = append(v.binds, dst)
		flags := uintptr(unix.MS_REMOUNT | unix.MS_BIND | unix.MS_NOSYMFOLLOW | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
		if err := eintr.Retry(func() error { return unix.Mount("", dst, "", flags, "") }); err != nil {
			return fmt.Errorf("remount %s nosymfollow: %w", dst, err)
		}
	}
	return nil
}

// unbind unmounts the shard bind mounts (never lazily).
func (v *volume) unbind() error {
	var errs []error
	for _, dst := range v.binds {
		var err error
		for range 50 {
			if err = eintr.Retry(func() error { return unix.Unmount(dst, 0) }); err != unix.EBUSY {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil && err != unix.EINVAL {
			errs = append(errs, fmt.Errorf("unmount %s: %w", dst, err))
		}
	}
	v.binds = nil
	return errors.Join(errs...)
}

// Close unmounts the volume, reaps the client and removes the private state
// directory. Operations after Close fail.
func (vol *Volume) Close() error { return vol.CloseWith(vol.v.close) }

func (v *volume) close() error {
	apply.CloseFd(v.rootFd)
	v.rootFd = -1
	var errs []error
	if err := v.unbind(); err != nil {
		errs = append(errs, err)
	}
	if v.cl != nil {
		if err := v.cl.close(); err != nil {
			errs = append(errs, err)
		}
	}
	if ok, err := mounted(v.point); err != nil || ok {
		errs = append(errs, fmt.Errorf("%s is still mounted: state directory %s kept", v.point, v.state))
		return errors.Join(errs...)
	}
	if err := os.RemoveAll(v.state); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Root is the mount point: the directory holding georep's own state
// (.georep/volume-id, .georep/master-volume-id).
func (vol *Volume) Root() string { return vol.v.point }

// DataDir is the directory the slave's rsync receives into: ab/<gfid> there
// is the inode of gfid on the volume.
func (vol *Volume) DataDir() string { return vol.v.data }

// openGFID opens the inode of g (O_PATH unless flags say otherwise), never
// following a symlink.
func (v *volume) openGFID(g gfid.GFID, flags int) (int, error) {
	fd, _, err := v.openGFIDStat(g, flags)
	return fd, err
}

// openGFIDStat is openGFID that also returns the inode's attributes, as
// the open checked them.
func (v *volume) openGFIDStat(g gfid.GFID, flags int) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	if g == gfid.Root {
		fd, err := beneath.Open(v.rootFd, ".", flags)
		if err != nil {
			return -1, st, err
		}
		if st, err = apply.Fstat(fd); err != nil {
			apply.CloseFd(fd)
			return -1, st, err
		}
		return fd, st, nil
	}
	fd, err := beneath.Open(v.rootFd, gfidDir+"/"+g.String(), flags)
	if err == unix.ESTALE || err == unix.EINVAL && g.IsZero() {
		return -1, st, unix.ENOENT
	}
	if err != nil {
		return -1, st, err
	}
	// A gfid whose inode is gone can still open (a cached inode) and then
	// answer ESTALE.
	st, err = apply.Fstat(fd)
	if err == nil && st.Nlink == 0 && !apply.IsDirMode(st.Mode) {
		err = unix.ENOENT
	}
	if err != nil {
		apply.CloseFd(fd)
		if err == unix.ESTALE {
			err = unix.ENOENT
		}
		return -1, st, err
	}
	return fd, st, nil
}

// Lookup looks name up in dirfd without following it, with its gfid.
//
// The name is opened O_PATH (never following it; a device or fifo is not
// opened): one lookup through FUSE, then the stat and the gfid attribute
// of that very inode through its descriptor. (An lstat and an lgetxattr of
// the name would look it up twice, and could see two inodes.)
func (v *volume) Lookup(dirfd int, name string) (apply.Name, error) {
	fd, err := beneath.Open(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW)
	if err == unix.ENOENT || err == unix.ESTALE {
		return apply.Name{}, nil
	}
	if err != nil {
		return apply.Name{}, err
	}
	defer apply.CloseFd(fd)
	st, err := apply.Fstat(fd)
	if err == unix.ENOENT || err == unix.ESTALE {
		return apply.Name{}, nil
	}
	if err != nil {
		return apply.Name{}, err
	}
	b, err := apply.PathNode(fd).Getxattr(gfidAttr)
	if err == unix.ENOENT || err == unix.ESTALE {
		return apply.Name{}, nil
	}
	if err != nil {
		return apply.Name{}, fmt.Errorf("%s of %q: %w", gfidAttr, apply.TruncName(name), err)
	}
	g, err := parseGFIDAttr(b)
	if err != nil {
		return apply.Name{}, fmt.Errorf("%s of %q: %w", gfidAttr, apply.TruncName(name), err)
	}
	return apply.Name{Exists: true, St: st, GFID: g}, nil
}

func parseGFIDAttr(b []byte) (gfid.GFID, error) {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return gfid.Parse(string(b))
}

// gfidOfFd reads the gfid of the inode open as fd.
func gfidOfFd(fd int) (gfid.GFID, error) {
	b, err := apply.PathNode(fd).Getxattr(gfidAttr)
	if err != nil {
		return gfid.GFID{}, err
	}
	return parseGFIDAttr(b)
}

// newEntry creates name in directory parent as an inode of gfid g with
// gsyncd's glusterfs.gfid.newfile blob (resource.py _fmt_mknod, _fmt_mkdir,
// _fmt_symlink): uid and gid 0 (the caller chowns), the mode with its type
// bits, rdev for devices, umask 0.
func (v *volume) newEntry(parent gfid.GFID, name string, g gfid.GFID, mode uint32, rdev uint64, target string) error {
	pfd, err := v.OpenDir(parent)
	if err != nil {
		return err
	}
	defer apply.CloseFd(pfd)
	return v.newEntryAt(pfd, name, g, mode, rdev, target)
}

// newEntryAt is newEntry in the directory open as pfd (O_PATH, opened by
// its gfid): the caller's descriptor, not a second lookup of the parent.
func (v *volume) newEntryAt(pfd int, name string, g gfid.GFID, mode uint32, rdev uint64, target string) error {
	blob := newfileBlob(g, name, mode, rdev, target)
	// pfd is an O_PATH directory: the procfs link leads to it.
	return eintr.Retry(func() error { return unix.Setxattr(apply.ProcFd(pfd), newfileAttr, blob, 0) })
}

// LockDir serialises the creation of the directory g (apply.DirLocker)
// with every other client of the volume, lookups included: on a distributed volume every brick of the master
// records every directory, so the workers of several replica sets, through
// several slave nodes, create the same directory at the same moment, and
// two concurrent mkdirs of one gfid through two GlusterFS clients leave
// DHT layouts that overlap and leave hash ranges to no brick (names there
// fail EOPNOTSUPP). The lock is a byte of DirLockName chosen by the gfid
// (an open file description lock, granted by the brick that holds the
// file, released if this node dies): the second mkdir waits, then finds
// the directory made. (A lookup by another client in the middle of a
// mkdir caches a layout with a hole for good: opendir then fails
// EOPNOTSUPP on that client.)
func (v *volume) LockDir(g gfid.GFID) (func(), error) {
	f, err := os.OpenFile(filepath.Join(v.point, DirLockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("directory creation lock: %w", err)
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart, Start: int64(binary.BigEndian.Uint32(g[12:]) % 65536), Len: 1}
	if err := eintr.Retry(func() error { return unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLKW, &lk) }); err != nil {
		f.Close()
		return nil, fmt.Errorf("directory creation lock: %w", err)
	}
	return func() { f.Close() }, nil
}

// newfileBlob packs gfid-access's ga_newfile_args: big endian
// uid, gid, the gfid as 36 characters + NUL, st_mode, the name + NUL, then
// for a directory mode and umask, for a symlink the target + NUL, for
// anything else mode, rdev and umask.
func newfileBlob(g gfid.GFID, name string, mode uint32, rdev uint64, target string) []byte {
	b := make([]byte, 0, 64+len(name)+len(target))
	b = binary.BigEndian.AppendUint32(b, 0)
	b = binary.BigEndian.AppendUint32(b, 0)
	b = append(append(b, g.String()...), 0)
	b = binary.BigEndian.AppendUint32(b, mode)
	b = append(append(b, name...), 0)
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		b = binary.BigEndian.AppendUint32(b, mode&0o7777)
		b = binary.BigEndian.AppendUint32(b, 0)
	case unix.S_IFLNK:
		b = append(append(b, target...), 0)
	default:
		b = binary.BigEndian.AppendUint32(b, mode&0o7777)
		b = binary.BigEndian.AppendUint32(b, uint32(rdev))
		b = binary.BigEndian.AppendUint32(b, 0)
	}
	return b
}
