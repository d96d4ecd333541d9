// Package rpc holds what both ends of georep's gRPC channel share: the server
// and client constructors (credentials, keepalive, message limits,
// interceptors, health and reflection), the Prometheus /metrics HTTP server
// of both daemons (ServeMetrics) and the ErrorInfo reasons of refusals
// (gsyncd's repce.py had this role). Package rpc/ops is the domain
// vocabulary of both ends, package rpc/wire the one place where it and
// domain errors become the protocol and gRPC statuses and back.
package rpc
