package slavefake

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// MetaDir is the name in the root the slave keeps to itself (the plain
// replica's .georep, where the park directory lives): refused for every
// entry op and purge, never listed.
const MetaDir = ".georep"

// Slave is the in-memory slave. Its methods are safe for concurrent use;
// the slices passed are not kept.
type Slave struct {
	volumeID string // the master volume whose xtime SetXtime records

	mu     sync.Mutex
	inodes map[gfid.GFID]*inode
}

// inode is one inode of the namespace.
type inode struct {
	mode         uint32 // st_mode, type bits included
	uid, gid     uint32
	atime, mtime time.Time
	rdev         uint64
	target       string               // of a symlink
	data         []byte               // of a regular file
	xattrs       map[string][]byte    // user.* attributes
	xtimes       map[string][12]byte  // master volume id → xtime, as the replicas store it
	names        map[link]bool        // where it is named
	children     map[string]gfid.GFID // of a directory
}

// link is one name of an inode.
type link struct {
	parent gfid.GFID
	name   string
}

func (in *inode) typ() ops.FileType { return ops.TypeOfMode(in.mode) }
func (in *inode) isDir() bool       { return in.typ() == ops.TypeDir }

// New returns a slave holding an empty root and the park directory;
// SetXtime records the xtime of master volume volumeID.
func New(volumeID gfid.GFID) *Slave {
	now := time.Now()
	dir := func() *inode {
		return &inode{mode: syscall.S_IFDIR | 0o755, atime: now, mtime: now, names: map[link]bool{}, children: map[string]gfid.GFID{}}
	}
	return &Slave{volumeID: volumeID.String(), inodes: map[gfid.GFID]*inode{gfid.Root: dir(), gfid.Park: dir()}}
}

// Error is a failed operation: the errno a Failure reports and, for
// EEXIST, the gfid found at the name. errors.Is matches the errno (and
// fs.ErrNotExist for ENOENT), as for the errors of a real slave.
type Error struct {
	Errno    syscall.Errno
	Msg      string
	Existing gfid.GFID
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Errno }

func errorf(errno syscall.Errno, format string, args ...any) *Error {
	return &Error{Errno: errno, Msg: fmt.Sprintf(format, args...)}
}

// failure makes the Failure of item i from err.
func failure(i int, what string, err error) ops.Failure {
	f := ops.Failure{Index: i, Errno: ops.Errno(err), Message: what + ": " + err.Error()}
	if e := (*Error)(nil); errors.As(err, &e) {
		f.Existing = e.Existing
	}
	return f
}

// batch applies do to the n items of a batch in order under the lock and
// returns the failures; once ctx is done the rest fail with ECANCELED.
func (s *Slave) batch(ctx context.Context, n int, what func(int) string, do func(int) error) []ops.Failure {
	s.mu.Lock()
	defer s.mu.Unlock()
	var fails []ops.Failure
	for i := range n {
		err := ctx.Err()
		if err != nil {
			err = &Error{Errno: syscall.ECANCELED, Msg: err.Error()}
		} else {
			err = do(i)
		}
		if err != nil {
			fails = append(fails, failure(i, what(i), err))
		}
	}
	return fails
}

// dir returns directory g: ENOENT when no inode has the gfid, ENOTDIR
// when it is not a directory.
func (s *Slave) dir(g gfid.GFID) (*inode, error) {
	in := s.inodes[g]
	switch {
	case in == nil:
		return nil, errorf(syscall.ENOENT, "directory %s not found", g)
	case !in.isDir():
		return nil, errorf(syscall.ENOTDIR, "%s is not a directory", g)
	}
	return in, nil
}

// node returns the inode of g: ENOENT when unknown, EINVAL for the zero
// gfid.
func (s *Slave) node(g gfid.GFID) (*inode, error) {
	if g.IsZero() {
		return nil, errorf(syscall.EINVAL, "zero gfid")
	}
	in := s.inodes[g]
	if in == nil {
		return nil, errorf(syscall.ENOENT, "gfid %s not found", g)
	}
	return in, nil
}

// Stat describes the inode of g. For an unknown gfid the error wraps
// fs.ErrNotExist.
func (s *Slave) Stat(ctx context.Context, g gfid.GFID) (ops.Attr, error) {
	if err := ctx.Err(); err != nil {
		return ops.Attr{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	in, err := s.node(g)
	if err != nil {
		return ops.Attr{}, fmt.Errorf("stat %s: %w", g, err)
	}
	a := ops.Attr{Type: in.typ(), Mode: in.mode, UID: in.uid, GID: in.gid, Mtime: in.mtime, Rdev: in.rdev, Target: in.target}
	switch a.Type {
	case ops.TypeDir:
		a.Nlink = 2
		for _, c := range in.children {
			if s.inodes[c].isDir() {
				a.Nlink++
			}
		}
	case ops.TypeSymlink:
		a.Nlink, a.Size = uint64(len(in.names)), uint64(len(in.target))
	default:
		a.Nlink, a.Size = uint64(len(in.names)), uint64(len(in.data))
	}
	return a, nil
}

// Entries lists directory dir, sorted by name, each name with its gfid
// and type; the root's MetaDir is not listed. A directory not there is
// fs.ErrNotExist, a gfid that is not a directory ops.ErrNotDir.
func (s *Slave) Entries(ctx context.Context, dir gfid.GFID) ([]ops.DirEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if dir.IsZero() {
		return nil, errorf(syscall.EINVAL, "entries: zero gfid")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.dir(dir)
	if err != nil {
		return nil, fmt.Errorf("entries of %s: %w", dir, err)
	}
	names := slices.Sorted(maps.Keys(d.children))
	out := make([]ops.DirEntry, 0, len(names))
	for _, name := range names {
		g := d.children[name]
		out = append(out, ops.DirEntry{Name: name, GFID: g, Type: s.inodes[g].typ()})
	}
	return out, nil
}

// Contents returns the content and the user.* xattrs of the regular file
// of g (what a test reads from a real replica's data directory).
func (s *Slave) Contents(g gfid.GFID) (data []byte, xattrs map[string][]byte, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, err := s.node(g)
	if err != nil {
		return nil, nil, err
	}
	if in.typ() != ops.TypeRegular {
		return nil, nil, errorf(syscall.EINVAL, "gfid %s is a %s, not a regular file", g, in.typ())
	}
	return slices.Clone(in.data), maps.Clone(in.xattrs), nil
}

// Paths renders the namespace below the root as sorted paths, a
// directory's names after it ("d", "d/f").
func (s *Slave) Paths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	var walk func(gfid.GFID, string)
	walk = func(d gfid.GFID, prefix string) {
		for name, g := range s.inodes[d].children {
			out = append(out, prefix+name)
			if s.inodes[g].isDir() {
				walk(g, prefix+name+"/")
			}
		}
	}
	walk(gfid.Root, "")
	sort.Strings(out)
	return out
}
