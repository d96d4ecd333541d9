package wire

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/georep/georep/rpc/ops"
)

// errnoError is an error with its own message that unwraps to an errno, as
// the replicas make them.
type errnoError struct {
	errno syscall.Errno
	msg   string
}

func (e *errnoError) Error() string { return e.msg }
func (e *errnoError) Unwrap() error { return e.errno }

// staleError is the replicas' stale index entry: ESTALE that also counts as
// fs.ErrNotExist.
type staleError struct{ errnoError }

func (e *staleError) Is(target error) bool { return target == fs.ErrNotExist }

func TestCode(t *testing.T) {
	tests := []struct {
		err  error
		want codes.Code
	}{
		{fmt.Errorf("stat: %w", fs.ErrNotExist), codes.NotFound},
		{fmt.Errorf("write: %w", syscall.ENOSPC), codes.ResourceExhausted},
		{syscall.EINVAL, codes.InvalidArgument},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{errors.New("boom"), codes.Internal},
		{fmt.Errorf("x: %w", context.Canceled), codes.Canceled},
		{syscall.ENOENT, codes.NotFound},
		{syscall.EEXIST, codes.AlreadyExists},
		{syscall.EPERM, codes.PermissionDenied},
		{syscall.EACCES, codes.PermissionDenied},
		{fs.ErrInvalid, codes.InvalidArgument},
		{syscall.ENAMETOOLONG, codes.InvalidArgument},
		{syscall.EDQUOT, codes.ResourceExhausted},
		{syscall.EROFS, codes.FailedPrecondition},
		{syscall.ENOTDIR, codes.FailedPrecondition},
		{syscall.EISDIR, codes.FailedPrecondition},
		{syscall.ENOTEMPTY, codes.AlreadyExists}, // Go counts it as fs.ErrExist
		{syscall.ESTALE, codes.FailedPrecondition},
		{&staleError{errnoError{syscall.ESTALE, "stale"}}, codes.NotFound},
		{syscall.EIO, codes.Internal},
		{syscall.ECANCELED, codes.Internal},
	}
	for _, tt := range tests {
		if got := Code(tt.err); got != tt.want {
			t.Errorf("Code(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// overTheWire is what a client receives for a status error the server
// returned: the status marshalled and unmarshalled.
func overTheWire(t *testing.T, err error) error {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("%v is not a status error", err)
	}
	return status.FromProto(st.Proto()).Err()
}

// TestErrorRoundTrip: a domain error goes out as a status (ToStatus) and
// comes back (FromStatus) with its code, its message and its errno.
func TestErrorRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		code  codes.Code
		errno syscall.Errno // 0: none
		is    []error
	}{
		{"not found", fmt.Errorf("stat %s: %w", "g", syscall.ENOENT), codes.NotFound, ops.ErrNotFound, []error{ops.ErrNotFound, fs.ErrNotExist}},
		{"fs not exist", fmt.Errorf("open: %w", fs.ErrNotExist), codes.NotFound, ops.ErrNotFound, []error{ops.ErrNotFound, fs.ErrNotExist}},
		{"exists", &errnoError{syscall.EEXIST, "name exists"}, codes.AlreadyExists, ops.ErrExists, []error{ops.ErrExists, fs.ErrExist}},
		{"stale", &errnoError{syscall.ESTALE, "directory moved"}, codes.FailedPrecondition, ops.ErrStale, []error{ops.ErrStale}},
		{"stale as not found", &staleError{errnoError{syscall.ESTALE, "stale index entry"}}, codes.NotFound, ops.ErrStale, []error{ops.ErrStale, fs.ErrNotExist}},
		{"not a directory", fmt.Errorf("entries: %w", &fs.PathError{Op: "open", Path: "d", Err: syscall.ENOTDIR}), codes.FailedPrecondition, ops.ErrNotDir, []error{ops.ErrNotDir}},
		{"is a directory", syscall.EISDIR, codes.FailedPrecondition, ops.ErrIsDir, []error{ops.ErrIsDir}},
		{"not empty", syscall.ENOTEMPTY, codes.AlreadyExists, ops.ErrNotEmpty, []error{ops.ErrNotEmpty}},
		{"invalid name", fmt.Errorf("purge: %w", ops.ValidateName("a/b")), codes.InvalidArgument, ops.ErrInvalid, []error{ops.ErrInvalid}},
		{"name too long", ops.ValidateName(string(make([]byte, 256))), codes.InvalidArgument, ops.ErrNameTooLong, []error{ops.ErrNameTooLong}},
		{"no space", syscall.ENOSPC, codes.ResourceExhausted, ops.ErrNoSpace, []error{ops.ErrNoSpace}},
		{"quota", syscall.EDQUOT, codes.ResourceExhausted, ops.ErrQuota, []error{ops.ErrQuota}},
		{"read-only", syscall.EROFS, codes.FailedPrecondition, ops.ErrReadOnly, []error{ops.ErrReadOnly}},
		{"permission", syscall.EPERM, codes.PermissionDenied, syscall.EPERM, []error{fs.ErrPermission}},
		{"io", syscall.EIO, codes.Internal, syscall.EIO, nil},
		{"no errno", errors.New("boom"), codes.Internal, 0, nil},
		{"canceled", fmt.Errorf("apply: %w", context.Canceled), codes.Canceled, 0, []error{context.Canceled}},
		{"deadline", context.DeadlineExceeded, codes.DeadlineExceeded, 0, []error{context.DeadlineExceeded}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := ToStatus(tt.err)
			if got := status.Code(out); got != tt.code {
				t.Fatalf("ToStatus(%v): code %v, want %v", tt.err, got, tt.code)
			}
			if got := status.Convert(out).Message(); got != tt.err.Error() {
				t.Errorf("ToStatus(%v): message %q, want %q", tt.err, got, tt.err.Error())
			}
			back := FromStatus(overTheWire(t, out))
			if got := status.Code(back); got != tt.code {
				t.Errorf("FromStatus: code %v, want %v", got, tt.code)
			}
			if got := status.Convert(back).Message(); got != tt.err.Error() {
				t.Errorf("FromStatus: message %q, want %q", got, tt.err.Error())
			}
			var errno syscall.Errno
			if got := errors.As(back, &errno); got != (tt.errno != 0) || errno != tt.errno {
				t.Errorf("FromStatus(%v): errno %v (%v), want %v", back, errno, got, tt.errno)
			}
			for _, target := range tt.is {
				if !errors.Is(back, target) {
					t.Errorf("errors.Is(%v, %v) = false", back, target)
				}
			}
			// And out again unchanged: a proxy passes it on as it came.
			if again := ToStatus(back); again != back {
				t.Errorf("ToStatus(FromStatus(x)) = %v, want it unchanged", again)
			}
		})
	}
}

// TestFromStatus: a status without an errno detail (a protocol refusal, an
// older slave, the transport) still maps to what its code stands for.
func TestFromStatus(t *testing.T) {
	tests := []struct {
		st    error
		errno syscall.Errno
		is    []error
		isNot []error
	}{
		{status.Error(codes.NotFound, "gone"), ops.ErrNotFound, []error{ops.ErrNotFound, fs.ErrNotExist}, nil},
		{status.Error(codes.AlreadyExists, "there"), ops.ErrExists, []error{ops.ErrExists}, nil},
		{status.Error(codes.InvalidArgument, "batch too large"), ops.ErrInvalid, []error{ops.ErrInvalid}, nil},
		{status.Error(codes.FailedPrecondition, "session lost"), 0, nil, []error{ops.ErrStale, ops.ErrNotDir}},
		{status.Error(codes.Unavailable, "connection refused"), 0, nil, []error{fs.ErrNotExist}},
		{status.Error(codes.PermissionDenied, "certificate"), 0, nil, []error{fs.ErrPermission}},
		{status.Error(codes.Canceled, "canceled"), 0, []error{context.Canceled}, nil},
		{status.Error(codes.DeadlineExceeded, "deadline"), 0, []error{context.DeadlineExceeded}, nil},
	}
	for _, tt := range tests {
		got := FromStatus(tt.st)
		if got.Error() != tt.st.Error() {
			t.Errorf("FromStatus(%v): message %q", tt.st, got.Error())
		}
		if status.Code(got) != status.Code(tt.st) {
			t.Errorf("FromStatus(%v): code %v", tt.st, status.Code(got))
		}
		var errno syscall.Errno
		if errors.As(got, &errno) != (tt.errno != 0) || errno != tt.errno {
			t.Errorf("FromStatus(%v): errno %v, want %v", tt.st, errno, tt.errno)
		}
		for _, target := range tt.is {
			if !errors.Is(got, target) {
				t.Errorf("errors.Is(FromStatus(%v), %v) = false", tt.st, target)
			}
		}
		for _, target := range tt.isNot {
			if errors.Is(got, target) {
				t.Errorf("errors.Is(FromStatus(%v), %v) = true", tt.st, target)
			}
		}
	}
}

func TestNilAndNonStatus(t *testing.T) {
	if ToStatus(nil) != nil || FromStatus(nil) != nil {
		t.Fatal("nil does not stay nil")
	}
	local := errors.New("local")
	if got := FromStatus(local); got != local {
		t.Errorf("FromStatus of a non-status error = %v, want it unchanged", got)
	}
	st := status.Error(codes.Aborted, "held by another master")
	if got := ToStatus(st); got != st {
		t.Errorf("ToStatus of a status error = %v, want it unchanged", got)
	}
	wrapped := fmt.Errorf("purge: %w", st)
	if got := ToStatus(wrapped); got != wrapped {
		t.Errorf("ToStatus of a wrapped status error = %v, want it unchanged", got)
	}
}
