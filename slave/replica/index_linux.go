package replica

import (
	"strings"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/beneath"
	"github.com/georep/georep/rpc/eintr"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
	"github.com/georep/georep/slave/apply"
)

// The gfid index is laid out like GlusterFS's .glusterfs, in two trees of
// shard directories ab/<gfid>:
//
//   - the data tree .georep/gfid (DataDir, where rsync receives) holds the
//     index entries of regular files, and nothing else: a hardlink of the
//     inode;
//   - the links tree .georep/links holds the index entries of every other
//     type: a hardlink of a symlink, fifo, socket or device inode, and for a
//     directory a symlink "../xy/<pargfid>/<name>" relative to its
//     shard directory (so chained through the links tree). The fixed entries
//     of the root and of the park directory lead to them.
//
// rsync follows the symlinks it finds along a destination path and replaces
// a destination of another type; keeping symlinks, directory pointers and
// special files out of the data tree means that whatever file names a
// hostile master sends, the receiver can only reach regular files of the
// replica.
const (
	rootLink = "../../.."         // .georep/links/00 -> the replica root
	parkLink = "../../" + parkDir // .georep/links/00 -> .georep/park

	// maxChain bounds the length of a directory's chain of index links, so a
	// loop in a corrupt index cannot hang resolution.
	maxChain = 4096
)

// indexTree names one of the two trees of the gfid index.
type indexTree int

const (
	dataTree  indexTree = iota // .georep/gfid: regular files only
	linksTree                  // .georep/links: every other type
)

func (t indexTree) String() string {
	if t == dataTree {
		return metaDir + "/" + indexDir
	}
	return metaDir + "/" + linksDir
}

func (t indexTree) other() indexTree { return 1 - t }

// treeOfMode is the tree that holds the index entry of an inode of st_mode m.
func treeOfMode(m uint32) indexTree {
	if m&unix.S_IFMT == unix.S_IFREG {
		return dataTree
	}
	return linksTree
}

// treeFd is the open descriptor of tree t.
func (r *store) treeFd(t indexTree) int {
	if t == dataTree {
		return r.indexFd
	}
	return r.linksFd
}

type indexKind int

const (
	idxNone indexKind = iota
	idxFile           // a non-directory: the entry is a hardlink of the inode
	idxDir            // a directory: the entry is a symlink to parent/name
)

// indexEntry is what the gfid index says about one gfid.
type indexEntry struct {
	kind indexKind
	tree indexTree   // idxFile: the tree holding the entry (idxDir: linksTree)
	st   unix.Stat_t // idxFile: the inode
	// idxDir: where the directory lives (zero parent for Root and Park).
	parent gfid.GFID
	name   string
}

// openShard opens the shard directory of index tree t holding gfid g,
// creating it when create is set.
func (r *store) openShard(t indexTree, g gfid.GFID, create bool) (int, error) {
	a := g.Shard()
	tfd := r.treeFd(t)
	if create {
		if err := apply.MkdirAllowExisting(tfd, a, 0o700); err != nil {
			return -1, err
		}
	}
	return apply.OpenDirAt(tfd, a)
}

// dirLink is the index symlink content of a directory named name in parent.
func dirLink(parent gfid.GFID, name string) string {
	return "../" + parent.Shard() + "/" + parent.String() + "/" + name
}

// parseDirLink parses the index symlink content of directory g.
func parseDirLink(g gfid.GFID, link string) (parent gfid.GFID, name string, err error) {
	switch g {
	case gfid.Root:
		if link == rootLink {
			return gfid.GFID{}, "", nil
		}
		return parent, "", apply.Errorf(unix.ESTALE, "index entry of root gfid is %q, want %q", link, rootLink)
	case gfid.Park:
		if link == parkLink {
			return gfid.GFID{}, "", nil
		}
		return parent, "", apply.Errorf(unix.ESTALE, "index entry of park gfid is %q, want %q", link, parkLink)
	}
	bad := func(why string) (gfid.GFID, string, error) {
		return gfid.GFID{}, "", apply.Errorf(unix.ESTALE, "index entry of directory %s: %s: %q", g, why, apply.TruncName(link))
	}
	const pre = len("../ab/") + 36 + 1
	rest, ok := strings.CutPrefix(link, "../")
	if !ok || len(link) <= pre || link[5] != '/' || link[pre-1] != '/' {
		return bad("not a directory link")
	}
	p, err := gfid.Parse(rest[3 : 3+36])
	if err != nil {
		return bad("malformed parent gfid")
	}
	if rest[0:2] != p.Shard() {
		return bad("shard does not match parent")
	}
	name = link[pre:]
	if err := ops.ValidateName(name); err != nil {
		return bad(err.Error())
	}
	if p == gfid.Root && name == metaDir {
		return bad("reserved name")
	}
	return p, name, nil
}

// readIndex looks gfid g up in the index: first in the data tree, where only
// a regular file's hardlink is valid, then in the links tree.
func (r *store) readIndex(g gfid.GFID) (indexEntry, error) {
	st, err := r.statIndex(dataTree, g)
	switch {
	case err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG:
		return indexEntry{kind: idxFile, tree: dataTree, st: st}, nil
	case err == nil:
		return indexEntry{}, apply.Errorf(unix.ESTALE, "index entry of %s in %s is a %s, not a regular file", g, dataTree, ops.TypeOfMode(st.Mode))
	case err != unix.ENOENT:
		return indexEntry{}, err
	}
	sfd, err := r.openShard(linksTree, g, false)
	if err == unix.ENOENT {
		return indexEntry{}, nil
	}
	if err != nil {
		return indexEntry{}, err
	}
	defer apply.CloseFd(sfd)
	gs := g.String()
	st, err = apply.LstatAt(sfd, gs)
	if err == unix.ENOENT {
		return indexEntry{}, nil
	}
	if err != nil {
		return indexEntry{}, err
	}
	switch {
	case apply.IsDirMode(st.Mode):
		return indexEntry{}, apply.Errorf(unix.ESTALE, "index entry of %s is a directory", g)
	case st.Mode&unix.S_IFMT == unix.S_IFREG:
		return indexEntry{}, apply.Errorf(unix.ESTALE, "index entry of %s in %s is a regular file", g, linksTree)
	case !apply.IsLinkMode(st.Mode):
		return indexEntry{kind: idxFile, tree: linksTree, st: st}, nil
	}
	// A symlink is either the inode itself (a gfid symlink: it carries the
	// gfid) or the pointer of a directory (it carries none).
	have, err := r.gfidOf(apply.AtNode(sfd, gs))
	if err != nil {
		return indexEntry{}, err
	}
	if have == g {
		return indexEntry{kind: idxFile, tree: linksTree, st: st}, nil
	}
	link, err := apply.ReadlinkAt(sfd, gs)
	if err != nil {
		return indexEntry{}, err
	}
	p, name, err := parseDirLink(g, link)
	if err != nil {
		if !r.asRoot && have.IsZero() {
			// As non-root a gfid symlink carries no attribute.
			return indexEntry{kind: idxFile, tree: linksTree, st: st}, nil
		}
		return indexEntry{}, err
	}
	return indexEntry{kind: idxDir, tree: linksTree, parent: p, name: name}, nil
}

// statIndex lstats the entry of g in tree t (ENOENT when there is none).
func (r *store) statIndex(t indexTree, g gfid.GFID) (unix.Stat_t, error) {
	sfd, err := r.openShard(t, g, false)
	if err != nil {
		return unix.Stat_t{}, err
	}
	defer apply.CloseFd(sfd)
	return apply.LstatAt(sfd, g.String())
}

// dropIndexEntry removes whatever entry tree t holds for g (nothing when it
// holds none). Callers have established that the entry is stale.
func (r *store) dropIndexEntry(t indexTree, g gfid.GFID) error {
	sfd, err := r.openShard(t, g, false)
	if err == unix.ENOENT {
		return nil
	}
	if err != nil {
		return err
	}
	defer apply.CloseFd(sfd)
	return removeStale(sfd, g.String())
}

// removeStale removes the stale index entry name of the shard sfd. An empty
// directory (what an rsync receiver run with -d leaves in place of a file it
// was sent as a directory) is removed too; a non-empty one is an error.
func removeStale(sfd int, name string) error {
	err := eintr.Retry(func() error { return unix.Unlinkat(sfd, name, 0) })
	if err == unix.EISDIR {
		err = eintr.Retry(func() error { return unix.Unlinkat(sfd, name, unix.AT_REMOVEDIR) })
	}
	if err == unix.ENOENT {
		return nil
	}
	return err
}

// writeDirLink makes the index entry of directory g the symlink link,
// atomically (symlink under a temporary name, then rename over).
func (r *store) writeDirLink(g gfid.GFID, link string) error {
	sfd, err := r.openShard(linksTree, g, true)
	if err != nil {
		return err
	}
	defer apply.CloseFd(sfd)
	gs := g.String()
	if cur, err := apply.ReadlinkAt(sfd, gs); err == nil && cur == link {
		return nil
	}
	tmp := gs + ".tmp"
	_ = eintr.Retry(func() error { return unix.Unlinkat(sfd, tmp, 0) })
	if err := eintr.Retry(func() error { return unix.Symlinkat(link, sfd, tmp) }); err != nil {
		return err
	}
	if err := eintr.Retry(func() error { return unix.Renameat(sfd, tmp, sfd, gs) }); err != nil {
		_ = eintr.Retry(func() error { return unix.Unlinkat(sfd, tmp, 0) })
		return err
	}
	return nil
}

// setDirIndex records that directory g lives at parent/name.
func (r *store) setDirIndex(g, parent gfid.GFID, name string) error {
	return r.writeDirLink(g, dirLink(parent, name))
}

// dropDirIndex removes the index symlink of directory g, if it is one.
func (r *store) dropDirIndex(g gfid.GFID) error {
	ie, err := r.readIndex(g)
	if err != nil || ie.kind != idxDir {
		return err
	}
	return r.dropIndexEntry(linksTree, g)
}

// dropFileIndex removes the index hardlink of non-directory g when it is the
// inode ino and no other name of it is left (nlink 1).
func (r *store) dropFileIndex(g gfid.GFID, ino uint64) error {
	for _, t := range []indexTree{dataTree, linksTree} {
		if err := r.dropFileIndexIn(t, g, ino); err != nil {
			return err
		}
	}
	return nil
}

func (r *store) dropFileIndexIn(t indexTree, g gfid.GFID, ino uint64) error {
	sfd, err := r.openShard(t, g, false)
	if err == unix.ENOENT {
		return nil
	}
	if err != nil {
		return err
	}
	defer apply.CloseFd(sfd)
	gs := g.String()
	st, err := apply.LstatAt(sfd, gs)
	if err == unix.ENOENT {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Ino != ino || st.Nlink != 1 || apply.IsDirMode(st.Mode) {
		return nil
	}
	err = eintr.Retry(func() error { return unix.Unlinkat(sfd, gs, 0) })
	if err == unix.ENOENT {
		return nil
	}
	return err
}

// linkIndex makes the index entry of non-directory g a hardlink of the inode
// at dirfd/name, in the tree for the inode's type. An existing entry of the
// same inode is kept; an entry that is stale (an orphan whose only name is the
// index, or a dangling directory pointer) is replaced, in whichever tree it
// is; any other entry is a conflict (EEXIST).
func (r *store) linkIndex(dirfd int, name string, g gfid.GFID) error {
	st, err := apply.LstatAt(dirfd, name)
	if err != nil {
		return err
	}
	if apply.IsDirMode(st.Mode) {
		return apply.Errorf(unix.EISDIR, "gfid index: %s is a directory, not linked", g)
	}
	tree := treeOfMode(st.Mode)
	ie, err := r.readIndex(g)
	if err != nil && !apply.NotFound(err) {
		return err
	}
	switch {
	case err == nil && ie.kind == idxNone:
		sfd, err := r.openShard(tree, g, true)
		if err != nil {
			return err
		}
		defer apply.CloseFd(sfd)
		return eintr.Retry(func() error { return unix.Linkat(dirfd, name, sfd, g.String(), 0) })
	case err == nil && ie.kind == idxFile && ie.st.Ino == st.Ino && ie.st.Dev == st.Dev:
		return nil
	case err == nil && ie.kind == idxFile && ie.st.Nlink > 1:
		return apply.Errorf(unix.EEXIST, "gfid index already holds another inode for %s", g)
	case err == nil && ie.kind == idxDir:
		if fd, derr := r.openDir(g); derr == nil {
			apply.CloseFd(fd)
			return apply.Errorf(unix.EEXIST, "gfid %s is a directory elsewhere", g)
		}
	}
	r.log.Warn("replacing stale gfid index entry", "gfid", g.String())
	sfd, err := r.openShard(tree, g, true)
	if err != nil {
		return err
	}
	defer apply.CloseFd(sfd)
	gs := g.String()
	tmp := gs + ".tmp"
	_ = eintr.Retry(func() error { return unix.Unlinkat(sfd, tmp, 0) })
	if err := eintr.Retry(func() error { return unix.Linkat(dirfd, name, sfd, tmp, 0) }); err != nil {
		return err
	}
	err = eintr.Retry(func() error { return unix.Renameat(sfd, tmp, sfd, gs) })
	if err == unix.EISDIR {
		if err = removeStale(sfd, gs); err == nil {
			err = eintr.Retry(func() error { return unix.Renameat(sfd, tmp, sfd, gs) })
		}
	}
	if err != nil {
		_ = eintr.Retry(func() error { return unix.Unlinkat(sfd, tmp, 0) })
		return err
	}
	return r.dropIndexEntry(tree.other(), g)
}

// linkFromIndex creates the name dirfd/name for non-directory g by linking
// its index entry ie.
func (r *store) linkFromIndex(g gfid.GFID, ie indexEntry, dirfd int, name string) error {
	sfd, err := r.openShard(ie.tree, g, false)
	if err != nil {
		return err
	}
	defer apply.CloseFd(sfd)
	return eintr.Retry(func() error { return unix.Linkat(sfd, g.String(), dirfd, name, 0) })
}

// openDir returns a new descriptor of directory g. It reads g's chain of
// index links up to the root (or park) and walks down from there one
// component at a time with openat2(O_NOFOLLOW|O_DIRECTORY, RESOLVE_BENEATH|
// RESOLVE_NO_SYMLINKS), checking at every step that the directory opened
// carries the gfid the chain names. A broken chain is ESTALE; an unknown gfid
// ENOENT; a non-directory ENOTDIR.
func (r *store) openDir(g gfid.GFID) (int, error) {
	if fd, ok := r.cachedDir(g); ok {
		return fd, nil
	}
	fd, err := r.resolveDir(g)
	if err == nil {
		r.cacheDir(g, fd)
	}
	return fd, err
}

// maxCachedDirs bounds the directory fds one batch keeps open.
const maxCachedDirs = 1024

// BeginBatch starts caching resolved directories; EndBatch closes them. An
// open directory fd names the same inode across renames, so within a batch
// the cache is exact; a removed directory (link count 0) is dropped on use.
// The cache lives only for one call, so a directory moved behind the
// replica's back between calls is resolved afresh through the index. The
// cache has its own lock: the creates of one batch may run in parallel
// (applyParallel).
func (r *store) BeginBatch() {
	r.dirMu.Lock()
	defer r.dirMu.Unlock()
	if r.dirs == nil {
		r.dirs = make(map[gfid.GFID]int)
	}
}

func (r *store) EndBatch() {
	r.dirMu.Lock()
	defer r.dirMu.Unlock()
	for _, fd := range r.dirs {
		apply.CloseFd(fd)
	}
	r.dirs = nil
}

// cachedDir returns a new fd of g's directory from the batch cache.
func (r *store) cachedDir(g gfid.GFID) (int, bool) {
	r.dirMu.Lock()
	defer r.dirMu.Unlock()
	fd, ok := r.dirs[g]
	if !ok {
		return -1, false
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Nlink == 0 {
		apply.CloseFd(fd)
		delete(r.dirs, g)
		return -1, false
	}
	nfd, err := eintr.Value(func() (int, error) { return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0) })
	if err != nil {
		return -1, false
	}
	return nfd, true
}

func (r *store) cacheDir(g gfid.GFID, fd int) {
	r.dirMu.Lock()
	defer r.dirMu.Unlock()
	if r.dirs == nil || len(r.dirs) >= maxCachedDirs {
		return
	}
	if _, ok := r.dirs[g]; ok {
		return
	}
	if dup, err := eintr.Value(func() (int, error) { return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0) }); err == nil {
		r.dirs[g] = dup
	}
}

// resolveDir opens directory g through the gfid index.
func (r *store) resolveDir(g gfid.GFID) (int, error) {
	switch g {
	case gfid.Root:
		return beneath.Open(r.rootFd, ".", unix.O_RDONLY|unix.O_DIRECTORY)
	case gfid.Park:
		fd, err := beneath.Open(r.rootFd, metaDir+"/"+parkDir, unix.O_RDONLY|unix.O_DIRECTORY)
		if err != nil {
			return -1, apply.Errorf(unix.ESTALE, "park directory: %v", err)
		}
		if have, err := r.gfidOf(apply.FdNode(fd)); err != nil || have != gfid.Park {
			apply.CloseFd(fd)
			return -1, apply.Errorf(unix.ESTALE, "park directory does not carry the park gfid")
		}
		return fd, nil
	}
	type step struct {
		g    gfid.GFID
		name string
	}
	var steps []step
	seen := map[gfid.GFID]bool{}
	cur := g
	for cur != gfid.Root && cur != gfid.Park {
		if len(steps) >= maxChain {
			return -1, apply.Errorf(unix.ELOOP, "directory %s: index chain longer than %d links", g, maxChain)
		}
		if seen[cur] {
			return -1, apply.Errorf(unix.ELOOP, "directory %s: index chain loops at %s", g, cur)
		}
		seen[cur] = true
		ie, err := r.readIndex(cur)
		if err != nil {
			return -1, err
		}
		switch {
		case ie.kind == idxNone && cur == g:
			return -1, apply.Errorf(unix.ENOENT, "gfid %s not found", g)
		case ie.kind == idxNone:
			return -1, apply.Errorf(unix.ESTALE, "directory %s: ancestor %s missing from the gfid index", g, cur)
		case ie.kind == idxFile && cur == g:
			return -1, apply.Errorf(unix.ENOTDIR, "gfid %s is not a directory", g)
		case ie.kind == idxFile:
			return -1, apply.Errorf(unix.ESTALE, "directory %s: ancestor %s is not a directory", g, cur)
		}
		steps = append(steps, step{cur, ie.name})
		cur = ie.parent
	}
	fd, err := r.openDir(cur)
	if err != nil {
		return -1, err
	}
	for i := len(steps) - 1; i >= 0; i-- {
		s := steps[i]
		nfd, err := apply.OpenDirAt(fd, s.name)
		apply.CloseFd(fd)
		if err != nil {
			return -1, apply.Errorf(unix.ESTALE, "directory %s: gfid index is stale: opening %s %q: %v", g, s.g, s.name, err)
		}
		have, err := r.gfidOf(apply.FdNode(nfd))
		if err != nil || have != s.g {
			apply.CloseFd(nfd)
			return -1, apply.Errorf(unix.ESTALE, "directory %s: gfid index is stale: %q carries gfid %s, not %s", g, s.name, have, s.g)
		}
		fd = nfd
	}
	return fd, nil
}

// isBeneath reports whether directory dir is g or lies beneath g, by walking
// up dir's chain of index links.
func (r *store) isBeneath(dir, g gfid.GFID) (bool, error) {
	cur := dir
	for range maxChain {
		if cur == g {
			return true, nil
		}
		if cur == gfid.Root || cur == gfid.Park {
			return false, nil
		}
		ie, err := r.readIndex(cur)
		if err != nil {
			return false, err
		}
		if ie.kind != idxDir {
			return false, apply.Errorf(unix.ESTALE, "directory %s: index chain broken at %s", dir, cur)
		}
		cur = ie.parent
	}
	return false, apply.Errorf(unix.ELOOP, "directory %s: index chain longer than %d links", dir, maxChain)
}
