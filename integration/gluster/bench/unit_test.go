package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestSnapshotRestore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ssh")
	os.Mkdir(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "authorized_keys"), []byte("a\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "config"), []byte("c\n"), 0o644)
	s, err := snapshotDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "authorized_keys"), []byte("a\nb\n"), 0o644)
	os.Remove(filepath.Join(dir, "config"))
	os.WriteFile(filepath.Join(dir, "known_hosts"), []byte("k\n"), 0o600)
	os.MkdirAll(filepath.Join(dir, "sub", "x"), 0o700)
	if err := s.restore(); err != nil {
		t.Fatal(err)
	}
	after, err := snapshotDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(after.files) != 2 || string(after.files["authorized_keys"].data) != "a\n" || after.files["authorized_keys"].mode != 0o600 ||
		string(after.files["config"].data) != "c\n" || len(after.dirs) != 1 {
		t.Fatalf("not restored: files %v dirs %v", after.files, after.dirs)
	}

	gone := filepath.Join(t.TempDir(), "absent")
	s, err = snapshotDir(gone)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(gone, 0o700)
	os.WriteFile(filepath.Join(gone, "id_ed25519"), []byte("x"), 0o600)
	if err := s.restore(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(gone); !os.IsNotExist(err) {
		t.Fatalf("%s should be gone: %v", gone, err)
	}
}

func TestTreeChecks(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	want := writeSmall(t, src, 450, 100, 1)
	if d := namesDiff(dst, want); d == "" {
		t.Fatal("empty slave matches")
	}
	if out, err := exec.Command("cp", "-a", src+"/.", dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	os.Mkdir(filepath.Join(dst, ".georep"), 0o700)
	if d := namesDiff(dst, want); d != "" {
		t.Fatalf("copy differs: %s", d)
	}
	all := slices.Collect(func(yield func(string) bool) {
		for rel := range want {
			if !yield(rel) {
				return
			}
		}
	})
	if bad := checkFiles(dst, want, all); len(bad) != 0 {
		t.Fatalf("copy has bad files: %v", bad)
	}
	os.WriteFile(filepath.Join(dst, smallPath(3)), make([]byte, 100), 0o644)
	os.Truncate(filepath.Join(dst, smallPath(7)), 0)
	if bad := checkFiles(dst, want, all); len(bad) != 2 || bad[smallPath(3)] != "content differs" {
		t.Fatalf("bad files: %v", bad)
	}
	os.WriteFile(filepath.Join(dst, "d000", "extra"), nil, 0o644)
	if d := namesDiff(dst, want); d != "unexpected d000/extra" {
		t.Fatalf("namesDiff: %q", d)
	}

	check := mixedOps(t, src, want, 450, 20, 5)
	if check(dst) == "" {
		t.Fatal("mixed operations seen on a slave that did not get them")
	}
	if check(src) != "" {
		t.Fatal("mixed operations not seen on the master")
	}
	start := time.Now()
	if r := waitConverged(src, want, start, start.Add(time.Second), func() string { return check(src) }, nil); !r.ok() {
		t.Fatalf("master does not match its own tree: %s", r.err)
	}
	if r := waitConverged(dst, want, start, start.Add(time.Second), nil, nil); r.ok() || r.err == "" {
		t.Fatalf("stale slave converged: %+v", r)
	}
}

func TestGsyncdProcs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	vol := "georep-unit-0000abcd"
	cmd := exec.CommandContext(ctx, "python3", "-c", "import time; time.sleep(60)", "/x/gsyncd.py", "worker", vol)
	other := exec.CommandContext(ctx, "python3", "-c", "import time; time.sleep(60)", "/tmp/BenchmarkTreegsyncd1/003", vol)
	for _, c := range []*exec.Cmd{cmd, other} {
		if err := c.Start(); err != nil {
			t.Skip(err)
		}
		defer func() { c.Process.Kill(); c.Wait() }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := gsyncdProcs(vol)
		if slices.Equal(pids, []int{cmd.Process.Pid}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gsyncdProcs = %v, want [%d] (not %d)", pids, cmd.Process.Pid, other.Process.Pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
