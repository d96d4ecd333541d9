package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkg/xattr"
)

// PopulateDrift makes the tree the audit tests damage: d1/{mtime,trunc,
// flip,xattr} (xattr with user.color), d2/{missing,kept} (4 KiB each) and a
// symlink. It fails where user xattrs are not supported.
func PopulateDrift(root string) error {
	for _, d := range []string{"d1", "d2"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	data := []byte(strings.Repeat("0123456789abcdef", 256))
	for _, name := range []string{"d1/mtime", "d1/trunc", "d1/flip", "d1/xattr", "d2/missing", "d2/kept"} {
		if err := os.WriteFile(filepath.Join(root, name), data, 0o644); err != nil {
			return err
		}
	}
	if err := xattr.Set(filepath.Join(root, "d1/xattr"), "user.color", []byte("blue")); err != nil {
		return err
	}
	return os.Symlink("d1/mtime", filepath.Join(root, "link"))
}

// Damage changes the replica behind georep's back: an mtime, a truncated
// file, a byte flipped with size and mtime kept, a removed xattr, an extra
// file, a missing file (in a PopulateDrift tree; the directories' mtimes
// kept).
func Damage(t *testing.T, replica string) {
	t.Helper()
	p := func(name string) string { return filepath.Join(replica, name) }
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := os.Chtimes(p("d1/mtime"), old, old); err != nil {
		t.Fatal(err)
	}
	keep := func(name string, change func()) {
		st, err := os.Stat(p(name))
		if err != nil {
			t.Fatal(err)
		}
		change()
		if err := os.Chtimes(p(name), st.ModTime(), st.ModTime()); err != nil {
			t.Fatal(err)
		}
	}
	keep("d1/trunc", func() {
		if err := os.Truncate(p("d1/trunc"), 100); err != nil {
			t.Fatal(err)
		}
	})
	keep("d1/flip", func() {
		f, err := os.OpenFile(p("d1/flip"), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, 1000); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 0xff
		if _, err := f.WriteAt(b, 1000); err != nil {
			t.Fatal(err)
		}
		f.Close()
	})
	keep("d1/xattr", func() {
		if err := xattr.Remove(p("d1/xattr"), "user.color"); err != nil {
			t.Fatal(err)
		}
	})
	keep("d2", func() {
		if err := os.WriteFile(p("d2/extra"), []byte("not the master's"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(p("d2/missing")); err != nil {
			t.Fatal(err)
		}
	})
}
