package harness

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pkg/xattr"
	"golang.org/x/sys/unix"
)

// CompareOptions choose what Compare checks beyond names, types, contents,
// modes, owners, mtimes, symlink targets, device numbers and hardlink groups.
type CompareOptions struct {
	Xattrs bool // compare user.* xattrs
}

type node struct {
	st     unix.Stat_t
	target string
	sum    [32]byte
	xattrs map[string]string
}

func scan(root string, skipGeorep bool, opts CompareOptions) (map[string]*node, error) {
	out := map[string]*node{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if skipGeorep && rel == ".georep" {
			return filepath.SkipDir
		}
		if skipGeorep && rel == ".georep.lock" {
			return nil // a GlusterFS slave's directory lock (slave/glusterfs.DirLockName)
		}
		n := &node{}
		if err := unix.Lstat(p, &n.st); err != nil {
			return err
		}
		switch n.st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			n.target = t
		case unix.S_IFREG:
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			copy(n.sum[:], h.Sum(nil))
		}
		if opts.Xattrs && (n.st.Mode&unix.S_IFMT == unix.S_IFREG || n.st.Mode&unix.S_IFMT == unix.S_IFDIR) {
			names, err := xattr.LList(p)
			if err != nil {
				return err
			}
			n.xattrs = map[string]string{}
			for _, name := range names {
				if !strings.HasPrefix(name, "user.") {
					continue
				}
				v, err := xattr.LGet(p, name)
				if err != nil {
					return err
				}
				n.xattrs[name] = string(v)
			}
		}
		out[rel] = n
		return nil
	})
	return out, err
}

// Compare returns the differences between the source tree src and the
// replica dst (whose .georep directory, and on a GlusterFS slave its
// .georep.lock, are ignored), at most max of them.
func Compare(src, dst string, opts CompareOptions) ([]string, error) {
	a, err := scan(src, false, opts)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", src, err)
	}
	b, err := scan(dst, true, opts)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", dst, err)
	}
	var diffs []string
	add := func(format string, args ...any) { diffs = append(diffs, fmt.Sprintf(format, args...)) }
	for p, x := range a {
		y, ok := b[p]
		if !ok {
			add("%q: missing on the replica", p)
			continue
		}
		if x.st.Mode != y.st.Mode {
			add("%q: mode %o on the source, %o on the replica", p, x.st.Mode, y.st.Mode)
			continue
		}
		if x.st.Uid != y.st.Uid || x.st.Gid != y.st.Gid {
			add("%q: owner %d:%d on the source, %d:%d on the replica", p, x.st.Uid, x.st.Gid, y.st.Uid, y.st.Gid)
		}
		if x.st.Mtim != y.st.Mtim {
			add("%q: mtime %d.%09d on the source, %d.%09d on the replica", p, x.st.Mtim.Sec, x.st.Mtim.Nsec, y.st.Mtim.Sec, y.st.Mtim.Nsec)
		}
		switch x.st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			if x.st.Size != y.st.Size || x.sum != y.sum {
				add("%q: content differs (%d bytes on the source, %d on the replica)", p, x.st.Size, y.st.Size)
			}
		case unix.S_IFLNK:
			if x.target != y.target {
				add("%q: symlink target %q on the source, %q on the replica", p, x.target, y.target)
			}
		case unix.S_IFCHR, unix.S_IFBLK:
			if x.st.Rdev != y.st.Rdev {
				add("%q: device %x on the source, %x on the replica", p, x.st.Rdev, y.st.Rdev)
			}
		}
		if opts.Xattrs && !equalMaps(x.xattrs, y.xattrs) {
			add("%q: user xattrs %v on the source, %v on the replica", p, x.xattrs, y.xattrs)
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			add("%q: on the replica only", p)
		}
	}
	// Hardlink groups: paths sharing an inode on one side share one on the other.
	ga, gb := groups(a), groups(b)
	for key, paths := range ga {
		if len(paths) < 2 {
			continue
		}
		other := map[uint64]bool{}
		for _, p := range paths {
			if y, ok := b[p]; ok {
				other[y.st.Ino] = true
			}
		}
		if len(other) != 1 {
			add("hardlink group %q is split on the replica", paths)
			continue
		}
		for ino := range other {
			if !equalSlices(gb[ino], paths) {
				add("hardlink group %q on the source is %q on the replica", paths, gb[ino])
			}
		}
		_ = key
	}
	sort.Strings(diffs)
	return diffs, nil
}

func groups(m map[string]*node) map[uint64][]string {
	g := map[uint64][]string{}
	for p, n := range m {
		if n.st.Mode&unix.S_IFMT != unix.S_IFDIR {
			g[n.st.Ino] = append(g[n.st.Ino], p)
		}
	}
	for _, ps := range g {
		sort.Strings(ps)
	}
	return g
}

func equalSlices(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !bytes.Equal([]byte(v), []byte(w)) {
			return false
		}
	}
	return true
}
