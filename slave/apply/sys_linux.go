package apply

import (
	"strconv"

	"github.com/georep/georep/rpc/beneath"
	"github.com/georep/georep/rpc/eintr"
	"golang.org/x/sys/unix"
)

// OpenDirAt opens the directory name (one component) in dirfd for reading.
// It fails (ELOOP/ENOTDIR) if name is a symlink or not a directory.
func OpenDirAt(dirfd int, name string) (int, error) {
	return beneath.Open(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY)
}

// CloseFd closes fd when it is one (>= 0).
func CloseFd(fd int) {
	if fd >= 0 {
		_ = unix.Close(fd) // not retried: on Linux the fd is gone even after EINTR
	}
}

// LstatAt stats name in dirfd without following it.
func LstatAt(dirfd int, name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := eintr.Retry(func() error { return unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) })
	return st, err
}

// Fstat stats the inode open as fd.
func Fstat(fd int) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := eintr.Retry(func() error { return unix.Fstat(fd, &st) })
	return st, err
}

// ReadlinkAt reads the symlink name in dirfd ("" with an O_PATH descriptor
// of the symlink itself).
func ReadlinkAt(dirfd int, name string) (string, error) {
	for size := 256; size <= 1<<17; size *= 2 {
		buf := make([]byte, size)
		n, err := eintr.Value(func() (int, error) { return unix.Readlinkat(dirfd, name, buf) })
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
	return "", unix.ENAMETOOLONG
}

// MkdirAllowExisting makes directory name in dirfd; one already there is
// fine.
func MkdirAllowExisting(dirfd int, name string, mode uint32) error {
	err := eintr.Retry(func() error { return unix.Mkdirat(dirfd, name, mode) })
	if err == unix.EEXIST {
		return nil
	}
	return err
}

// ProcFd is the procfs link of fd: the attribute calls that follow it reach
// the inode fd was opened on (a symlink itself for an O_PATH|O_NOFOLLOW
// descriptor), never what a symlink points to.
func ProcFd(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// ProcPath names the entry name of the directory open as dirfd through
// procfs. The kernel follows the /proc/self/fd magic link to the directory
// itself and then looks up the single component name, which the no-follow
// (L*) calls do not follow. No request data other than a validated name
// component is ever part of it.
func ProcPath(dirfd int, name string) string { return ProcFd(dirfd) + "/" + name }

// ReadDirNames lists the directory open as fd (without "." and "..").
func ReadDirNames(fd int) ([]string, error) {
	if _, err := unix.Seek(fd, 0, 0); err != nil {
		return nil, err
	}
	var names []string
	buf := make([]byte, 32<<10)
	for {
		n, err := eintr.Value(func() (int, error) { return unix.Getdents(fd, buf) })
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

// IsDirMode and IsLinkMode test the type bits of st_mode m.
func IsDirMode(m uint32) bool  { return m&unix.S_IFMT == unix.S_IFDIR }
func IsLinkMode(m uint32) bool { return m&unix.S_IFMT == unix.S_IFLNK }
