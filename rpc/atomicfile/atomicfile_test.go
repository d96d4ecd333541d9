package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state")
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	for _, tc := range []struct {
		data string
		perm os.FileMode
	}{
		{"first\n", 0o600},
		{"second, longer\n", 0o644}, // replaces, with the new mode
		{"", 0o600},
	} {
		if err := Write(p, []byte(tc.data), tc.perm); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil || string(b) != tc.data {
			t.Fatalf("content %q, %v; want %q", b, err, tc.data)
		}
		if fi, _ := os.Stat(p); fi.Mode().Perm() != tc.perm {
			t.Errorf("mode %v, want %v", fi.Mode().Perm(), tc.perm)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
	if err := Write(filepath.Join(dir, "nope", "x"), nil, 0o600); err == nil {
		t.Error("a missing directory: no error")
	}
}

func TestWriteIn(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := WriteIn(r, "sub/id", []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "sub", "id")); err != nil || string(b) != "x\n" {
		t.Fatalf("%q, %v", b, err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "sub")); len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
	// The root confines it: neither .. nor a symlink out.
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "out")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"../escape", "out/escape"} {
		if err := WriteIn(r, p, nil, 0o600); err == nil {
			t.Errorf("%s: no error", p)
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("written outside the root: %v", ents)
	}
	// A directory in the way: the rename fails, the temporary file goes.
	if err := os.Mkdir(filepath.Join(dir, "sub", "d"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "d", "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteIn(r, "sub/d", nil, 0o600); err == nil {
		t.Error("over a non-empty directory: no error")
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "sub")); len(ents) != 2 {
		t.Errorf("sub holds %v, want id and d", ents)
	}
}

// CreateIn writes a file once: the second writer finds it there and
// changes nothing, and no temporary name is left behind.
func TestCreateInOnce(t *testing.T) {
	dir := t.TempDir()
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := CreateIn(r, "id", []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CreateIn(r, "id", []byte("second\n"), 0o600); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second CreateIn: %v, want ErrExist", err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "id"))
	ents, _ := os.ReadDir(dir)
	if string(b) != "first\n" || len(ents) != 1 {
		t.Fatalf("content %q, %d names; want the first writer's and one name", b, len(ents))
	}
}
