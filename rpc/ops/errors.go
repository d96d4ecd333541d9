package ops

import (
	"errors"
	"io/fs"
	"syscall"
)

// The domain conditions that cross the slave protocol. Each sentinel is the
// Linux errno gsyncd's entry_ops reports for it, so errors.Is matches an
// error a replica made from a system call, one it made itself, and one a
// client read back from the wire (package rpc/wire) alike, and errors.As
// into a syscall.Errno gives the errno.
const (
	// ErrNotFound: no inode has the gfid, or no entry the name.
	ErrNotFound = syscall.ENOENT
	// ErrExists: the name holds another inode (Failure.Existing says which).
	ErrExists = syscall.EEXIST
	// ErrStale: what a gfid or name stood for changed behind georep's back
	// (a stale index entry, a directory moved while being opened).
	ErrStale = syscall.ESTALE
	// ErrNotDir: a directory was expected.
	ErrNotDir = syscall.ENOTDIR
	// ErrIsDir: a non-directory was expected.
	ErrIsDir = syscall.EISDIR
	// ErrNotEmpty: a directory to remove still has entries.
	ErrNotEmpty = syscall.ENOTEMPTY
	// ErrInvalid: the request itself is refused (a bad gfid, name, mode or
	// xattr).
	ErrInvalid = syscall.EINVAL
	// ErrNameTooLong: a name longer than NAME_MAX.
	ErrNameTooLong = syscall.ENAMETOOLONG
	// ErrNoSpace and ErrQuota: the replica is full.
	ErrNoSpace = syscall.ENOSPC
	ErrQuota   = syscall.EDQUOT
	// ErrReadOnly: the replica is mounted read-only.
	ErrReadOnly = syscall.EROFS
)

// Errno returns the errno err carries: the syscall.Errno in its chain,
// ENOENT for any other fs.ErrNotExist, EIO for any other error, 0 for nil.
func Errno(err error) syscall.Errno {
	var errno syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.As(err, &errno):
		return errno
	case errors.Is(err, fs.ErrNotExist):
		return ErrNotFound
	}
	return syscall.EIO
}
