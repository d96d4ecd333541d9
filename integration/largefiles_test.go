package integration

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/integration/harness"
)

// writeRandom writes n random bytes to path.
func writeRandom(t *testing.T, rng *rand.Rand, path string, n int) {
	t.Helper()
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func accessACL(t *testing.T, path string) []byte {
	t.Helper()
	buf := make([]byte, 1024)
	n, err := unix.Getxattr(path, "system.posix_acl_access", buf)
	if errors.Is(err, unix.ENODATA) {
		return nil
	}
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return buf[:n]
}

var streamedRE = regexp.MustCompile(`streamed_files=(\d+)`)

// streamed sums the files the master's passes wrote through WriteFile.
func streamed(out string) int {
	n := 0
	for _, m := range streamedRE.FindAllStringSubmatch(out, -1) {
		k, _ := strconv.Atoi(m[1])
		n += k
	}
	return n
}

// TestLargeFilesStreamed: new files above small-file-size go through the
// slave's WriteFile stream, with their mode (setuid included), owner,
// mtime, user xattrs, access ACL and hardlinks; a file with holes goes to
// rsync --sparse and keeps them; a file changed afterwards, which the slave
// holds data of, goes through rsync (delta) and converges.
func TestLargeFilesStreamed(t *testing.T) {
	setfacl, err := exec.LookPath("setfacl")
	if err != nil {
		t.Skip("setfacl not installed (Debian package acl)")
	}
	s := newSite(t)
	rng := rand.New(rand.NewPCG(16, 5))
	if err := os.MkdirAll(filepath.Join(s.src, "d", "e"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]int{"big": 5<<20 + 3, "d/acl": 3 << 20, "d/e/xattr": 1<<20 + 1, "justover": 256<<10 + 1, "d/setuid": 2 << 20, "small": 1000}
	for name, n := range files {
		writeRandom(t, rng, filepath.Join(s.src, name), n)
	}
	if err := os.Link(filepath.Join(s.src, "big"), filepath.Join(s.src, "d", "biglink")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(filepath.Join(s.src, "d/e/xattr"), "user.k", []byte("v"), 0); err != nil {
		t.Skipf("user xattrs: %v", err)
	}
	if out, err := exec.Command(setfacl, "-m", "u:4321:rw,g:99:r", filepath.Join(s.src, "d/acl")).CombinedOutput(); err != nil {
		t.Skipf("setfacl: %v: %s", err, out)
	}
	if err := os.Chmod(filepath.Join(s.src, "d/setuid"), 0o4755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(filepath.Join(s.src, "justover"), 1234, 5678); err != nil {
			t.Fatal(err)
		}
	}
	// A sparse file: 4 MiB of hole, 64 KiB of data, 4 MiB of hole.
	sp, err := os.Create(filepath.Join(s.src, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for i := range chunk {
		chunk[i] = byte(rng.Uint32())
	}
	if _, err := sp.WriteAt(chunk, 4<<20); err != nil {
		t.Fatal(err)
	}
	if err := sp.Truncate(8<<20 + 64<<10); err != nil {
		t.Fatal(err)
	}
	sp.Close()

	check := func(what string) {
		t.Helper()
		s.check(t, harness.CompareOptions{Xattrs: true}, what)
		for _, name := range []string{"d/acl", "big", "d/setuid"} {
			if a, b := accessACL(t, filepath.Join(s.src, name)), accessACL(t, filepath.Join(s.replica, name)); !bytes.Equal(a, b) {
				t.Errorf("%s: %s: ACL %x on the replica, %x on the source", what, name, b, a)
			}
		}
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(s.replica, "sparse"), &st); err != nil {
			t.Fatal(err)
		}
		if st.Blocks*512 >= st.Size {
			t.Errorf("%s: the sparse file lost its holes on the replica: %d blocks of 512 for %d bytes", what, st.Blocks, st.Size)
		}
	}
	ctx := t.Context()
	out := harness.MustOneshot(t, ctx, s.args("--sync-xattrs", "--sync-acls", "--log-level", "debug")...)
	check("after the initial sync")
	// big (with its link), d/acl, d/e/xattr, justover, d/setuid: not small,
	// not sparse.
	if n := streamed(out); n != 5 {
		t.Errorf("%d files streamed, want 5 (big, d/acl, d/e/xattr, justover, d/setuid):\n%s", n, out)
	}

	// Rewritten in place (same size) and grown: the slave holds their data,
	// so rsync's delta transfer ships them.
	for _, name := range []string{"big", "d/acl"} {
		f, err := os.OpenFile(filepath.Join(s.src, name), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte("changed in the middle"), 1<<20); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte("grown"), int64(files[name])); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	// A new large file replaces an old one under its name.
	writeRandom(t, rng, filepath.Join(s.src, "d/setuid.new"), 3<<20)
	if err := os.Rename(filepath.Join(s.src, "d/setuid.new"), filepath.Join(s.src, "d/setuid")); err != nil {
		t.Fatal(err)
	}
	out = harness.MustOneshot(t, ctx, s.args("--sync-xattrs", "--sync-acls", "--log-level", "debug")...)
	check("after rewrites")
	if n := streamed(out); n != 1 {
		t.Errorf("%d files streamed in the second pass, want 1 (the new d/setuid):\n%s", n, out)
	}
}
