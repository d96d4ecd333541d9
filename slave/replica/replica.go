// Package replica owns the slave's replica: a directory tree beneath a replica
// root in which every inode carries the master's gfid, plus the gfid index
// (.georep/gfid for regular files, the only tree rsync writes into, and
// .georep/links for every other type) and the park directory (.georep/park)
// kept beside it. It
// applies entry operations (CREATE, MKDIR, MKNOD, LINK, SYMLINK, RENAME,
// UNLINK, RMDIR) and metadata operations by gfid, answers Stat and Entries,
// purges names, and keeps xtime marks.
//
// It is the counterpart of gsyncd's resource.py Server.entry_ops and
// Server.meta_ops (and the gfid-addressed helpers around them). It is domain
// code in the vocabulary of package rpc/ops: the gRPC layer in package slave
// converts to and from the protocol (package rpc/wire).
//
// Confinement: every filesystem call is made relative to a directory file
// descriptor reached from the root's descriptor without following a symlink,
// with one validated name component at a time (or openat2 with
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS). Nothing outside the replica root is
// ever changed, whatever the input.
//
// Concurrency: a Replica serialises its operations internally; it is safe for
// concurrent use, but operations do not run in parallel.
package replica

// File type bits of st_mode (Linux values; spelled out so this file builds
// everywhere).
const (
	modeTypeMask = 0o170000
	modeSock     = 0o140000
	modeReg      = 0o100000
	modeBlock    = 0o060000
	modeDir      = 0o040000
	modeChar     = 0o020000
	modeFifo     = 0o010000
	modePerm     = 0o7777
)

// Names of the replica's own directory and its contents.
const (
	// metaDir is the directory beneath the replica root that georep owns.
	// It is a reserved name in the root directory.
	metaDir  = ".georep"
	indexDir = "gfid"  // the data tree of the gfid index: regular files only
	linksDir = "links" // the links tree of the gfid index: every other type
	parkDir  = "park"
)
