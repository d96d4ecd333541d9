package integration

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/integration/harness"
)

// cliBound bounds every run of a binary that is expected to exit quickly.
const cliBound = 60 * time.Second

func runBin(t *testing.T, env []string, bin string, args ...string) (int, string) {
	t.Helper()
	return runBinIn(t, "", env, bin, args...)
}

func runBinIn(t *testing.T, dir string, env []string, bin string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), cliBound)
	defer cancel()
	code, out := harness.RunIn(t, ctx, dir, env, bin, args...)
	if ctx.Err() != nil {
		t.Fatalf("%s %s did not end within %s:\n%s", bin, strings.Join(args, " "), cliBound, lastLines(out, 20))
	}
	return code, out
}

func wantOutput(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("output does not say %q:\n%s", w, lastLines(out, 10))
		}
	}
}

// mountTemp mounts a fresh fstype filesystem on a temporary directory and
// unmounts it when the test ends. It skips the test when not root or when
// mounting is not permitted (a container).
func mountTemp(t *testing.T, fstype string, flags uintptr, data string) string {
	t.Helper()
	harness.RequireRoot(t, "mounting a "+fstype)
	mnt := filepath.Join(t.TempDir(), fstype)
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(fstype, mnt, fstype, flags, data); err != nil {
		t.Skipf("cannot mount %s on %s: %v", fstype, mnt, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	})
	return mnt
}

// TestRsyncMissing: without rsync nothing can move file data; both ends say
// so and how to fix it.
func TestRsyncMissing(t *testing.T) {
	harness.RequireRsync(t)
	t.Parallel()
	master := harness.Bin(t, "georep-master")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.Mkdir(src, 0o755)
	t.Run("master-PATH-without-rsync", func(t *testing.T) {
		empty := t.TempDir()
		code, out := runBin(t, harness.Env("PATH="+empty), master,
			harness.MasterArgs(harness.FreeAddr(t), src, filepath.Join(t.TempDir(), "work"), "--oneshot")...)
		if code == 0 {
			t.Fatalf("georep-master ran without rsync in PATH:\n%s", out)
		}
		wantOutput(t, out, `"rsync" not found`, "install the Debian package rsync")
	})
	t.Run("master-rsync-command-nonexistent", func(t *testing.T) {
		code, out := runBin(t, harness.Env(), master,
			harness.MasterArgs(harness.FreeAddr(t), src, filepath.Join(t.TempDir(), "work"), "--oneshot", "--rsync-command", "/nonexistent/rsync")...)
		if code == 0 {
			t.Fatalf("georep-master ran with --rsync-command /nonexistent/rsync:\n%s", out)
		}
		wantOutput(t, out, "/nonexistent/rsync", "install the Debian package rsync")
	})
	t.Run("slave-without-rsync", func(t *testing.T) {
		d := t.TempDir()
		replica := filepath.Join(d, "replica")
		os.Mkdir(replica, 0o755)
		os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o644)
		slave := harness.StartSlave(t, replica, "--rsync-command", "/nonexistent/rsync")
		code, out := runBin(t, harness.Env(), master,
			harness.MasterArgs(slave.Addr, src, filepath.Join(d, "work"), "--oneshot", "--oneshot-timeout", "3s")...)
		if code != 1 { // a refusal: --oneshot gives up at once
			t.Errorf("exit code %d, want 1", code)
		}
		wantOutput(t, lastLines(out, 1), "slave "+slave.Addr, "rsync is not installed there", "install the Debian package rsync")
		wantOutput(t, slave.Log(), "rsync not found")
	})
}

// TestBadStartupInput: each daemon refuses what it cannot work with, at
// start-up, with a message naming the key or path and the reason.
func TestBadStartupInput(t *testing.T) {
	harness.RequireRsync(t)
	t.Parallel()
	master := harness.Bin(t, "georep-master")
	slave := harness.Bin(t, "georep-slave")
	dir := t.TempDir()
	src, file := filepath.Join(dir, "src"), filepath.Join(dir, "a-file")
	os.Mkdir(src, 0o755)
	os.WriteFile(file, []byte("x"), 0o644)
	addr := harness.FreeAddr(t)
	masterRuns := []struct {
		name      string
		source    string
		workDir   string
		wantCode  int // 0: any non-zero
		wantWords []string
	}{
		{"source-is-a-file", file, filepath.Join(dir, "w1"), 2, []string{"source: " + file + " is not a directory"}},
		{"source-missing", filepath.Join(dir, "nope"), filepath.Join(dir, "w2"), 2, []string{"source:", "no such file or directory"}},
		{"work-dir-beneath-a-file", src, filepath.Join(file, "work"), 0, []string{"work-dir " + filepath.Join(file, "work"), "not a directory"}},
	}
	for _, tt := range masterRuns {
		t.Run("master/"+tt.name, func(t *testing.T) {
			code, out := runBin(t, nil, master, harness.MasterArgs(addr, tt.source, tt.workDir, "--oneshot")...)
			if code == 0 || tt.wantCode != 0 && code != tt.wantCode {
				t.Errorf("exit code %d, want %d (0: any non-zero)", code, tt.wantCode)
			}
			wantOutput(t, out, tt.wantWords...)
		})
	}
	t.Run("master/work-dir-read-only", func(t *testing.T) {
		ro := mountTemp(t, "tmpfs", unix.MS_RDONLY, "size=1m")
		for _, work := range []string{ro, filepath.Join(ro, "work")} {
			code, out := runBin(t, nil, master, harness.MasterArgs(addr, src, work, "--oneshot")...)
			if code == 0 {
				t.Fatalf("work dir %s on a read-only filesystem accepted:\n%s", work, out)
			}
			wantOutput(t, out, "work-dir "+work, "read-only file system")
		}
	})
	slaveRuns := []struct {
		name      string
		root      func(t *testing.T) string
		wantWords []string
	}{
		{"root-missing", func(*testing.T) string { return filepath.Join(dir, "no-replica") }, []string{"replica root " + filepath.Join(dir, "no-replica"), "no such file or directory"}},
		{"root-is-a-file", func(*testing.T) string { return file }, []string{"replica root " + file, "not a directory"}},
		{"root-without-xattrs", func(t *testing.T) string { return mountTemp(t, "ramfs", 0, "") }, []string{"does not support extended attributes"}},
	}
	for _, tt := range slaveRuns {
		t.Run("slave/"+tt.name, func(t *testing.T) {
			root := tt.root(t)
			code, out := runBin(t, nil, slave, "--listen", "127.0.0.1:0", "--root", root, "--insecure")
			if code == 0 {
				t.Fatalf("georep-slave exited 0 with a bad root:\n%s", out)
			}
			wantOutput(t, out, append(tt.wantWords, root)...)
		})
	}
}

// TestRelativePaths runs a master with a relative --source and --work-dir,
// as an operator typing in a shell would.
func TestRelativePaths(t *testing.T) {
	s := newSite(t)
	t.Parallel()
	os.MkdirAll(filepath.Join(s.src, "d"), 0o755)
	os.WriteFile(filepath.Join(s.src, "d", "f"), []byte("data"), 0o644)
	base := filepath.Dir(s.src)
	code, out := runBinIn(t, base, harness.Env(), harness.Bin(t, "georep-master"),
		harness.MasterArgs(s.slave.Addr, "src", "work", "--oneshot", "--oneshot-timeout", "60s")...)
	if code != 0 {
		t.Fatalf("georep-master --source src --work-dir work (relative, run in %s) exited %d:\n%s", base, code, lastLines(out, 5))
	}
	s.check(t, harness.CompareOptions{}, "relative --source and --work-dir")
}

// TestConfigSources: every key can come from a flag, a GEOREP_* variable or
// a --config file, in that precedence; bad values exit 2 naming the key.
func TestConfigSources(t *testing.T) {
	s := newInsecureSite(t) // the keys given include insecure
	t.Parallel()
	master := harness.Bin(t, "georep-master")
	os.MkdirAll(filepath.Join(s.src, "d"), 0o755)
	os.WriteFile(filepath.Join(s.src, "d", "f"), []byte("data"), 0o644)
	write := func(name, content string) string {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mustRun := func(t *testing.T, env []string, args ...string) {
		t.Helper()
		code, out := runBin(t, env, master, args...)
		if code != 0 {
			t.Fatalf("exit code %d, want 0:\n%s", code, lastLines(out, 10))
		}
		wantOutput(t, out, "converged")
	}

	t.Run("environment-only", func(t *testing.T) {
		mustRun(t, harness.Env("GEOREP_SLAVE="+s.slave.Addr, "GEOREP_SOURCE="+s.src, "GEOREP_WORK_DIR="+s.work,
			"GEOREP_INSECURE=true", "GEOREP_SYNC_JOBS=2"), "--oneshot")
		s.check(t, harness.CompareOptions{}, "configured by GEOREP_* only")
	})
	t.Run("yaml-file", func(t *testing.T) {
		os.WriteFile(filepath.Join(s.src, "d", "g"), []byte("more"), 0o644)
		cfg := write("master.yaml", "slave: "+s.slave.Addr+"\nsource: "+s.src+"\nwork-dir: "+s.work+
			"\ninsecure: true\nsync-jobs: 2\noneshot: true\noneshot-timeout: 60s\n")
		mustRun(t, harness.Env(), "--config", cfg)
		s.check(t, harness.CompareOptions{}, "configured by a YAML file")
	})
	t.Run("json-file", func(t *testing.T) {
		os.WriteFile(filepath.Join(s.src, "d", "h"), []byte("json"), 0o644)
		b, _ := json.Marshal(map[string]any{"slave": s.slave.Addr, "source": s.src, "work-dir": s.work, "insecure": true, "oneshot": true})
		mustRun(t, harness.Env(), "--config", write("master.json", string(b)))
		s.check(t, harness.CompareOptions{}, "configured by a JSON file")
	})
	t.Run("precedence", func(t *testing.T) {
		// A bad value lower in the precedence is overridden by a good one above.
		cfg := write("bad-jobs.yaml", "sync-jobs: 0\n")
		mustRun(t, harness.Env("GEOREP_SYNC_JOBS=2"), append(s.args("--oneshot"), "--config", cfg)...)
		mustRun(t, harness.Env("GEOREP_SYNC_JOBS=0"), s.args("--oneshot", "--sync-jobs", "2")...)
	})

	bad := []struct {
		name  string
		env   []string
		args  []string
		wants []string
	}{
		{"flag sync-jobs 0", nil, []string{"--sync-jobs", "0"}, []string{"sync-jobs: 0 is outside 1..64"}},
		{"env sync-jobs 0", []string{"GEOREP_SYNC_JOBS=0"}, nil, []string{"sync-jobs: 0 is outside 1..64"}},
		{"file sync-jobs 100", nil, []string{"--config", "@sync-jobs: 100\n"}, []string{"sync-jobs: 100 is outside 1..64"}},
		{"flag sync-jobs abc", nil, []string{"--sync-jobs", "abc"}, []string{`"abc"`, "sync-jobs"}},
		{"change-interval 10ms", nil, []string{"--change-interval", "10ms"}, []string{"change-interval: 10ms is shorter than 100ms"}},
		{"entry-batch 0", nil, []string{"--entry-batch", "0"}, []string{"entry-batch: 0 is outside 1..100000"}},
		{"oneshot-timeout 0", nil, []string{"--oneshot-timeout", "0s"}, []string{"oneshot-timeout: 0s must be positive"}},
		{"lease 1s", nil, []string{"--lease", "1s"}, []string{"lease: 1s is shorter than 5s"}},
		{"log-level", nil, []string{"--log-level", "loud"}, []string{`log-level: "loud" is not one of debug, info, warn, error`}},
		{"unknown key in file", nil, []string{"--config", "@sync_jobs: 2\n"}, []string{"unknown keys sync_jobs"}},
		// Values from the environment or a file are parsed as strictly as
		// flags: the message names what was given, not a zero value.
		{"env sync-jobs abc", []string{"GEOREP_SYNC_JOBS=abc"}, nil, []string{"sync-jobs", "abc"}},
		{"env change-interval abc", []string{"GEOREP_CHANGE_INTERVAL=abc"}, nil, []string{"change-interval", "abc"}},
	}
	for _, tt := range bad {
		t.Run("invalid/"+tt.name, func(t *testing.T) {
			args := s.args("--oneshot", "--oneshot-timeout", "5s")
			for i, a := range tt.args {
				if strings.HasPrefix(a, "@") {
					tt.args[i] = write("c.yaml", a[1:])
				}
			}
			code, out := runBin(t, harness.Env(tt.env...), master, append(args, tt.args...)...)
			if code != 2 {
				t.Errorf("exit code %d, want 2 (bad configuration)", code)
			}
			wantOutput(t, out, tt.wants...)
		})
	}
	t.Run("invalid/slave max-batch 0", func(t *testing.T) {
		code, out := runBin(t, harness.Env(), harness.Bin(t, "georep-slave"), "--listen", "127.0.0.1:0", "--root", s.replica, "--insecure", "--max-batch", "0")
		if code != 2 {
			t.Errorf("exit code %d, want 2", code)
		}
		wantOutput(t, out, "max-batch: 0 is outside 1..100000")
	})
}

// TestConfigBoolFromEnvironment: GEOREP_IGNORE_DELETES=yes must not be read
// as false. Either the value is refused (exit 2 naming the key) or it is
// honored; silently dropping it deletes data on the slave.
func TestConfigBoolFromEnvironment(t *testing.T) {
	s := newSite(t)
	t.Parallel()
	os.WriteFile(filepath.Join(s.src, "keep"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(s.src, "gone"), []byte("y"), 0o644)
	s.sync(t)
	os.Remove(filepath.Join(s.src, "gone"))
	code, out := runBin(t, harness.Env("GEOREP_IGNORE_DELETES=yes"), harness.Bin(t, "georep-master"), s.args("--oneshot", "--oneshot-timeout", "60s")...)
	switch {
	case code == 2:
		wantOutput(t, out, "ignore-deletes", "yes")
	case code == 0:
		if _, err := os.Lstat(filepath.Join(s.replica, "gone")); err != nil {
			t.Errorf("GEOREP_IGNORE_DELETES=yes was silently read as false: the slave lost a file the master deleted (%v)", err)
		}
	default:
		t.Errorf("exit code %d:\n%s", code, lastLines(out, 5))
	}
}

// TestGrpcurl checks what an operator sees with grpcurl: reflection, health
// and a read-only call.
func TestGrpcurl(t *testing.T) {
	grpcurl := harness.Grpcurl()
	if grpcurl == "" {
		t.Skip("grpcurl not found in PATH or .tools/bin (make tools installs it)")
	}
	s := newInsecureSite(t) // grpcurl -plaintext
	t.Parallel()
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, grpcurl, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("grpcurl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	out := run("-plaintext", s.slave.Addr, "list")
	wantOutput(t, out, "georep.slave.v1.SlaveService", "grpc.health.v1.Health", "grpc.reflection")
	out = run("-plaintext", s.slave.Addr, "grpc.health.v1.Health/Check")
	wantOutput(t, out, `"status": "SERVING"`)
	out = run("-plaintext", "-d", `{"gfids":["00000000-0000-0000-0000-000000000001"]}`, s.slave.Addr, "georep.slave.v1.SlaveService/Stat")
	wantOutput(t, out, `"gfid": "00000000-0000-0000-0000-000000000001"`, "FILE_TYPE_DIRECTORY")
}
