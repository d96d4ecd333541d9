package gluster_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/integration/gluster"
	"github.com/georep/georep/integration/harness"
	"github.com/georep/georep/master/glusterfs"
)

// TestGlusterMasterGuards: the master's safety guards on a GlusterFS master
// volume, where they differ from a plain directory: the dry run plans per
// brick, a mass delete is refused (exit 4) and let through by --max-delete,
// and a brick whose root lost its trusted.glusterfs.volume-id (its
// filesystem not mounted) is refused as another source.
func TestGlusterMasterGuards(t *testing.T) {
	s := newMasterSite(t, gluster.VolumeOpts{Bricks: 1})
	for i := range 150 {
		write(t, filepath.Join(s.mnt, fmt.Sprintf("f%03d", i)), fmt.Sprintf("file %d\n", i))
	}
	s.oneshot(t)
	s.check(t, "first sync")
	kept := filepath.Join(t.TempDir(), "kept")
	if out, err := exec.Command("cp", "-a", s.replica, kept).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	os.RemoveAll(filepath.Join(kept, ".georep"))
	if fi, err := os.Stat(s.replica); err == nil {
		os.Chtimes(kept, fi.ModTime(), fi.ModTime())
	}
	unchanged := func(when string) {
		t.Helper()
		diffs, err := harness.Compare(kept, s.replica, harness.CompareOptions{})
		if err != nil || len(diffs) > 0 {
			t.Fatalf("%s: the slave changed: %v\n%s", when, err, strings.Join(head(diffs, 20), "\n"))
		}
	}
	run := func(extra ...string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
		defer cancel()
		return harness.Oneshot(t, ctx, s.args(extra...)...)
	}
	for i := range 120 {
		if err := os.Remove(filepath.Join(s.mnt, fmt.Sprintf("f%03d", i))); err != nil {
			t.Fatal(err)
		}
	}

	code, out := run("--dry-run")
	for _, w := range []string{"== brick " + s.vol.Bricks[0].Host + ":" + s.vol.Bricks[0].Path, "deletes", `"f000"`,
		"WOULD REFUSE: safety guard max-delete"} {
		if code != 0 || !strings.Contains(out, w) {
			t.Fatalf("dry run: exit %d, want 0 and %q:\n%s", code, w, harness.Tail(out, 40))
		}
	}
	unchanged("dry run")

	code, out = run()
	if code != 4 || !strings.Contains(out, "safety guard max-delete refused") {
		t.Fatalf("mass delete: exit %d, want 4 naming max-delete:\n%s", code, harness.Tail(out, 30))
	}
	unchanged("mass delete refused")

	brick := s.vol.Bricks[0].Path
	id := make([]byte, 16)
	if _, err := unix.Getxattr(brick, glusterfs.VolumeIDXattr, id); err != nil {
		t.Fatal(err)
	}
	if err := unix.Removexattr(brick, glusterfs.VolumeIDXattr); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := unix.Setxattr(brick, glusterfs.VolumeIDXattr, id, 0); err != nil {
				t.Errorf("restoring the brick's volume-id: %v", err)
			}
		}
	}
	t.Cleanup(restore)
	code, out = run("--max-delete", "off")
	if code != 4 || !strings.Contains(out, "safety guard source-identity refused") || !strings.Contains(out, "trusted.glusterfs.volume-id none") {
		t.Fatalf("brick without its volume-id: exit %d, want 4 naming source-identity:\n%s", code, harness.Tail(out, 30))
	}
	unchanged("brick without its volume-id")
	restore()

	if code, out = run("--max-delete", "off"); code != 0 {
		t.Fatalf("max-delete off: exit %d\n%s", code, harness.Tail(out, 30))
	}
	s.check(t, "deletes let through")
}
