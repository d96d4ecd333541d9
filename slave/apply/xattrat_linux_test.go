package apply

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/georep/georep/rpc/xattrat"
	"golang.org/x/sys/unix"
)

// TestGetxattrAtMatchesProcPath: Node.Getxattr of an AtNode answers as
// lgetxattr on the procfs path does (values, sizes past the first buffer,
// symlinks not followed, missing attributes and names), whichever way the
// kernel lets it go.
func TestGetxattrAtMatchesProcPath(t *testing.T) {
	dir := t.TempDir()
	big := bytes.Repeat([]byte("v"), 3000) // past ReadSized's first 256 bytes
	if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", filepath.Join(dir, "l")); err != nil {
		t.Fatal(err)
	}
	for _, set := range []struct {
		name string
		val  []byte
	}{{"f", []byte("small")}, {"d", big}} {
		if err := unix.Lsetxattr(filepath.Join(dir, set.name), "user.test", set.val, 0); err != nil {
			if errors.Is(err, unix.ENOTSUP) {
				t.Skipf("no user xattrs on %s", dir)
			}
			t.Fatal(err)
		}
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	t.Logf("getxattrat available: %v", xattrat.Available())
	tests := []struct {
		name, attr string
		want       []byte
		wantErr    bool
	}{
		{"f", "user.test", []byte("small"), false},
		{"d", "user.test", big, false},
		{"f", "user.none", nil, true},
		{"l", "user.test", nil, true}, // the symlink, not its target
		{"gone", "user.test", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name+" "+tt.attr, func(t *testing.T) {
			got, err := AtNode(fd, tt.name).Getxattr(tt.attr)
			ref, rerr := xattrat.ReadSized(func(d []byte) (int, error) { return unix.Lgetxattr(ProcPath(fd, tt.name), tt.attr, d) })
			if !errors.Is(err, rerr) && !(err == nil && rerr == nil) {
				t.Fatalf("error %v, the procfs path says %v", err, rerr)
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want an error: %v", err, tt.wantErr)
			}
			if !bytes.Equal(got, ref) || !bytes.Equal(got, tt.want) {
				t.Fatalf("value %q, the procfs path %q, want %q", shorten(got), shorten(ref), shorten(tt.want))
			}
		})
	}
}

func shorten(b []byte) string {
	if len(b) > 20 {
		return fmt.Sprintf("%s… (%d bytes)", b[:20], len(b))
	}
	return string(b)
}
