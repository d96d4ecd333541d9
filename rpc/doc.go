// Package rpc holds what both ends of georep's gRPC channel share: the server
// and client constructors (credentials, keepalive, message limits,
// interceptors, health and reflection), and the one place where domain errors
// become gRPC status codes and back (gsyncd's repce.py had this role).
package rpc
