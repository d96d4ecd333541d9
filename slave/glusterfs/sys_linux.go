package glusterfs

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/gfid"
)

// opError is an error with the errno a Failure reports and, for EEXIST, the
// gfid found at the name.
type opError struct {
	errno    syscall.Errno
	msg      string
	existing gfid.GFID
}

func (e *opError) Error() string { return e.msg }
func (e *opError) Unwrap() error { return e.errno }

// Is makes ENOENT and ESTALE count as fs.ErrNotExist.
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

func notFound(err error) bool {
	en := errnoOf(err)
	return en == unix.ENOENT || en == unix.ESTALE
}

// retry calls fn until it does not fail with EINTR; every system call of
// this package goes through it.
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
// symlink and never leaving dirfd.
func openBeneath(dirfd int, path string, flags int) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC | unix.O_NOFOLLOW), Resolve: resolveBeneath}
	for range 64 {
		fd, err := retry(func() (int, error) { return unix.Openat2(dirfd, path, &how) })
		if err == unix.EAGAIN {
			continue
		}
		return fd, err
	}
	return -1, unix.EAGAIN
}

func closeFd(fd int) {
	if fd >= 0 {
		_ = unix.Close(fd)
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

// readlinkAt reads the symlink name in dirfd ("" with an O_PATH descriptor of
// the symlink itself).
func readlinkAt(dirfd int, name string) (string, error) {
	for size := 256; size <= 1<<17; size *= 2 {
		buf := make([]byte, size)
		n, err := retry(func() (int, error) { return unix.Readlinkat(dirfd, name, buf) })
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
	return "", unix.ENAMETOOLONG
}

// procFd is the procfs link of fd: the attribute calls that follow it reach
// the inode fd was opened on (a symlink itself for an O_PATH|O_NOFOLLOW
// descriptor), never what a symlink points to.
func procFd(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// procPath names entry name of the directory open as dirfd; the L* calls do
// not follow name. name is a validated single component.
func procPath(dirfd int, name string) string { return procFd(dirfd) + "/" + name }

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

// node addresses one inode: an O_PATH (or open) descriptor of it.
type node struct{ fd int }

func (n node) stat() (unix.Stat_t, error) { return fstat(n.fd) }

func (n node) getxattr(attr string) ([]byte, error) {
	p := procFd(n.fd)
	return readSized(func(d []byte) (int, error) { return unix.Getxattr(p, attr, d) })
}

func (n node) setxattr(attr string, value []byte) error {
	p := procFd(n.fd)
	return retry0(func() error { return unix.Setxattr(p, attr, value, 0) })
}

func (n node) removexattr(attr string) error {
	p := procFd(n.fd)
	return retry0(func() error { return unix.Removexattr(p, attr) })
}

func (n node) listxattr() ([]string, error) {
	p := procFd(n.fd)
	b, err := readSized(func(d []byte) (int, error) { return unix.Listxattr(p, d) })
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

func (n node) chown(uid, gid uint32) error {
	return retry0(func() error {
		return unix.Fchownat(n.fd, "", int(uid), int(gid), unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW)
	})
}

// chmod sets the permission bits; never called on a symlink.
func (n node) chmod(mode uint32) error {
	return retry0(func() error { return unix.Chmod(procFd(n.fd), mode) })
}

func (n node) utimes(atime, mtime *time.Time) error {
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
	if atime != nil {
		ts[0] = timespec(*atime)
	}
	if mtime != nil {
		ts[1] = timespec(*mtime)
	}
	return retry0(func() error { return unix.UtimesNanoAt(n.fd, "", ts, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW) })
}

func timespec(t time.Time) unix.Timespec {
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

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

func isDirMode(m uint32) bool  { return m&unix.S_IFMT == unix.S_IFDIR }
func isLinkMode(m uint32) bool { return m&unix.S_IFMT == unix.S_IFLNK }

func truncName(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
