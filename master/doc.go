// Package master is the georep master daemon: workers that detect changes
// in the source (the crawls of master/crawl, the journal of master/journal,
// a brick's changelogs), process the resulting changelogs against the
// slave (entry ops, meta ops, data through the sync jobs of master/syncer), and keep the resume point
// (stime) and crawl statistics in its work dir. It corresponds to gsyncd's
// master.py (GMaster*Mixin, the keep-alive and crawl stats) and the master
// half of resource.py.
//
// A worker runs one loop (worker_loop.go) over a change source, the
// interface that loop declares: the fanotify journal of a plain directory
// (journal_source.go), the changelogs of a GlusterFS brick
// (brick_source.go), or a hybrid crawl every change-interval
// (crawl_source.go). The loop runs hybrid passes (worker.go) and changelog
// passes (scoped_pass.go); supervise.go restarts it with backoff and keeps
// brick workers Active or Passive (gsyncd's monitor.py). The status service
// and the metrics read workers through snapshot, never their fields.
//
// The pipeline declares the slave it needs, slaveAPI (slave.go), in the
// domain vocabulary of package rpc/ops; the session client of slave.go
// (handshake, keep-alive) implements it with the calls of package
// master/slaveclient, and the tests with an in-memory fake. In this package
// only slave.go and the status server (status_server.go, its own protocol)
// see protocol types or gRPC codes; beneath it, master/slaveclient and the
// rsync transport master/slaveclient/tunnel.
package master
