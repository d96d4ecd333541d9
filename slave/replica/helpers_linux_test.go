package replica

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
	"github.com/georep/georep/slave/apply"
)

func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// newReplica opens a replica in a fresh temp dir; the replica root is
// <tmp>/root, beside it <tmp>/outside holds a sentinel file.
func newReplica(t *testing.T) (*Replica, string) {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "outside"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "outside", "sentinel"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Open(root, testLogger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r, root
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (euid 0): devices, chown and trusted.* xattrs")
	}
}

// mustApply applies entries and fails the test on any failure.
func mustApply(t *testing.T, r *Replica, entries ...ops.Entry) {
	t.Helper()
	if fails := r.ApplyEntries(t.Context(), entries); len(fails) != 0 {
		for _, f := range fails {
			t.Errorf("entry %d: errno %v: %s", f.Index, f.Errno, f.Message)
		}
		t.FailNow()
	}
}

// applyFail applies one entry that must fail with errno want.
func applyFail(t *testing.T, r *Replica, e ops.Entry, want syscall.Errno) ops.Failure {
	t.Helper()
	fails := r.ApplyEntries(t.Context(), []ops.Entry{e})
	if len(fails) != 1 {
		t.Fatalf("%s: got %d failures, want 1 with %v", apply.Describe(e), len(fails), want)
	}
	if fails[0].Errno != want {
		t.Fatalf("%s: errno %v (%s), want %v", apply.Describe(e), fails[0].Errno, fails[0].Message, want)
	}
	return fails[0]
}

func create(g, parent gfid.GFID, name string, mode uint32) ops.Entry {
	return ops.Entry{Op: ops.OpCreate, GFID: g, Parent: parent, Name: name, Mode: unix.S_IFREG | mode}
}

func mkdir(g, parent gfid.GFID, name string) ops.Entry {
	return ops.Entry{Op: ops.OpMkdir, GFID: g, Parent: parent, Name: name, Mode: unix.S_IFDIR | 0o755}
}

func symlink(g, parent gfid.GFID, name, target string) ops.Entry {
	return ops.Entry{Op: ops.OpSymlink, GFID: g, Parent: parent, Name: name, Target: target, Mode: unix.S_IFLNK | 0o777}
}

func link(g, parent gfid.GFID, name string) ops.Entry {
	return ops.Entry{Op: ops.OpLink, GFID: g, Parent: parent, Name: name}
}

func rename(g, parent gfid.GFID, name string, newParent gfid.GFID, newName string) ops.Entry {
	return ops.Entry{Op: ops.OpRename, GFID: g, Parent: parent, Name: name, NewParent: newParent, NewName: newName}
}

func unlink(g, parent gfid.GFID, name string) ops.Entry {
	return ops.Entry{Op: ops.OpUnlink, GFID: g, Parent: parent, Name: name}
}

func rmdir(g, parent gfid.GFID, name string) ops.Entry {
	return ops.Entry{Op: ops.OpRmdir, GFID: g, Parent: parent, Name: name}
}

// xattrGFID reads the gfid attribute of path (not following a symlink).
func xattrGFID(t *testing.T, r *Replica, path string) gfid.GFID {
	t.Helper()
	buf := make([]byte, 64)
	n, err := unix.Lgetxattr(path, r.s.gfidAttr, buf)
	if err == unix.ENODATA {
		return gfid.GFID{}
	}
	if err != nil {
		t.Fatalf("lgetxattr %s: %v", path, err)
	}
	g, err := gfid.FromBytes(buf[:n])
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return g
}

// indexPath is the path of g's entry in the gfid index: in the data tree
// when it is there, else in the links tree.
func indexPath(root string, g gfid.GFID) string {
	if p := dataPath(root, g); exists(p) {
		return p
	}
	return linksPath(root, g)
}

// dataPath is where g's entry is in the data tree (regular files).
func dataPath(root string, g gfid.GFID) string {
	return filepath.Join(root, metaDir, indexDir, g.Shard(), g.String())
}

// linksPath is where g's entry is in the links tree (every other type).
func linksPath(root string, g gfid.GFID) string {
	return filepath.Join(root, metaDir, linksDir, g.Shard(), g.String())
}

func lstat(t *testing.T, path string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatalf("lstat: %v", err)
	}
	return st
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// snapshot describes every name beneath dir: type, mode, owner, size, data
// digest, symlink target, gfid attribute, user xattrs, and hardlink group
// (the first path of the inode in walk order).
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	inodes := map[uint64]string{}
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	sort.Strings(paths)
	for _, p := range paths {
		rel, _ := filepath.Rel(dir, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		desc := fmt.Sprintf("mode=%o uid=%d gid=%d rdev=%d", st.Mode, st.Uid, st.Gid, st.Rdev)
		if !apply.IsDirMode(st.Mode) {
			desc += fmt.Sprintf(" size=%d nlink=%d", st.Size, st.Nlink)
			if first, ok := inodes[st.Ino]; ok {
				desc += " same-as=" + first
			} else {
				inodes[st.Ino] = rel
			}
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				t.Fatal(err)
			}
			desc += " -> " + target
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(b)
			desc += " sha=" + hex.EncodeToString(sum[:4])
		}
		names := make([]byte, 4096)
		if n, err := unix.Llistxattr(p, names); err == nil {
			var xs []string
			for _, name := range strings.Split(string(names[:n]), "\x00") {
				if name == "" {
					continue
				}
				v := make([]byte, 4096)
				m, err := unix.Lgetxattr(p, name, v)
				if err != nil {
					t.Fatal(err)
				}
				xs = append(xs, name+"="+hex.EncodeToString(v[:m]))
			}
			sort.Strings(xs)
			desc += " xattrs=" + strings.Join(xs, ",")
		}
		out[rel] = desc
	}
	return out
}

func diffSnapshots(a, b map[string]string) string {
	var d []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			d = append(d, "- "+k+" "+v)
		} else if w != v {
			d = append(d, "~ "+k+" "+v+" => "+w)
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			d = append(d, "+ "+k+" "+v)
		}
	}
	sort.Strings(d)
	return strings.Join(d, "\n")
}

func assertSameTree(t *testing.T, before, after map[string]string) {
	t.Helper()
	if d := diffSnapshots(before, after); d != "" {
		t.Fatalf("tree changed:\n%s", d)
	}
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
