// Package slavefake is an in-memory slave for the master's tests: a
// namespace keyed by gfid with the rules of the slave's apply engine
// (slave/apply, gsyncd's resource.py Server.entry_ops and meta_ops):
// idempotent creates, renames into and over names and from wherever a
// gfid is, EEXIST carrying the gfid found, ENOENT for a missing parent,
// hostile names and reserved gfids refused, metadata, whole-file writes,
// listings, stats, purges and xtimes.
//
// Slave implements the slave the master's pipeline needs (slaveAPI in
// master/slave.go) in rpc/ops types, and passes the conformance suite
// rpc/ops/opstest (declaring opstest.Caps InMemory: it has no files on
// disk). It imports nothing of master or slave. It has no gsyncd
// counterpart.
//
// Lookup, Put and Remove are test helpers: they inspect or damage the
// namespace behind the master's back, outside the rules of the ops.
package slavefake
