package replica

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
	"github.com/georep/georep/slave/apply"
)

// rsyncReceiverOptions are the options of a real sync job (master/syncer's
// own plus the ones the slave forces, see slave.ValidateRsyncArgs), run here
// with both ends local: the receiving half behaves as the slave's
// rsync --server does.
var rsyncReceiverOptions = []string{
	"--copy-links", "--relative", "--files-from=-", "--from0", "--no-implied-dirs",
	"--inplace", "--ignore-times", "--existing", "--numeric-ids", "--munge-links",
	"--perms", "--times",
}

// runRsync stages files (relative path -> content) in a fresh staging
// directory of real directories and regular files, and runs rsync with the
// sync job's options to send exactly those paths into dataDir.
func runRsync(t *testing.T, dataDir string, files map[string]string, extra ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("rsync")
	if err != nil {
		t.Skip("rsync not installed")
	}
	stage := t.TempDir()
	var list bytes.Buffer
	for rel, data := range files {
		p := filepath.Join(stage, rel)
		if strings.HasSuffix(rel, "/") { // a directory
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			list.WriteString(strings.TrimSuffix(rel, "/"))
			list.WriteByte(0)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		list.WriteString(rel)
		list.WriteByte(0)
	}
	args := append(append(append([]string{}, rsyncReceiverOptions...), extra...), stage+"/", dataDir+"/")
	cmd := exec.CommandContext(t.Context(), bin, args...)
	cmd.Stdin = &list
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestRsyncCannotEscapeThroughIndex plays a hostile master against a real
// rsync receiving into DataDir: file names that lead through the index entry
// of a directory to a replicated symlink pointing outside the replica, or
// that name the index entry of a symlink or a fifo. None may change anything
// outside the replica, nor any replica inode that is not a regular file.
func TestRsyncCannotEscapeThroughIndex(t *testing.T) {
	r, root := newReplica(t)
	dir := filepath.Dir(root)
	outside := filepath.Join(dir, "outside")
	d, sub, evil, evilFile, fifo, file := gfid.New(), gfid.New(), gfid.New(), gfid.New(), gfid.New(), gfid.New()
	mustApply(t, r,
		mkdir(d, gfid.Root, "d"),
		mkdir(sub, d, "sub"),
		// A replicated symlink to a directory outside the replica...
		symlink(evil, d, "evil", outside),
		// ...and one to a file outside.
		symlink(evilFile, gfid.Root, "evil-file", filepath.Join(outside, "sentinel")),
		ops.Entry{Op: ops.OpMknod, GFID: fifo, Parent: gfid.Root, Name: "fifo", Mode: unix.S_IFIFO | 0o644},
		create(file, sub, "f", 0o644),
	)
	shard := func(g gfid.GFID) string {
		return g.Shard() + "/" + g.String()
	}
	// Sanity: the honest path works, so a refusal below is the layout's doing.
	if out, err := runRsync(t, r.DataDir(), map[string]string{shard(file): "honest"}); err != nil {
		t.Fatalf("honest rsync: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(root, "d", "sub", "f")); err != nil || string(b) != "honest" {
		t.Fatalf("honest rsync did not update d/sub/f: %q, %v", b, err)
	}

	beforeOut := snapshot(t, outside)
	beforeRoot := snapshot(t, root)
	attacks := []struct {
		name string
		path string
	}{
		{"through a directory entry and a replicated symlink", shard(d) + "/evil/sentinel"},
		{"through two directory entries", shard(sub) + "/../evil/sentinel"},
		{"through the root entry", shard(gfid.Root) + "/evil-file"},
		{"through the park entry", shard(gfid.Park) + "/../../../../outside/sentinel"},
		{"the entry of a symlink to a file outside", shard(evilFile)},
		{"the entry of a symlink to a directory outside", shard(evil) + "/sentinel"},
		{"the entry of a fifo", shard(fifo)},
		{"a directory's entry itself", shard(d)},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			out, err := runRsync(t, r.DataDir(), map[string]string{a.path: "PWNED"})
			t.Logf("rsync %s: err %v\n%s", a.path, err, strings.TrimSpace(out))
			assertSameTree(t, beforeOut, snapshot(t, outside))
			assertSameTree(t, beforeRoot, snapshot(t, root))
			if b, _ := os.ReadFile(filepath.Join(outside, "sentinel")); string(b) != "keep" {
				t.Fatalf("sentinel outside the replica now holds %q", b)
			}
		})
	}
	assertDataDirRegularOnly(t, r)

	// rsync -d (which the slave's argument check lets through) replaces the
	// entry of a regular file it is sent as a directory by an empty
	// directory. Nothing outside changes, the replica inode keeps its data,
	// and replaying the name repairs the index.
	t.Run("a regular file's entry sent as a directory", func(t *testing.T) {
		out, err := runRsync(t, r.DataDir(), map[string]string{shard(file) + "/": "", shard(file) + "/x": "PWNED"}, "-d")
		t.Logf("rsync -d: err %v\n%s", err, strings.TrimSpace(out))
		if st := lstat(t, dataPath(root, file)); !apply.IsDirMode(st.Mode) {
			t.Logf("this rsync did not replace the entry (mode %o)", st.Mode)
		}
		if ents, _ := os.ReadDir(dataPath(root, file)); len(ents) != 0 {
			t.Errorf("rsync created %v in the directory it made", ents)
		}
		assertSameTree(t, beforeOut, snapshot(t, outside))
		if b, err := os.ReadFile(filepath.Join(root, "d", "sub", "f")); err != nil || string(b) != "honest" {
			t.Fatalf("d/sub/f: %q, %v", b, err)
		}
		mustApply(t, r, create(file, sub, "f", 0o644))
		assertIndexPlace(t, root, ops.TypeRegular, file)
		assertDataDirRegularOnly(t, r)
	})
}

// assertDataDirRegularOnly checks that the directory rsync receives into
// holds only shard directories and, in them, regular files.
func assertDataDirRegularOnly(t *testing.T, r *Replica) {
	t.Helper()
	err := filepath.WalkDir(r.DataDir(), func(p string, de os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(r.DataDir(), p)
		depth := strings.Count(rel, "/") + 1
		if rel == "." {
			depth = 0
		}
		st := lstat(t, p)
		switch {
		case depth <= 1 && apply.IsDirMode(st.Mode):
		case depth == 2 && st.Mode&unix.S_IFMT == unix.S_IFREG:
		default:
			t.Errorf("data dir holds %s, a %s at depth %d: only shard directories and regular files may be there", rel, ops.TypeOfMode(st.Mode), depth)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
