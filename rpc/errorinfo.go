package rpc

import (
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrorDomain is the Domain of the ErrorInfo details georep's refusals carry.
const ErrorDomain = "georep"

// Reasons of ErrorInfo details: what a client matches a refusal by, never
// by its message.
const (
	// ReasonReplicaNotEmpty: the slave refused the first master of a
	// replica root that holds data georep did not create (Handshake,
	// FailedPrecondition). Metadata: root, entries (the count), names (the
	// first few, one a line).
	ReasonReplicaNotEmpty = "REPLICA_NOT_EMPTY"
	// ReasonErrno: the Linux errno of a domain error (package rpc/wire
	// attaches and reads it). Metadata: errno (decimal).
	ReasonErrno = "ERRNO"
	// ReasonLeaseHeld: another worker of the replica set holds its lease
	// (Handshake, Aborted): the worker stays Passive and asks again.
	// Metadata: replica_set, worker, slave, epoch, since (RFC 3339).
	ReasonLeaseHeld = "LEASE_HELD"
)

// ErrorInfo returns the ErrorInfo of domain ErrorDomain with reason that
// err's status carries, or nil.
func ErrorInfo(err error, reason string) *errdetails.ErrorInfo {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == ErrorDomain && info.GetReason() == reason {
			return info
		}
	}
	return nil
}

// StatusWithInfo is the status error code with msg, carrying an ErrorInfo
// of domain ErrorDomain with reason and metadata md (a refusal a client
// matches by reason).
func StatusWithInfo(code codes.Code, msg, reason string, md map[string]string) error {
	st := status.New(code, msg)
	withInfo, err := st.WithDetails(&errdetails.ErrorInfo{Domain: ErrorDomain, Reason: reason, Metadata: md})
	if err != nil {
		return st.Err()
	}
	return withInfo.Err()
}
