package gluster_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// keepTrees registers a cleanup that, when the test failed and
// GEOREP_E2E_KEEP_LOGS names a directory, writes a listing of every
// master brick and of the replica (its bricks, or the plain directory)
// with each entry's mode, size and gfid: what a failure's logs name by
// gfid can then be placed. It runs before the volumes are removed.
func (s *masterSite) keepTrees(t *testing.T) {
	dir := os.Getenv("GEOREP_E2E_KEEP_LOGS")
	if dir == "" {
		return
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		var b strings.Builder
		for i, br := range s.vol.Bricks {
			dumpTree(&b, fmt.Sprintf("master brick%d", i), br.Path, "trusted.gfid")
		}
		if s.slaveVol != nil {
			for i, br := range s.slaveVol.Bricks {
				dumpTree(&b, fmt.Sprintf("slave brick%d", i), br.Path, "trusted.gfid")
			}
		} else {
			dumpTree(&b, "replica", s.replica, "trusted.georep.gfid")
		}
		d := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_"))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Logf("GEOREP_E2E_KEEP_LOGS: %v", err)
			return
		}
		for i, br := range s.vol.Bricks {
			// The bricks' changelogs, as GlusterFS wrote them.
			dst := filepath.Join(d, fmt.Sprintf("changelogs-brick%d", i))
			if out, err := exec.Command("cp", "-a", filepath.Join(br.Path, ".glusterfs", "changelogs"), dst).CombinedOutput(); err != nil {
				t.Logf("keeping the changelogs of %s: %v %s", br.Path, err, out)
			}
		}
		p := filepath.Join(d, "trees.txt")
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err == nil {
			t.Logf("trees and changelogs kept in %s", d)
		}
	})
}

func dumpTree(b *strings.Builder, what, root, xattr string) {
	fmt.Fprintf(b, "== %s %s\n", what, root)
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			fmt.Fprintf(b, "%s: %v\n", p, err)
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		if rel == ".glusterfs" || rel == ".georep" || rel == ".georep.lock" || rel == ".trashcan" {
			return filepath.SkipDir
		}
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil {
			return nil
		}
		g := "-"
		buf := make([]byte, 16)
		if n, err := unix.Lgetxattr(p, xattr, buf); err == nil && n == 16 {
			g = fmt.Sprintf("%x-%x-%x-%x-%x", buf[0:4], buf[4:6], buf[6:8], buf[8:10], buf[10:16])
		}
		fmt.Fprintf(b, "%q %o %d %s\n", rel, st.Mode, st.Size, g)
		return nil
	})
}
