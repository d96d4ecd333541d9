package eintr

import (
	"errors"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRetry(t *testing.T) {
	for _, tc := range []struct {
		name  string
		errs  []error // what fn returns, call by call
		want  error
		calls int
	}{
		{"ok", []error{nil}, nil, 1},
		{"interrupted then ok", []error{unix.EINTR, unix.EINTR, nil}, nil, 3},
		{"interrupted then fails", []error{unix.EINTR, unix.ENOENT}, unix.ENOENT, 2},
		{"wrapped EINTR", []error{fmt.Errorf("read: %w", unix.EINTR), nil}, nil, 2},
		{"other error", []error{unix.EIO}, unix.EIO, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := Retry(func() error { calls++; return tc.errs[calls-1] })
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) || calls != tc.calls {
				t.Errorf("err %v after %d calls, want %v after %d", err, calls, tc.want, tc.calls)
			}
			calls = 0
			v, err := Value(func() (int, error) { calls++; return calls, tc.errs[calls-1] })
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) || v != tc.calls {
				t.Errorf("Value: %d, %v; want %d, %v", v, err, tc.calls, tc.want)
			}
		})
	}
}
