package apply

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"github.com/georep/georep/rpc/gfid"
)

// Error is an error with the errno a Failure reports and, for EEXIST, the
// gfid found at the name.
type Error struct {
	Errno syscall.Errno
	Msg   string
	// Existing is, for EEXIST, the gfid the name holds (zero if unknown).
	Existing gfid.GFID
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Errno }

// Is makes ENOENT and ESTALE (a stale index entry, a gfid gone) count as
// fs.ErrNotExist.
func (e *Error) Is(target error) bool {
	return target == fs.ErrNotExist && (e.Errno == syscall.ENOENT || e.Errno == syscall.ESTALE)
}

// Errorf makes an Error of errno with a formatted message.
func Errorf(errno syscall.Errno, format string, args ...any) *Error {
	return &Error{Errno: errno, Msg: fmt.Sprintf(format, args...)}
}

// ErrnoOf returns the errno carried by err (EIO if none).
func ErrnoOf(err error) syscall.Errno {
	var oe *Error
	if errors.As(err, &oe) {
		return oe.Errno
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		return en
	}
	return syscall.EIO
}

// NotFound reports whether err means that a gfid or name does not exist (or
// that what led to it is stale).
func NotFound(err error) bool {
	en := ErrnoOf(err)
	return en == syscall.ENOENT || en == syscall.ESTALE
}

// TruncName shortens a name for messages.
func TruncName(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
