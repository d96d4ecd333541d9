package beneath

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestOpenDir(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	for _, d := range []string{"a/b", "c"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a", filepath.Join(root, "in")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rel  string
		want error // nil: opens
	}{
		{"", nil},
		{".", nil},
		{"a/b", nil},
		{"a/b/", nil},
		{"a/../c", nil},
		{"..", unix.EXDEV},
		{"a/../../x", unix.EXDEV},
		{"out", unix.ENOTDIR}, // O_NOFOLLOW on the last component, with O_DIRECTORY
		{"in/b", unix.ELOOP},
		{"f", unix.ENOTDIR},
		{"nope", unix.ENOENT},
	} {
		t.Run(tc.rel, func(t *testing.T) {
			fd, err := OpenDir(root, tc.rel)
			if err == nil {
				unix.Close(fd)
			}
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Errorf("OpenDir(%q): %v, want %v", tc.rel, err, tc.want)
			}
		})
	}
	if _, err := OpenDir(filepath.Join(root, "nope"), "."); !errors.Is(err, unix.ENOENT) {
		t.Errorf("missing root: %v", err)
	}
}

func TestOpenFile(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", filepath.Join(root, "l")); err != nil {
		t.Fatal(err)
	}
	dfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)
	fd, err := Open(dfd, "f", unix.O_RDONLY)
	if err != nil {
		t.Fatalf("open f: %v", err)
	}
	unix.Close(fd)
	if _, err := Open(dfd, "l", unix.O_RDONLY); !errors.Is(err, unix.ELOOP) {
		t.Errorf("open of a symlink: %v, want ELOOP", err)
	}
}
