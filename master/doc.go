// Package master is the georep master daemon: one worker that detects changes
// in the source (for a plain directory, the hybrid crawl of master/crawl),
// processes the resulting changelogs against the slave (entry ops, meta ops,
// data through the sync jobs of master/syncer), and keeps the resume point
// (stime) and crawl statistics in its work dir. It corresponds to gsyncd's
// master.py (GMaster*Mixin, the keep-alive and crawl stats) and the master
// half of resource.py.
//
// The pipeline declares the slave it needs, slaveAPI (slave.go), in the
// domain vocabulary of package rpc/ops; the session client of slave.go
// (handshake, keep-alive) implements it with the calls of package
// master/slaveclient, and the tests with an in-memory fake. In this package
// only slave.go and the status server (status_server.go, its own protocol)
// see protocol types or gRPC codes; beneath it, master/slaveclient and the
// rsync transport master/tunnel.
package master
