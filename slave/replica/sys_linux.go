package replica

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/gfid"
)

// opError is an error with the errno a Failure reports.
type opError struct {
	errno    syscall.Errno
	msg      string
	existing gfid.GFID
}

func (e *opError) Error() string { return e.msg }
func (e *opError) Unwrap() error { return e.errno }

// Is makes a stale index entry (ESTALE) count as "does not exist" too.
func (e *opError) Is(target error) bool {
	return target == fs.ErrNotExist && (e.errno == unix.ENOENT || e.errno == unix.ESTALE)
}

func errf(errno syscall.Errno, format string, args ...any) *opError {
	return &opError{errno: errno, msg: fmt.Sprintf(format, args...)}
}

// errnoOf returns the errno carried by err (EIO if none).
func errnoOf(err error) syscall.Errno {
	var oe *opError
	if errors.As(err, &oe) {
		return oe.errno
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		return en
	}
	return unix.EIO
}

// notFound reports whether err means that a gfid or name does not exist (or
// that the index entry leading to it is stale).
func notFound(err error) bool {
	en := errnoOf(err)
	return en == unix.ENOENT || en == unix.ESTALE
}

// retry calls fn until it does not fail with EINTR. Every system call of this
// package goes through it (or through retry0).
func retry[T any](fn func() (T, error)) (T, error) {
	for {
		v, err := fn()
		if !errors.Is(err, unix.EINTR) {
			return v, err
		}
	}
}

func retry0(fn func() error) error {
	_, err := retry(func() (struct{}, error) { return struct{}{}, fn() })
	return err
}

const resolveBeneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// openBeneath opens path beneath dirfd with openat2, never following a
// symlink and never leaving dirfd. The path is made of trusted or validated
// components only.
func openBeneath(dirfd int, path string, flags int) (int, error) {
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC | unix.O_NOFOLLOW),
		Resolve: resolveBeneath,
	}
	for range 64 {
		fd, err := retry(func() (int, error) { return unix.Openat2(dirfd, path, &how) })
		if err == unix.EAGAIN { // a concurrent rename raced the lookup; try again
			continue
		}
		return fd, err
	}
	return -1, unix.EAGAIN
}

// openDirAt opens the directory name (one component) in dirfd for reading.
// It fails (ELOOP/ENOTDIR) if name is a symlink or not a directory.
func openDirAt(dirfd int, name string) (int, error) {
	return openBeneath(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY)
}

func closeFd(fd int) {
	if fd >= 0 {
		_ = unix.Close(fd) // not retried: on Linux the fd is gone even after EINTR
	}
}

func lstatAt(dirfd int, name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := retry0(func() error { return unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) })
	return st, err
}

func fstat(fd int) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := retry0(func() error { return unix.Fstat(fd, &st) })
	return st, err
}

func readlinkAt(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := retry(func() (int, error) { return unix.Readlinkat(dirfd, name, buf) })
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
		if size > 1<<16 {
			return "", unix.ENAMETOOLONG
		}
	}
}

func mkdirAllowExisting(dirfd int, name string, mode uint32) error {
	err := retry0(func() error { return unix.Mkdirat(dirfd, name, mode) })
	if err == unix.EEXIST {
		return nil
	}
	return err
}

// procPath names the entry name of the directory open as dirfd through
// procfs. The kernel follows the /proc/self/fd magic link to the directory
// itself and then looks up the single component name, which the no-follow
// (L*) calls do not follow. No request data other than a validated name
// component is ever part of it.
func procPath(dirfd int, name string) string {
	return "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + name
}

func procFd(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// getxattrFunc reads an attribute into dest (nil dest asks for its size).
func readSized(get func(dest []byte) (int, error)) ([]byte, error) {
	buf := make([]byte, 256)
	for range 8 {
		n, err := retry(func() (int, error) { return get(buf) })
		if err == nil {
			return buf[:n], nil
		}
		if err != unix.ERANGE {
			return nil, err
		}
		size, err := retry(func() (int, error) { return get(nil) })
		if err != nil {
			return nil, err
		}
		buf = make([]byte, size+64)
	}
	return nil, unix.ERANGE
}

// node addresses one inode for attribute calls without following a symlink:
// either an open directory (fd >= 0), or the entry name in the open directory
// dirfd.
type node struct {
	fd    int
	dirfd int
	name  string
}

func fdNode(fd int) node                 { return node{fd: fd, dirfd: -1} }
func atNode(dirfd int, name string) node { return node{fd: -1, dirfd: dirfd, name: name} }

func (n node) stat() (unix.Stat_t, error) {
	if n.fd >= 0 {
		return fstat(n.fd)
	}
	return lstatAt(n.dirfd, n.name)
}

func (n node) getxattr(attr string) ([]byte, error) {
	if n.fd >= 0 {
		return readSized(func(d []byte) (int, error) { return unix.Fgetxattr(n.fd, attr, d) })
	}
	p := procPath(n.dirfd, n.name)
	return readSized(func(d []byte) (int, error) { return unix.Lgetxattr(p, attr, d) })
}

func (n node) setxattr(attr string, value []byte) error {
	if n.fd >= 0 {
		return retry0(func() error { return unix.Fsetxattr(n.fd, attr, value, 0) })
	}
	p := procPath(n.dirfd, n.name)
	return retry0(func() error { return unix.Lsetxattr(p, attr, value, 0) })
}

func (n node) removexattr(attr string) error {
	if n.fd >= 0 {
		return retry0(func() error { return unix.Fremovexattr(n.fd, attr) })
	}
	p := procPath(n.dirfd, n.name)
	return retry0(func() error { return unix.Lremovexattr(p, attr) })
}

func (n node) listxattr() ([]string, error) {
	var b []byte
	var err error
	if n.fd >= 0 {
		b, err = readSized(func(d []byte) (int, error) { return unix.Flistxattr(n.fd, d) })
	} else {
		p := procPath(n.dirfd, n.name)
		b, err = readSized(func(d []byte) (int, error) { return unix.Llistxattr(p, d) })
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range strings.Split(string(b), "\x00") {
		if s != "" {
			names = append(names, s)
		}
	}
	return names, nil
}

// chown changes owner and group of the inode itself (a symlink is not
// followed).
func (n node) chown(uid, gid uint32) error {
	if n.fd >= 0 {
		return retry0(func() error { return unix.Fchown(n.fd, int(uid), int(gid)) })
	}
	return retry0(func() error {
		return unix.Fchownat(n.dirfd, n.name, int(uid), int(gid), unix.AT_SYMLINK_NOFOLLOW)
	})
}

// errIsSymlink is returned by chmod for a symlink, whose mode cannot change.
var errIsSymlink = errors.New("is a symlink")

// chmod sets the permission bits. For an entry in a directory it opens the
// entry with O_PATH|O_NOFOLLOW, checks that it is not a symlink, and changes
// the inode through that descriptor's procfs link (what glibc's
// fchmodat(AT_SYMLINK_NOFOLLOW) does), so a symlink is never followed.
func (n node) chmod(mode uint32) error {
	if n.fd >= 0 {
		return retry0(func() error { return unix.Fchmod(n.fd, mode) })
	}
	fd, err := retry(func() (int, error) {
		return unix.Openat(n.dirfd, n.name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return err
	}
	defer closeFd(fd)
	st, err := fstat(fd)
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return errIsSymlink
	}
	return retry0(func() error { return unix.Chmod(procFd(fd), mode) })
}

// utimes sets atime and mtime (nil leaves one unchanged) of the inode itself.
func (n node) utimes(atime, mtime *unix.Timespec) error {
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
	if atime != nil {
		ts[0] = *atime
	}
	if mtime != nil {
		ts[1] = *mtime
	}
	if n.fd >= 0 {
		// The procfs link of a directory fd leads to the directory itself.
		return retry0(func() error { return unix.UtimesNanoAt(unix.AT_FDCWD, procFd(n.fd), ts, 0) })
	}
	return retry0(func() error { return unix.UtimesNanoAt(n.dirfd, n.name, ts, unix.AT_SYMLINK_NOFOLLOW) })
}

func isDirMode(m uint32) bool  { return m&unix.S_IFMT == unix.S_IFDIR }
func isLinkMode(m uint32) bool { return m&unix.S_IFMT == unix.S_IFLNK }

// readDirNames lists the directory open as fd (without "." and "..").
func readDirNames(fd int) ([]string, error) {
	if _, err := unix.Seek(fd, 0, 0); err != nil {
		return nil, err
	}
	var names []string
	buf := make([]byte, 32<<10)
	for {
		n, err := retry(func() (int, error) { return unix.Getdents(fd, buf) })
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}
