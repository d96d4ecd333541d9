// Package replica owns the slave's plain-directory replica: a directory tree
// beneath a replica root in which every inode carries the master's gfid,
// plus the gfid index (.georep/gfid for regular files, the only tree rsync
// writes into, and .georep/links for every other type) and the park
// directory (.georep/park) kept beside it.
//
// It is a backend of the apply engine (package slave/apply, gsyncd's
// resource.py Server.entry_ops and Server.meta_ops): the engine decides what
// an entry op, a meta op, a write or a purge does; this package locates
// inodes and directories by gfid through the index, creates inodes with
// their gfid attribute, links, renames and removes by (parent, name), and
// keeps the index in step (repairing it when a replay finds a name already
// holding its gfid). It is domain code in the vocabulary of package rpc/ops:
// the gRPC layer in package slave converts to and from the protocol (package
// rpc/wire).
//
// Confinement: every filesystem call is made relative to a directory file
// descriptor reached from the root's descriptor without following a symlink,
// with one validated name component at a time (or openat2 with
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS). Nothing outside the replica root is
// ever changed, whatever the input.
//
// Concurrency: a Replica is safe for concurrent use. Operations run one at a
// time, except the creates of one run of independent creates, and meta ops
// or writes of distinct gfids, which the engine applies with four workers.
package replica

import "github.com/georep/georep/slave/apply"

// File type bits of st_mode (Linux values; spelled out so this file builds
// everywhere).
const (
	modeTypeMask = 0o170000
	modePerm     = 0o7777
)

// Names of the replica's own directory and its contents.
const (
	// metaDir is the directory beneath the replica root that georep owns.
	// It is a reserved name in the root directory.
	metaDir  = apply.MetaDir
	indexDir = "gfid"  // the data tree of the gfid index: regular files only
	linksDir = "links" // the links tree of the gfid index: every other type
	parkDir  = "park"
)
