// Package beneath opens files beneath a directory with openat2(2) so that
// the lookup can neither leave that directory nor follow a symbolic link
// (RESOLVE_BENEATH, RESOLVE_NO_SYMLINKS, RESOLVE_NO_MAGICLINKS): how the
// master opens the source's directories by name and the slave the replica's.
// gsyncd has no counterpart (it follows paths as given).
package beneath

import (
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/eintr"
)

// Resolve is the openat2 resolution every open of this package uses.
const Resolve = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// Open opens path beneath dirfd with flags (O_CLOEXEC and O_NOFOLLOW are
// added), never following a symlink and never leaving dirfd. EINTR is
// retried, and so is EAGAIN (a concurrent rename raced the lookup), 64
// times at most.
func Open(dirfd int, path string, flags int) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC | unix.O_NOFOLLOW), Resolve: Resolve}
	for range 64 {
		fd, err := eintr.Value(func() (int, error) { return unix.Openat2(dirfd, path, &how) })
		if err == unix.EAGAIN {
			continue
		}
		return fd, err
	}
	return -1, unix.EAGAIN
}

// OpenDir opens the directory rel (cleaned; "" or "." is root itself) of
// the directory root for reading, without leaving root or following
// symlinks beneath it (a symlink on the way fails with ELOOP, one at rel
// itself with ENOTDIR).
func OpenDir(root, rel string) (int, error) {
	rfd, err := eintr.Value(func() (int, error) {
		return unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return -1, err
	}
	defer unix.Close(rfd)
	return Open(rfd, filepath.Clean(rel), unix.O_RDONLY|unix.O_DIRECTORY)
}
