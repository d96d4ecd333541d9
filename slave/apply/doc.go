// Package apply is the slave's apply engine: the shared system-call layer
// (every call retried on EINTR through Retry, openat2 with RESOLVE_BENEATH,
// the errno helpers, Node for no-follow attribute calls) that every replica
// kind is written in.
package apply
