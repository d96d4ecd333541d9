package rpc

import (
	"context"
	"errors"
	"io/fs"
	"syscall"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error maps a domain error to a gRPC status error. It is the one place where
// georep decides which code a failure gets; handlers call it on their way out.
func Error(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(Code(err), err.Error())
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
		switch errno {
		case syscall.EINVAL, syscall.ENAMETOOLONG:
			return codes.InvalidArgument
		case syscall.ENOSPC, syscall.EDQUOT:
			return codes.ResourceExhausted
		case syscall.EROFS, syscall.ENOTDIR, syscall.EISDIR, syscall.ENOTEMPTY, syscall.ESTALE:
			return codes.FailedPrecondition
		}
	}
	return codes.Internal
}
