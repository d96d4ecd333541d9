// Package apply is the slave's apply engine, the one place that decides
// what an operation on a replica does, whatever the replica kind: it applies
// entry ops (CREATE, MKDIR, MKNOD, LINK, SYMLINK, RENAME, UNLINK, RMDIR) and
// meta ops by gfid, writes whole small files, answers Stat and Entries,
// keeps xtime marks and purges names. It owns the validation of every
// request, the order of the steps, the idempotence rules that make a replay
// converge (CREATE of a name already holding the gfid succeeds; RENAME whose
// new name holds it succeeds; UNLINK of a missing name succeeds; a name
// holding another gfid is a per-entry EEXIST carrying it), the per-item
// failures of a batch, and the scheduler that applies runs of independent
// creates (and meta ops or writes of distinct gfids) side by side.
//
// It is the counterpart of gsyncd's resource.py Server.entry_ops and
// Server.meta_ops. A replica kind is a Backend: the plain directory with its
// gfid index (package slave/replica), a GlusterFS volume through its aux-gfid
// mount (package slave/glusterfs). The backend says how to locate a
// directory or an inode by gfid, read a name's gfid, create an inode with a
// gfid, link, rename and remove by (parent, name), open a gfid's data and
// attributes, and what it reserves (Config).
//
// The package also holds the system-call layer both backends are written
// in (every call retried on EINTR through rpc/eintr, paths resolved with
// openat2 beneath the replica by rpc/beneath): the errno-carrying
// Error and its helpers, and Node for attribute calls that never follow a
// symlink.
package apply

// MetaDir is the directory beneath the replica root that georep owns. It is
// a reserved name in the root directory of every replica kind.
const MetaDir = ".georep"
