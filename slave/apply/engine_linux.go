package apply

import (
	"log/slog"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// Backend is what the engine needs of a replica kind: how to reach an inode
// by gfid and what a name holds, and how to make, name, rename and remove
// inodes carrying a gfid. The engine decides what to do (validation,
// ordering, the idempotence rules, failures, parallelism); a backend only
// does it, keeping whatever record of gfids it has (the plain replica's
// gfid index) in step.
//
// Descriptors a method returns belong to the caller, who closes them.
// Methods are called with the engine's lock held: exclusively, or shared
// by the creates of one parallel run (which name distinct gfids and
// distinct names; with Config.ParallelEntries, the entries of any op of
// one such run, and the lookups of renameFacts), so a backend must be safe
// for that.
type Backend interface {
	// OpenDir opens directory g for *at calls (an O_PATH descriptor will
	// do). An unknown gfid is ENOENT, a non-directory ENOTDIR (or ELOOP).
	OpenDir(g gfid.GFID) (int, error)
	// OpenReadDir opens directory g for reading its names.
	OpenReadDir(g gfid.GFID) (int, error)
	// LookupDir returns the descriptor in which to look up the names of
	// directory g, which fd has open for reading: fd itself, or a new
	// descriptor (g may be zero: a directory without a gfid).
	LookupDir(fd int, g gfid.GFID) (int, error)
	// Lookup says what name in dirfd holds, without following it.
	Lookup(dirfd int, name string) (Name, error)
	// Holds reports whether the name n holds gfid g.
	Holds(n Name, g gfid.GFID) bool
	// Locate says which inode has gfid g, if any (Inode.Type 0: none).
	Locate(g gfid.GFID) (Inode, error)
	// DirAt returns the directory (dirfd) and name where directory g lives.
	DirAt(g gfid.GFID) (dirfd int, name string, err error)
	// Create makes dirfd/e.Name (dirfd is directory e.Parent), which does
	// not exist, a new inode of e's type carrying gfid e.GFID, with e's
	// owner and mode.
	Create(dirfd int, e ops.Entry) error
	// Link gives the non-directory g (in, from Locate) the name dirfd/name.
	Link(g gfid.GFID, in Inode, dirfd int, name string) error
	// Rename moves ofd/oname, which holds g, to nname in nfd (directory
	// nparent), replacing what the new name held (replaced) as rename(2).
	Rename(g gfid.GFID, isDir bool, ofd int, oname string, nfd int, nparent gfid.GFID, nname string, replaced Name) error
	// Named is told that dirfd/name (in parent) was found holding g, as an
	// operation replayed wants: the backend's record of g must agree.
	Named(dirfd int, parent gfid.GFID, name string, g gfid.GFID, n Name) error
	// Forget is told that the name n, holding g (zero: none known), was
	// removed; last reports whether that was the inode's last name.
	Forget(g gfid.GFID, n Name) (last bool, err error)
	// OpenNode opens the inode of g for attribute calls; ENOENT when unknown.
	OpenNode(g gfid.GFID) (Handle, error)
	// OpenData opens the regular file of g for writing (O_WRONLY), checked
	// to be a regular file before it is opened; ENOENT when the replica
	// holds no regular file of g.
	OpenData(g gfid.GFID) (int, error)
}

// Batcher is implemented by a backend that keeps state for the length of
// one call (the plain replica's directory cache): BeginBatch and EndBatch
// are called, under the exclusive lock, around every ApplyEntries,
// ApplyMeta and WriteFiles.
type Batcher interface {
	BeginBatch()
	EndBatch()
}

// Name is what a name in a directory holds.
type Name struct {
	Exists bool
	St     unix.Stat_t
	GFID   gfid.GFID // zero if the inode carries none (or it could not be read)
}

// IsDir reports whether the name holds a directory.
func (n Name) IsDir() bool { return n.Exists && IsDirMode(n.St.Mode) }

// Inode is what a backend found for a gfid.
type Inode struct {
	Type ops.FileType // 0: no inode has the gfid
	St   unix.Stat_t  // of a non-directory
	// Stale is set when what the backend records for the gfid leads
	// nowhere (a directory's index entry whose chain is broken): a create
	// replaces it, other operations fail on it.
	Stale bool
}

// Handle is an inode opened by OpenNode.
type Handle struct {
	Node Node
	// OwnLinks counts the links of the inode the backend itself holds (the
	// plain replica's gfid index entry of a non-directory): Stat does not
	// count them.
	OwnLinks uint64
	Done     func() // releases the handle
}

// Config is what differs between replica kinds beyond the Backend methods.
type Config struct {
	// Workers is how many creates of one parallel run are applied at once
	// (at least 1).
	Workers int
	// ParallelEntries says the backend keeps no record of its own that
	// entry ops update and that parallel ones could leave inconsistent (a
	// GlusterFS volume; not the plain replica's gfid index and directory
	// cache): the engine applies runs of independent entry ops of every
	// kind side by side (IndependentEntryRuns), not only creates of
	// non-directories. Methods are then called concurrently for entries of
	// distinct names, gfids and parents.
	ParallelEntries bool
	// CreateChecksName says the backend's Create of a name that is taken
	// fails with EEXIST and reports what the name holds, as a lookup
	// would (ExistsErr), changing nothing (a GlusterFS volume's
	// glusterfs.gfid.newfile): a create of a gfid no inode has then goes
	// straight to Create, without looking the name up first.
	CreateChecksName bool
	// Namespace is the xattr namespace of georep's own attributes
	// ("trusted", or "user" for a slave not running as root; then
	// user.georep.* is georep's and refused in a meta op).
	Namespace string
	// Reserved are names in the root entry ops refuse (EPERM), each with
	// the reason; ".georep" always is.
	Reserved map[string]string
	// Hidden are further names in the root Entries never lists.
	Hidden []string
	// NoSpecialXattrs skips the user.* attributes of meta ops on anything
	// but regular files and directories (the kernel refuses them there to
	// a non-root slave).
	NoSpecialXattrs bool
	// Closed is the error of every call after Close.
	Closed error
	// StreamWrites lets OpenWriter fill new files from a stream (the plain
	// replica; a GlusterFS volume leaves its large files to rsync, the path
	// its tests have proven).
	StreamWrites bool
}

// Engine applies entry ops, meta ops and whole-file writes, answers Stat,
// Entries and xtime queries and purges names, on a Backend. It is safe for
// concurrent use.
type Engine struct {
	b   Backend
	cfg Config
	log *slog.Logger

	mu     sync.RWMutex // held by every operation: shared by those of a parallel run
	closed bool
}

// New returns an engine on b.
func New(b Backend, cfg Config, log *slog.Logger) *Engine {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.Workers = max(cfg.Workers, 1)
	return &Engine{b: b, cfg: cfg, log: log}
}

// CloseWith marks the engine closed, so that every later call fails, and
// calls release (the backend's own clean-up) once no operation runs.
// Calls after the first return nil.
func (en *Engine) CloseWith(release func() error) error {
	en.mu.Lock()
	defer en.mu.Unlock()
	if en.closed {
		return nil
	}
	en.closed = true
	return release()
}

func (en *Engine) lock() error {
	en.mu.Lock()
	if en.closed {
		en.mu.Unlock()
		return en.cfg.Closed
	}
	return nil
}

func (en *Engine) rlock() error {
	en.mu.RLock()
	if en.closed {
		en.mu.RUnlock()
		return en.cfg.Closed
	}
	return nil
}
