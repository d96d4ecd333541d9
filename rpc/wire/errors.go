package wire

import (
	"context"
	"errors"
	"io/fs"
	"strconv"
	"syscall"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/georep/georep/rpc"
	"github.com/georep/georep/rpc/ops"
)

// codeOfErrno is the gRPC code of the errnos that have one other than
// Internal. Those fs.ErrNotExist, fs.ErrExist and fs.ErrPermission match are
// decided before it: ENOENT, EEXIST and ENOTEMPTY (which Go counts as
// fs.ErrExist: AlreadyExists), EPERM and EACCES.
var codeOfErrno = map[syscall.Errno]codes.Code{
	ops.ErrInvalid:     codes.InvalidArgument,
	ops.ErrNameTooLong: codes.InvalidArgument,
	ops.ErrNoSpace:     codes.ResourceExhausted,
	ops.ErrQuota:       codes.ResourceExhausted,
	ops.ErrReadOnly:    codes.FailedPrecondition,
	ops.ErrNotDir:      codes.FailedPrecondition,
	ops.ErrIsDir:       codes.FailedPrecondition,
	ops.ErrStale:       codes.FailedPrecondition,
}

// errnoOfCode is the errno a status without an errno detail stands for,
// for the codes that stand for one.
var errnoOfCode = map[codes.Code]syscall.Errno{
	codes.NotFound:        ops.ErrNotFound,
	codes.AlreadyExists:   ops.ErrExists,
	codes.InvalidArgument: ops.ErrInvalid,
}

// Code picks the gRPC code for a domain error.
func Code(err error) codes.Code {
	var errno syscall.Errno
	switch {
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, fs.ErrNotExist):
		return codes.NotFound
	case errors.Is(err, fs.ErrExist):
		return codes.AlreadyExists
	case errors.Is(err, fs.ErrPermission):
		return codes.PermissionDenied
	case errors.Is(err, fs.ErrInvalid):
		return codes.InvalidArgument
	case errors.As(err, &errno):
		if c, ok := codeOfErrno[errno]; ok {
			return c
		}
	}
	return codes.Internal
}

// ToStatus returns a domain error as a gRPC status error: the code Code
// picks, err's message, and, when err carries an errno (ops.Errno: one in
// its chain, or fs.ErrNotExist), that errno in an ErrorInfo detail (domain
// rpc.ErrorDomain, reason rpc.ReasonErrno, metadata "errno" in decimal). It
// is the one place where georep decides which code a failure gets; handlers
// call it on their way out. A status error (one FromStatus returned
// included) is returned as it is; nil stays nil.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	st := status.New(Code(err), err.Error())
	var errno syscall.Errno
	if errors.As(err, &errno) || errors.Is(err, fs.ErrNotExist) {
		withErrno, derr := st.WithDetails(&errdetails.ErrorInfo{
			Domain:   rpc.ErrorDomain,
			Reason:   rpc.ReasonErrno,
			Metadata: map[string]string{"errno": strconv.Itoa(int(ops.Errno(err)))},
		})
		if derr == nil {
			st = withErrno
		}
	}
	return st.Err()
}

// FromStatus returns the domain error a gRPC status error stands for: an
// error whose message is the status error's, that keeps its status
// (status.Code and status.FromError still work), and that wraps the errno
// the status carries (its errno detail; else ENOENT for NotFound, EEXIST for
// AlreadyExists, EINVAL for InvalidArgument), so that errors.Is(err,
// ops.ErrStale) and errors.As into a syscall.Errno work; NotFound also
// matches fs.ErrNotExist, Canceled context.Canceled and DeadlineExceeded
// context.DeadlineExceeded. An error that is not a status is returned as it
// is; nil stays nil.
func FromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	if _, ok := err.(*statusError); ok {
		return err
	}
	e := &statusError{st: st}
	if info := rpc.ErrorInfo(err, rpc.ReasonErrno); info != nil {
		if n, perr := strconv.Atoi(info.GetMetadata()["errno"]); perr == nil && n > 0 {
			e.errno = syscall.Errno(n)
		}
	}
	if e.errno == 0 {
		e.errno = errnoOfCode[st.Code()]
	}
	switch st.Code() {
	case codes.NotFound:
		e.cause = fs.ErrNotExist
	case codes.Canceled:
		e.cause = context.Canceled
	case codes.DeadlineExceeded:
		e.cause = context.DeadlineExceeded
	}
	return e
}

// statusError is an error the other end of the channel reported.
type statusError struct {
	st    *status.Status
	errno syscall.Errno // 0: none
	cause error         // nil, fs.ErrNotExist, or a context error
}

func (e *statusError) Error() string              { return e.st.Err().Error() }
func (e *statusError) GRPCStatus() *status.Status { return e.st }

func (e *statusError) Unwrap() []error {
	var errs []error
	if e.errno != 0 {
		errs = append(errs, e.errno)
	}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}
