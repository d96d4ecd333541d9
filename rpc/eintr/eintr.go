// Package eintr retries system calls that a signal interrupted (EINTR): the
// one place where georep's x/sys/unix calls are retried (the Go runtime's
// preemption signals interrupt slow calls on FUSE and other file systems).
// gsyncd's counterpart is syncdutils.py's errno_wrap with EINTR.
package eintr

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Retry calls fn until it does not fail with EINTR and returns its error.
func Retry(fn func() error) error {
	for {
		if err := fn(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// Value calls fn until it does not fail with EINTR and returns its result.
func Value[T any](fn func() (T, error)) (T, error) {
	for {
		v, err := fn()
		if !errors.Is(err, unix.EINTR) {
			return v, err
		}
	}
}
