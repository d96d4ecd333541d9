// Package wire is the one place that converts between the domain vocabulary
// (package rpc/ops) and the slave protocol (package gen/georep/slave/v1), in
// both directions: entry ops, meta ops, whole-file writes, per-item failures,
// attributes and directory entries, and errors, which become gRPC statuses
// carrying their errno on the way out (ToStatus) and domain errors again on
// the way in (FromStatus), so that a client tests them with errors.Is against
// the sentinels of package ops.
//
// The slave's handlers convert requests from the protocol and answers to it;
// the master's client builds requests from ops values and reads answers
// back. It is what gsyncd's repce.py did by pickling: the shape of an op is
// the same on both ends.
package wire
