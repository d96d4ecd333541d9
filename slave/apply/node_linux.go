package apply

import (
	"errors"
	"strings"
	"time"

	"github.com/georep/georep/rpc/eintr"
	"github.com/georep/georep/rpc/xattrat"
	"golang.org/x/sys/unix"
)

// Node addresses one inode for attribute calls, never following a symlink:
// a descriptor opened on it for reading or writing (FdNode), an O_PATH
// descriptor of it (PathNode), or the entry name in the open directory dirfd
// (AtNode).
type Node struct {
	fd    int
	path  bool // fd is O_PATH: attribute calls go through its procfs link
	dirfd int
	name  string
}

// FdNode is the inode open as fd (not O_PATH).
func FdNode(fd int) Node { return Node{fd: fd, dirfd: -1} }

// PathNode is the inode of the O_PATH|O_NOFOLLOW descriptor fd.
func PathNode(fd int) Node { return Node{fd: fd, path: true, dirfd: -1} }

// AtNode is the entry name of the directory open as dirfd.
func AtNode(dirfd int, name string) Node { return Node{fd: -1, dirfd: dirfd, name: name} }

// Stat stats the inode.
func (n Node) Stat() (unix.Stat_t, error) {
	if n.fd >= 0 {
		return Fstat(n.fd)
	}
	return LstatAt(n.dirfd, n.name)
}

// Readlink reads the target of a symlink node (PathNode or AtNode).
func (n Node) Readlink() (string, error) {
	if n.fd >= 0 {
		return ReadlinkAt(n.fd, "")
	}
	return ReadlinkAt(n.dirfd, n.name)
}

// Getxattr reads attribute attr.
func (n Node) Getxattr(attr string) ([]byte, error) {
	switch {
	case n.path:
		p := ProcFd(n.fd)
		return xattrat.ReadSized(func(d []byte) (int, error) { return unix.Getxattr(p, attr, d) })
	case n.fd >= 0:
		return xattrat.ReadSized(func(d []byte) (int, error) { return unix.Fgetxattr(n.fd, attr, d) })
	}
	if xattrat.Available() {
		return xattrat.ReadSized(func(d []byte) (int, error) { return xattrat.Get(n.dirfd, n.name, attr, d) })
	}
	p := ProcPath(n.dirfd, n.name)
	return xattrat.ReadSized(func(d []byte) (int, error) { return unix.Lgetxattr(p, attr, d) })
}

// Setxattr sets attribute attr to value.
func (n Node) Setxattr(attr string, value []byte) error {
	switch {
	case n.path:
		return eintr.Retry(func() error { return unix.Setxattr(ProcFd(n.fd), attr, value, 0) })
	case n.fd >= 0:
		return eintr.Retry(func() error { return unix.Fsetxattr(n.fd, attr, value, 0) })
	}
	p := ProcPath(n.dirfd, n.name)
	return eintr.Retry(func() error { return unix.Lsetxattr(p, attr, value, 0) })
}

// Removexattr removes attribute attr.
func (n Node) Removexattr(attr string) error {
	switch {
	case n.path:
		return eintr.Retry(func() error { return unix.Removexattr(ProcFd(n.fd), attr) })
	case n.fd >= 0:
		return eintr.Retry(func() error { return unix.Fremovexattr(n.fd, attr) })
	}
	p := ProcPath(n.dirfd, n.name)
	return eintr.Retry(func() error { return unix.Lremovexattr(p, attr) })
}

// Listxattr lists the names of the inode's attributes.
func (n Node) Listxattr() ([]string, error) {
	var get func(d []byte) (int, error)
	switch {
	case n.path:
		p := ProcFd(n.fd)
		get = func(d []byte) (int, error) { return unix.Listxattr(p, d) }
	case n.fd >= 0:
		get = func(d []byte) (int, error) { return unix.Flistxattr(n.fd, d) }
	default:
		p := ProcPath(n.dirfd, n.name)
		get = func(d []byte) (int, error) { return unix.Llistxattr(p, d) }
	}
	b, err := xattrat.ReadSized(get)
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

// Chown changes owner and group of the inode itself (a symlink is not
// followed).
func (n Node) Chown(uid, gid uint32) error {
	switch {
	case n.path:
		return eintr.Retry(func() error {
			return unix.Fchownat(n.fd, "", int(uid), int(gid), unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW)
		})
	case n.fd >= 0:
		return eintr.Retry(func() error { return unix.Fchown(n.fd, int(uid), int(gid)) })
	}
	return eintr.Retry(func() error {
		return unix.Fchownat(n.dirfd, n.name, int(uid), int(gid), unix.AT_SYMLINK_NOFOLLOW)
	})
}

// ErrIsSymlink is returned by Chmod for a symlink entry, whose mode cannot
// change.
var ErrIsSymlink = errors.New("is a symlink")

// Chmod sets the permission bits. For an entry in a directory it opens the
// entry with O_PATH|O_NOFOLLOW, checks that it is not a symlink, and changes
// the inode through that descriptor's procfs link (what glibc's
// fchmodat(AT_SYMLINK_NOFOLLOW) does), so a symlink is never followed. A
// PathNode must not be a symlink.
func (n Node) Chmod(mode uint32) error {
	switch {
	case n.path:
		return eintr.Retry(func() error { return unix.Chmod(ProcFd(n.fd), mode) })
	case n.fd >= 0:
		return eintr.Retry(func() error { return unix.Fchmod(n.fd, mode) })
	}
	fd, err := eintr.Value(func() (int, error) {
		return unix.Openat(n.dirfd, n.name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return err
	}
	defer CloseFd(fd)
	st, err := Fstat(fd)
	if err != nil {
		return err
	}
	if IsLinkMode(st.Mode) {
		return ErrIsSymlink
	}
	return eintr.Retry(func() error { return unix.Chmod(ProcFd(fd), mode) })
}

// Utimes sets atime and mtime (nil leaves one unchanged) of the inode
// itself.
func (n Node) Utimes(atime, mtime *time.Time) error {
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
	if atime != nil {
		ts[0] = timespec(*atime)
	}
	if mtime != nil {
		ts[1] = timespec(*mtime)
	}
	switch {
	case n.path:
		return eintr.Retry(func() error { return unix.UtimesNanoAt(n.fd, "", ts, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW) })
	case n.fd >= 0:
		// The procfs link of an open fd leads to the inode itself.
		return eintr.Retry(func() error { return unix.UtimesNanoAt(unix.AT_FDCWD, ProcFd(n.fd), ts, 0) })
	}
	return eintr.Retry(func() error { return unix.UtimesNanoAt(n.dirfd, n.name, ts, unix.AT_SYMLINK_NOFOLLOW) })
}

func timespec(t time.Time) unix.Timespec {
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}
