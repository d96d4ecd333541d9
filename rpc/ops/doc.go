// Package ops is the slave's domain vocabulary, shared by both ends of the
// slave protocol and by every replica kind: the entry operations (Op, Entry),
// the metadata operations (Meta), whole-file writes (FileData), the
// per-item failures of a batch (Failure), what Stat and Entries answer
// (Attr, FileType, DirEntry), the rule for a name component (ValidateName)
// and the errno sentinels of the conditions that cross the wire (ErrStale,
// ErrNotFound, ...).
//
// It is the vocabulary of gsyncd's entry_ops and meta_ops as resource.py
// Server uses it: the dicts of op, gfid, entry, stat and mode a master
// sends, and the errno-carrying failure list the slave returns. It does no
// I/O and knows nothing of the protocol; package rpc/wire converts to and
// from it.
package ops
