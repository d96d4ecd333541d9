package ops

import (
	"fmt"
	"syscall"
)

// maxName is NAME_MAX on Linux.
const maxName = 255

// ValidateName reports whether name may be used as one name component of a
// replica directory: not empty, not "." or "..", no '/' or NUL byte, and at
// most 255 bytes. Any other bytes (including invalid UTF-8) are accepted.
// The error is ErrNameTooLong for a long name and ErrInvalid otherwise.
func ValidateName(name string) error {
	switch {
	case name == "":
		return nameErrorf(ErrInvalid, "invalid name %q: empty", name)
	case name == ".", name == "..":
		return nameErrorf(ErrInvalid, "invalid name %q: \".\" and \"..\" are not names", name)
	case len(name) > maxName:
		return nameErrorf(ErrNameTooLong, "invalid name %q: %d bytes, longer than %d", truncName(name), len(name), maxName)
	}
	for i := 0; i < len(name); i++ {
		switch name[i] {
		case '/':
			return nameErrorf(ErrInvalid, "invalid name %q: contains '/'", name)
		case 0:
			return nameErrorf(ErrInvalid, "invalid name %q: contains a NUL byte", name)
		}
	}
	return nil
}

// nameError is a refused name: its message, and the errno it stands for.
type nameError struct {
	errno syscall.Errno
	msg   string
}

func (e *nameError) Error() string { return e.msg }
func (e *nameError) Unwrap() error { return e.errno }

func nameErrorf(errno syscall.Errno, format string, args ...any) error {
	return &nameError{errno: errno, msg: fmt.Sprintf(format, args...)}
}

func truncName(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
