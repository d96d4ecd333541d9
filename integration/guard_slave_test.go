package integration

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/integration/harness"
)

// writeForeign puts data georep did not create under root: a few files, a
// directory with a file and a symlink. It is small next to the source
// (Populate's tree has far more entries), so the adopting pass's removal
// of it stays well under any mass-delete threshold.
func writeForeign(t *testing.T, root string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "old-backups"), 0o755))
	must(os.WriteFile(filepath.Join(root, "old-backups", "2025.tar"), []byte("tarball"), 0o600))
	must(os.WriteFile(filepath.Join(root, "notes.txt"), []byte("someone's notes\n"), 0o644))
	must(os.WriteFile(filepath.Join(root, "d1"), []byte("a file where the source has a directory\n"), 0o644))
	must(os.Symlink("notes.txt", filepath.Join(root, "latest")))
}

// snapshot describes every inode under root, .georep/ included: type,
// mode, size, mtime, ctime, content, link target.
func snapshot(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fmt.Fprintf(&b, "%s mode=%o size=%d mtime=%d.%d ctime=%d.%d", rel, st.Mode, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " sha=%x", sha256.Sum256(data))
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " -> %s", target)
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestSlaveNonEmptyRootGuard: a slave whose --root already holds other data
// refuses the first master: georep-master --oneshot exits 4 at once, naming
// the guard, the root and --adopt, and nothing in the root changes. With
// --adopt the pass runs, the replica converges to the source (the foreign
// data is gone) and the adoption is recorded; a restart without --adopt
// keeps serving the master now bound to the root.
func TestSlaveNonEmptyRootGuard(t *testing.T) {
	harness.RequireRsync(t)
	dir := t.TempDir()
	src, replica, work := filepath.Join(dir, "src"), filepath.Join(dir, "replica"), filepath.Join(dir, "work")
	for _, d := range []string{src, replica} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := harness.Populate(src, rand.New(rand.NewPCG(31, 32))); err != nil {
		t.Fatal(err)
	}
	writeForeign(t, replica)

	slave := harness.StartSlave(t, replica)
	before := snapshot(t, replica) // after the slave made its .georep
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	code, out := harness.Oneshot(t, ctx, harness.MasterArgs(slave.Addr, src, work, "--oneshot-timeout", "90s")...)
	took := time.Since(start)
	if code != 4 {
		t.Fatalf("georep-master --oneshot on a non-empty slave root exited %d, want 4 (a guard):\n%s", code, out)
	}
	last := lastLines(out, 1)
	for _, want := range []string{"safety guard replica-not-empty refused", replica, "holds 4 entries", `"d1"`, "--adopt"} {
		if !strings.Contains(last, want) {
			t.Errorf("the master's error does not say %q:\n%s", want, last)
		}
	}
	if took > 30*time.Second {
		t.Errorf("the refusal took %s: --oneshot must give up at once on a guard", took)
	}
	if after := snapshot(t, replica); after != before {
		t.Fatalf("the refused master changed the slave root:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if _, err := os.Stat(filepath.Join(replica, ".georep", "master-volume-id")); !os.IsNotExist(err) {
		t.Errorf("the refused master bound the replica: %v", err)
	}
	if !strings.Contains(slave.Log(), "first master refused: the replica root is not empty") {
		t.Errorf("the slave did not log the refusal:\n%s", slave.Log())
	}

	// The operator checks the directory and adopts it.
	slave.Stop()
	adopting := harness.StartSlave(t, replica, "--adopt")
	harness.MustOneshot(t, ctx, harness.MasterArgs(adopting.Addr, src, work, "--oneshot-timeout", "90s")...)
	if diffs, err := harness.Compare(src, replica, harness.CompareOptions{}); err != nil || len(diffs) > 0 {
		t.Fatalf("the adopted replica differs from the source (%v):\n%s", err, strings.Join(diffs, "\n"))
	}
	vol, err := os.ReadFile(filepath.Join(work, "volume-id"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(replica, ".georep", "adopted"))
	if err != nil {
		t.Fatalf("adoption not recorded: %v", err)
	}
	var rec struct {
		MasterVolume string    `json:"master_volume"`
		Time         time.Time `json:"time"`
		Entries      int       `json:"entries"`
	}
	if err := json.Unmarshal(b, &rec); err != nil || rec.MasterVolume != strings.TrimSpace(string(vol)) || rec.Entries != 4 || time.Since(rec.Time) > 5*time.Minute {
		t.Errorf("adoption record %s (%v), want master volume %s", b, err, vol)
	}
	if !strings.Contains(adopting.Log(), "non-empty replica root adopted") {
		t.Errorf("the slave did not log the adoption:\n%s", adopting.Log())
	}

	// Bound now: a restart without --adopt serves the same master, with
	// more foreign data put into the root in between (it is the master's
	// replica: verify removes what the source lacks).
	adopting.Stop()
	if err := os.WriteFile(filepath.Join(replica, "stray"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	plain := harness.StartSlave(t, replica)
	harness.MustOneshot(t, ctx, harness.MasterArgs(plain.Addr, src, work, "--oneshot-timeout", "90s")...)
	if _, err := os.Lstat(filepath.Join(replica, "stray")); !os.IsNotExist(err) {
		t.Errorf("stray not removed by the bound master's pass: %v", err)
	}
}
