package harness

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkg/xattr"
	"golang.org/x/sys/unix"
)

// TestCompareDetects makes sure the end-to-end tests' oracle can fail: each
// kind of divergence between two copies of a tree is reported.
func TestCompareDetects(t *testing.T) {
	if _, err := exec.LookPath("cp"); err != nil {
		t.Skip("cp not found")
	}
	tests := []struct {
		name   string
		damage func(dst string) error
		want   string
	}{
		{"nothing", func(string) error { return nil }, ""},
		{"content same size and mtime", func(dst string) error {
			return rewriteSameSize(filepath.Join(dst, "d1/f1"), rand.New(rand.NewPCG(9, 9)))
		}, "content differs"},
		{"mode", func(dst string) error { return os.Chmod(filepath.Join(dst, "empty"), 0o600) }, "mode"},
		{"extra", func(dst string) error { return os.WriteFile(filepath.Join(dst, "extra"), nil, 0o644) }, "on the replica only"},
		{"missing", func(dst string) error { return os.Remove(filepath.Join(dst, "fifo")) }, "missing on the replica"},
		{"hardlink split", func(dst string) error {
			p := filepath.Join(dst, "d2/hardlink-of-f1")
			b, _ := os.ReadFile(p)
			os.Remove(p)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				return err
			}
			var st unix.Stat_t
			unix.Lstat(filepath.Join(dst, "d1/f1"), &st)
			unix.Chown(p, int(st.Uid), int(st.Gid))
			unix.Chmod(p, st.Mode&0o7777)
			return unix.UtimesNano(p, []unix.Timespec{st.Atim, st.Mtim})
		}, "hardlink group"},
		{"xattr", func(dst string) error { return xattr.Set(filepath.Join(dst, "f0"), "user.color", []byte("red")) }, "user xattrs"},
		{"symlink target", func(dst string) error {
			p := filepath.Join(dst, "rel-link")
			os.Remove(p)
			return os.Symlink("elsewhere", p)
		}, "symlink target"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
			os.Mkdir(src, 0o755)
			if err := Populate(src, rand.New(rand.NewPCG(3, 4))); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
				t.Fatalf("cp -a: %v %s", err, out)
			}
			if err := tt.damage(dst); err != nil {
				t.Fatal(err)
			}
			diffs, err := Compare(src, dst, CompareOptions{Xattrs: true})
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(diffs, "\n")
			if tt.want == "" && got != "" {
				t.Fatalf("identical copies reported as different:\n%s", got)
			}
			if !strings.Contains(got, tt.want) {
				t.Fatalf("damage %q not reported as %q; got:\n%s", tt.name, tt.want, got)
			}
		})
	}
}
