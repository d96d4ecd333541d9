package replica

import (
	"strings"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/gfid"
)

// The gfid index (.georep/gfid/ab/cd/<gfid>), laid out like GlusterFS's
// .glusterfs: a non-directory has a hardlink there, a directory a symlink
// "../../xy/zw/<pargfid>/<name>" relative to its shard directory. The fixed
// entries of the root and of the park directory lead to them.
const (
	rootLink = "../../../.."         // .georep/gfid/00/00 -> the replica root
	parkLink = "../../../" + parkDir // .georep/gfid/00/00 -> .georep/park

	// maxChain bounds the length of a directory's chain of index links, so a
	// loop in a corrupt index cannot hang resolution.
	maxChain = 4096
)

type indexKind int

const (
	idxNone indexKind = iota
	idxFile           // a non-directory: the entry is a hardlink of the inode
	idxDir            // a directory: the entry is a symlink to parent/name
)

// indexEntry is what the gfid index says about one gfid.
type indexEntry struct {
	kind indexKind
	st   unix.Stat_t // idxFile: the inode
	// idxDir: where the directory lives (zero parent for Root and Park).
	parent gfid.GFID
	name   string
}

// openShard opens the index directory ab/cd holding gfid g, creating it when
// create is set.
func (r *Replica) openShard(g gfid.GFID, create bool) (int, error) {
	a, b := g.Shard()
	if !create {
		return openBeneath(r.indexFd, a+"/"+b, unix.O_RDONLY|unix.O_DIRECTORY)
	}
	if err := mkdirAllowExisting(r.indexFd, a, 0o700); err != nil {
		return -1, err
	}
	afd, err := openDirAt(r.indexFd, a)
	if err != nil {
		return -1, err
	}
	defer closeFd(afd)
	if err := mkdirAllowExisting(afd, b, 0o700); err != nil {
		return -1, err
	}
	return openDirAt(afd, b)
}

// dirLink is the index symlink content of a directory named name in parent.
func dirLink(parent gfid.GFID, name string) string {
	a, b := parent.Shard()
	return "../../" + a + "/" + b + "/" + parent.String() + "/" + name
}

// parseDirLink parses the index symlink content of directory g.
func parseDirLink(g gfid.GFID, link string) (parent gfid.GFID, name string, err error) {
	switch g {
	case gfid.Root:
		if link == rootLink {
			return gfid.GFID{}, "", nil
		}
		return parent, "", errf(unix.ESTALE, "index entry of root gfid is %q, want %q", link, rootLink)
	case gfid.Park:
		if link == parkLink {
			return gfid.GFID{}, "", nil
		}
		return parent, "", errf(unix.ESTALE, "index entry of park gfid is %q, want %q", link, parkLink)
	}
	bad := func(why string) (gfid.GFID, string, error) {
		return gfid.GFID{}, "", errf(unix.ESTALE, "index entry of directory %s: %s: %q", g, why, truncName(link))
	}
	const pre = len("../../ab/cd/") + 36 + 1
	rest, ok := strings.CutPrefix(link, "../../")
	if !ok || len(link) <= pre || link[8] != '/' || link[11] != '/' || link[pre-1] != '/' {
		return bad("not a directory link")
	}
	p, err := gfid.Parse(rest[6 : 6+36])
	if err != nil {
		return bad("malformed parent gfid")
	}
	if a, b := p.Shard(); rest[0:2] != a || rest[3:5] != b {
		return bad("shard does not match parent")
	}
	name = link[pre:]
	if err := ValidateName(name); err != nil {
		return bad(err.Error())
	}
	if p == gfid.Root && name == metaDir {
		return bad("reserved name")
	}
	return p, name, nil
}

// readIndex looks gfid g up in the index.
func (r *Replica) readIndex(g gfid.GFID) (indexEntry, error) {
	sfd, err := r.openShard(g, false)
	if err == unix.ENOENT {
		return indexEntry{}, nil
	}
	if err != nil {
		return indexEntry{}, err
	}
	defer closeFd(sfd)
	gs := g.String()
	st, err := lstatAt(sfd, gs)
	if err == unix.ENOENT {
		return indexEntry{}, nil
	}
	if err != nil {
		return indexEntry{}, err
	}
	if !isLinkMode(st.Mode) {
		if isDirMode(st.Mode) {
			return indexEntry{}, errf(unix.ESTALE, "index entry of %s is a directory", g)
		}
		return indexEntry{kind: idxFile, st: st}, nil
	}
	// A symlink is either the inode itself (a gfid symlink: it carries the
	// gfid) or the pointer of a directory (it carries none).
	have, err := r.gfidOf(atNode(sfd, gs))
	if err != nil {
		return indexEntry{}, err
	}
	if have == g {
		return indexEntry{kind: idxFile, st: st}, nil
	}
	link, err := readlinkAt(sfd, gs)
	if err != nil {
		return indexEntry{}, err
	}
	p, name, err := parseDirLink(g, link)
	if err != nil {
		if !r.asRoot && have.IsZero() {
			// As non-root a gfid symlink carries no attribute.
			return indexEntry{kind: idxFile, st: st}, nil
		}
		return indexEntry{}, err
	}
	return indexEntry{kind: idxDir, parent: p, name: name}, nil
}

// writeDirLink makes the index entry of directory g the symlink link,
// atomically (symlink under a temporary name, then rename over).
func (r *Replica) writeDirLink(g gfid.GFID, link string) error {
	sfd, err := r.openShard(g, true)
	if err != nil {
		return err
	}
	defer closeFd(sfd)
	gs := g.String()
	if cur, err := readlinkAt(sfd, gs); err == nil && cur == link {
		return nil
	}
	tmp := gs + ".tmp"
	_ = retry0(func() error { return unix.Unlinkat(sfd, tmp, 0) })
	if err := retry0(func() error { return unix.Symlinkat(link, sfd, tmp) }); err != nil {
		return err
	}
	if err := retry0(func() error { return unix.Renameat(sfd, tmp, sfd, gs) }); err != nil {
		_ = retry0(func() error { return unix.Unlinkat(sfd, tmp, 0) })
		return err
	}
	return nil
}

// setDirIndex records that directory g lives at parent/name.
func (r *Replica) setDirIndex(g, parent gfid.GFID, name string) error {
	return r.writeDirLink(g, dirLink(parent, name))
}

// dropDirIndex removes the index symlink of directory g, if it is one.
func (r *Replica) dropDirIndex(g gfid.GFID) error {
	ie, err := r.readIndex(g)
	if err != nil || ie.kind != idxDir {
		return err
	}
	sfd, err := r.openShard(g, false)
	if err != nil {
		return err
	}
	defer closeFd(sfd)
	err = retry0(func() error { return unix.Unlinkat(sfd, g.String(), 0) })
	if err == unix.ENOENT {
		return nil
	}
	return err
}

// dropFileIndex removes the index hardlink of non-directory g when it is the
// inode ino and no other name of it is left (nlink 1).
func (r *Replica) dropFileIndex(g gfid.GFID, ino uint64) error {
	sfd, err := r.openShard(g, false)
	if err == unix.ENOENT {
		return nil
	}
	if err != nil {
		return err
	}
	defer closeFd(sfd)
	gs := g.String()
	st, err := lstatAt(sfd, gs)
	if err == unix.ENOENT {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Ino != ino || st.Nlink != 1 || isDirMode(st.Mode) {
		return nil
	}
	err = retry0(func() error { return unix.Unlinkat(sfd, gs, 0) })
	if err == unix.ENOENT {
		return nil
	}
	return err
}

// linkIndex makes the index entry of non-directory g a hardlink of the inode
// at dirfd/name. An existing entry of the same inode is kept; an entry that
// is stale (an orphan whose only name is the index, or a dangling directory
// pointer) is replaced; any other entry is a conflict (EEXIST).
func (r *Replica) linkIndex(dirfd int, name string, g gfid.GFID) error {
	st, err := lstatAt(dirfd, name)
	if err != nil {
		return err
	}
	sfd, err := r.openShard(g, true)
	if err != nil {
		return err
	}
	defer closeFd(sfd)
	gs := g.String()
	err = retry0(func() error { return unix.Linkat(dirfd, name, sfd, gs, 0) })
	if err != unix.EEXIST {
		return err
	}
	ie, err := r.readIndex(g)
	if err != nil && !notFound(err) {
		return err
	}
	switch {
	case err == nil && ie.kind == idxFile && ie.st.Ino == st.Ino && ie.st.Dev == st.Dev:
		return nil
	case err == nil && ie.kind == idxFile && ie.st.Nlink > 1:
		return errf(unix.EEXIST, "gfid index already holds another inode for %s", g)
	case err == nil && ie.kind == idxDir:
		if fd, derr := r.openDir(g); derr == nil {
			closeFd(fd)
			return errf(unix.EEXIST, "gfid %s is a directory elsewhere", g)
		}
	}
	r.log.Warn("replacing stale gfid index entry", "gfid", g.String())
	tmp := gs + ".tmp"
	_ = retry0(func() error { return unix.Unlinkat(sfd, tmp, 0) })
	if err := retry0(func() error { return unix.Linkat(dirfd, name, sfd, tmp, 0) }); err != nil {
		return err
	}
	if err := retry0(func() error { return unix.Renameat(sfd, tmp, sfd, gs) }); err != nil {
		_ = retry0(func() error { return unix.Unlinkat(sfd, tmp, 0) })
		return err
	}
	return nil
}

// linkFromIndex creates the name dirfd/name for non-directory g by linking
// its index entry.
func (r *Replica) linkFromIndex(g gfid.GFID, dirfd int, name string) error {
	sfd, err := r.openShard(g, false)
	if err != nil {
		return err
	}
	defer closeFd(sfd)
	return retry0(func() error { return unix.Linkat(sfd, g.String(), dirfd, name, 0) })
}

// openDir returns a new descriptor of directory g. It reads g's chain of
// index links up to the root (or park) and walks down from there one
// component at a time with openat2(O_NOFOLLOW|O_DIRECTORY, RESOLVE_BENEATH|
// RESOLVE_NO_SYMLINKS), checking at every step that the directory opened
// carries the gfid the chain names. A broken chain is ESTALE; an unknown gfid
// ENOENT; a non-directory ENOTDIR.
func (r *Replica) openDir(g gfid.GFID) (int, error) {
	switch g {
	case gfid.Root:
		return openBeneath(r.rootFd, ".", unix.O_RDONLY|unix.O_DIRECTORY)
	case gfid.Park:
		fd, err := openBeneath(r.rootFd, metaDir+"/"+parkDir, unix.O_RDONLY|unix.O_DIRECTORY)
		if err != nil {
			return -1, errf(unix.ESTALE, "park directory: %v", err)
		}
		if have, err := r.gfidOf(fdNode(fd)); err != nil || have != gfid.Park {
			closeFd(fd)
			return -1, errf(unix.ESTALE, "park directory does not carry the park gfid")
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
			return -1, errf(unix.ELOOP, "directory %s: index chain longer than %d links", g, maxChain)
		}
		if seen[cur] {
			return -1, errf(unix.ELOOP, "directory %s: index chain loops at %s", g, cur)
		}
		seen[cur] = true
		ie, err := r.readIndex(cur)
		if err != nil {
			return -1, err
		}
		switch {
		case ie.kind == idxNone && cur == g:
			return -1, errf(unix.ENOENT, "gfid %s not found", g)
		case ie.kind == idxNone:
			return -1, errf(unix.ESTALE, "directory %s: ancestor %s missing from the gfid index", g, cur)
		case ie.kind == idxFile && cur == g:
			return -1, errf(unix.ENOTDIR, "gfid %s is not a directory", g)
		case ie.kind == idxFile:
			return -1, errf(unix.ESTALE, "directory %s: ancestor %s is not a directory", g, cur)
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
		nfd, err := openDirAt(fd, s.name)
		closeFd(fd)
		if err != nil {
			return -1, errf(unix.ESTALE, "directory %s: gfid index is stale: opening %s %q: %v", g, s.g, s.name, err)
		}
		have, err := r.gfidOf(fdNode(nfd))
		if err != nil || have != s.g {
			closeFd(nfd)
			return -1, errf(unix.ESTALE, "directory %s: gfid index is stale: %q carries gfid %s, not %s", g, s.name, have, s.g)
		}
		fd = nfd
	}
	return fd, nil
}

// isBeneath reports whether directory dir is g or lies beneath g, by walking
// up dir's chain of index links.
func (r *Replica) isBeneath(dir, g gfid.GFID) (bool, error) {
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
			return false, errf(unix.ESTALE, "directory %s: index chain broken at %s", dir, cur)
		}
		cur = ie.parent
	}
	return false, errf(unix.ELOOP, "directory %s: index chain longer than %d links", dir, maxChain)
}

// nameInfo is what a name in a directory holds.
type nameInfo struct {
	exists bool
	st     unix.Stat_t
	g      gfid.GFID // zero if the inode carries none
}

func (ni nameInfo) isDir() bool { return ni.exists && isDirMode(ni.st.Mode) }

// lookup looks name up in the directory dirfd, without following a symlink.
func (r *Replica) lookup(dirfd int, name string) (nameInfo, error) {
	st, err := lstatAt(dirfd, name)
	if err == unix.ENOENT {
		return nameInfo{}, nil
	}
	if err != nil {
		return nameInfo{}, err
	}
	g, err := r.gfidOf(atNode(dirfd, name))
	if err != nil {
		return nameInfo{}, err
	}
	return nameInfo{exists: true, st: st, g: g}, nil
}

// holds reports whether the name described by ni holds gfid g. As non-root a
// symlink or special file carries no gfid attribute; it holds g when it is
// the inode of g's index entry.
func (r *Replica) holds(ni nameInfo, g gfid.GFID) bool {
	if !ni.exists {
		return false
	}
	if ni.g == g {
		return true
	}
	if !ni.g.IsZero() || r.asRoot || !noUserXattrs(ni.st.Mode) {
		return false
	}
	ie, err := r.readIndex(g)
	return err == nil && ie.kind == idxFile && ie.st.Ino == ni.st.Ino && ie.st.Dev == ni.st.Dev
}

// openNode returns a node for the inode of gfid g: an open directory, or the
// index hardlink of a non-directory. Call done when finished with it.
func (r *Replica) openNode(g gfid.GFID) (n node, isDir bool, done func(), err error) {
	ie, err := r.readIndex(g)
	if err != nil {
		return node{}, false, nil, err
	}
	switch ie.kind {
	case idxNone:
		if g == gfid.Root || g == gfid.Park {
			break
		}
		return node{}, false, nil, errf(unix.ENOENT, "gfid %s not found", g)
	case idxFile:
		sfd, err := r.openShard(g, false)
		if err != nil {
			return node{}, false, nil, err
		}
		return atNode(sfd, g.String()), false, func() { closeFd(sfd) }, nil
	}
	fd, err := r.openDir(g)
	if err != nil {
		return node{}, false, nil, err
	}
	return fdNode(fd), true, func() { closeFd(fd) }, nil
}
