package gluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Mount mounts the volume with the GlusterFS FUSE client on a temporary
// directory and returns it; extra are more glusterfs arguments. The client
// is unmounted, and waited for, when the test ends.
func (v *Volume) Mount(t testing.TB, extra ...string) string {
	t.Helper()
	return v.mount(t, extra)
}

// AuxMount is Mount with --aux-gfid-mount: every inode of the volume is also
// reachable as <mount>/.gfid/<gfid>, the way gsyncd reaches a master's files
// (gsyncd adds --acl and --client-pid=-1, which extra can pass).
func (v *Volume) AuxMount(t testing.TB, extra ...string) string {
	t.Helper()
	return v.mount(t, append([]string{"--aux-gfid-mount"}, extra...))
}

// mount is a glusterfs FUSE client this harness started, in the foreground
// (-N) so that it is our child and we know its pid.
type mount struct {
	point   string
	logFile string   // the client's log
	out     *os.File // its stdout and stderr
	cmd     *exec.Cmd
	done    chan struct{}
}

func (v *Volume) mount(t testing.TB, extra []string) string {
	t.Helper()
	point := t.TempDir()
	logDir := t.TempDir()
	m := &mount{point: point, logFile: filepath.Join(logDir, "glusterfs.log"), done: make(chan struct{})}
	args := []string{"-N", "--volfile-server=" + v.host, "--volfile-id=" + v.Name, "--log-file=" + m.logFile}
	args = append(append(args, extra...), point)
	out, err := os.Create(filepath.Join(logDir, "glusterfs.out"))
	if err != nil {
		t.Fatal(err)
	}
	m.out = out
	m.cmd = exec.Command(bin("glusterfs"), args...)
	m.cmd.Stdout, m.cmd.Stderr = out, out
	if err := m.cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("gluster: start glusterfs: %v", err)
	}
	go func() { m.cmd.Wait(); close(m.done) }()
	// Registered after the temporary directories, so it runs before they are
	// removed: never remove through a live mount.
	t.Cleanup(func() {
		if err := m.unmount(t); err != nil {
			t.Errorf("gluster: %v", err)
		}
		if t.Failed() {
			t.Logf("glusterfs client of %s on %s:\n%s", v.Name, point, m.logs())
		}
		out.Close()
	})
	if err := m.wait(); err != nil {
		t.Fatalf("gluster: mount %s on %s: %v\n%s", v.Name, point, err, m.logs())
	}
	return point
}

func (m *mount) exited() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

func (m *mount) logs() string {
	out, _ := os.ReadFile(m.out.Name())
	log, _ := os.ReadFile(m.logFile)
	return fmt.Sprintf("%s%s", out, tail(string(log), 40))
}

// wait waits until the mount point is mounted and its root answers a stat.
func (m *mount) wait() error {
	deadline := time.Now().Add(readyTimeout)
	for {
		if m.exited() {
			return fmt.Errorf("glusterfs exited: %v", m.cmd.ProcessState)
		}
		ok, err := mounted(m.point)
		if err != nil {
			return err
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not mounted after %v", readyTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The first lookup waits until the client has connected to the bricks;
	// bound it (a stat stuck in FUSE ends when the cleanup unmounts).
	errc := make(chan error, 1)
	go func() {
		_, err := os.Stat(m.point)
		errc <- err
	}()
	select {
	case err := <-errc:
		return err
	case <-time.After(time.Until(deadline)):
		return fmt.Errorf("stat of the mount root did not return within %v", readyTimeout)
	}
}

// unmount unmounts the mount point (lazily only if a plain umount fails)
// and waits for the client to exit, killing it if it does not.
func (m *mount) unmount(t testing.TB) error {
	var errs []error
	if ok, err := mounted(m.point); err != nil {
		errs = append(errs, err)
	} else if ok {
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		_, err := run(ctx, bin("umount"), m.point)
		cancel()
		if err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
			_, lerr := run(ctx, bin("umount"), "-l", m.point)
			cancel()
			if lerr != nil {
				errs = append(errs, err, lerr)
			} else {
				t.Logf("gluster: %s was busy and is unmounted lazily: %v", m.point, err)
			}
		}
	}
	pid := m.cmd.Process.Pid
	select {
	case <-m.done:
		return errors.Join(errs...)
	case <-time.After(stopTimeout):
	}
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
		errs = append(errs, fmt.Errorf("glusterfs client %d of %s did not exit after the unmount; ended with SIGTERM", pid, m.point))
	case <-time.After(stopTimeout):
		m.cmd.Process.Kill()
		<-m.done
		errs = append(errs, fmt.Errorf("glusterfs client %d of %s did not exit after the unmount nor SIGTERM; killed", pid, m.point))
	}
	return errors.Join(errs...)
}

// mounted reports whether something is mounted on point, from
// /proc/self/mountinfo.
func mounted(point string) (bool, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && unescapeMountinfo(f[4]) == point {
			return true, nil
		}
	}
	return false, nil
}

// unescapeMountinfo undoes the octal escapes (\040 for a space, ...) of a
// mountinfo path.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
