package glusterfs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// client is the glusterfs FUSE client this package runs in the foreground
// (-N), so that it is our child: we know its pid and reap it.
type client struct {
	point   string
	logFile string
	cmd     *exec.Cmd
	out     *os.File
	done    chan struct{}
	log     *slog.Logger
}

// glusterfsBin finds the client binary.
func glusterfsBin(path string) (string, error) {
	if path != "" {
		return exec.LookPath(path)
	}
	if p, err := exec.LookPath("glusterfs"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/glusterfs", "/sbin/glusterfs"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("glusterfs client not found in PATH or /usr/sbin: install the Debian package glusterfs-client")
}

// mountVolume starts the aux-gfid client on point and waits until the
// volume answers there; then it remounts point nosymfollow, nosuid, nodev,
// noexec.
func mountVolume(ctx context.Context, cfg Config, point, logFile string, log *slog.Logger) (*client, error) {
	bin, err := glusterfsBin(cfg.GlusterfsPath)
	if err != nil {
		return nil, err
	}
	out, err := os.Create(logFile + ".out")
	if err != nil {
		return nil, err
	}
	c := &client{point: point, logFile: logFile, out: out, done: make(chan struct{}), log: log}
	// No kernel caching of entries or attributes: a gfid whose last name
	// went must stop resolving at once (with the default 1 s entry timeout
	// the kernel kept serving .gfid/<gfid> of a replaced file), and the
	// slave checks names and gfids right before acting on them.
	args := []string{"-N", "--aux-gfid-mount",
		"--entry-timeout=0", "--attribute-timeout=0", "--negative-timeout=0",
		"--xlator-option=*md-cache.md-cache-timeout=0",
		"--volfile-server=" + cfg.VolfileServer, "--volfile-id=" + cfg.Volume,
		"--log-file=" + logFile, point}
	c.cmd = exec.Command(bin, args...)
	c.cmd.Stdout, c.cmd.Stderr = out, out
	// Its own process group: a terminal's ^C goes to the slave, which then
	// unmounts in order.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { _ = c.cmd.Wait(); close(c.done) }()
	log.Info("mounting slave volume", "volume", cfg.Volume, "volfile_server", cfg.VolfileServer, "mount", point, "pid", c.cmd.Process.Pid)
	timeout := cfg.MountTimeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	if err := c.wait(ctx, timeout); err != nil {
		cerr := c.close()
		return nil, errors.Join(fmt.Errorf("mount %s from %s on %s: %w%s", cfg.Volume, cfg.VolfileServer, point, err, c.logs()), cerr)
	}
	flags := uintptr(unix.MS_REMOUNT | unix.MS_BIND | unix.MS_NOSYMFOLLOW | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RELATIME)
	if err := retry0(func() error { return unix.Mount("", point, "", flags, "") }); err != nil {
		cerr := c.close()
		return nil, errors.Join(fmt.Errorf("remount %s nosymfollow: %w", point, err), cerr)
	}
	return c, nil
}

func (c *client) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *client) logs() string {
	b, _ := os.ReadFile(c.out.Name())
	l, _ := os.ReadFile(c.logFile)
	s := strings.TrimSpace(string(b))
	lines := strings.Split(strings.TrimSpace(string(l)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	if t := strings.Join(lines, "\n"); t != "" {
		s += "\n" + t
	}
	if s == "" {
		return ""
	}
	return "\nglusterfs client log:\n" + s
}

// wait waits until point is a mount of the client and its root answers.
func (c *client) wait(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if c.exited() {
			return fmt.Errorf("glusterfs exited: %v", c.cmd.ProcessState)
		}
		ok, err := mounted(c.point)
		if err != nil {
			return err
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not mounted after %v", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	// The first lookup waits for the client to connect to the bricks.
	errc := make(chan error, 1)
	go func() {
		var st unix.Stat_t
		errc <- retry0(func() error { return unix.Stat(c.point, &st) })
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err() // the stat ends when close unmounts
	case <-time.After(time.Until(deadline)):
		return fmt.Errorf("the volume root did not answer within %v", timeout)
	}
}

// close unmounts (never lazily: a lazily unmounted FUSE mount still serves
// open descriptors and working directories, and rsync wrote empty files into
// one while reporting success) and reaps the client.
func (c *client) close() error {
	var errs []error
	ok, err := mounted(c.point)
	if err != nil {
		errs = append(errs, err)
	}
	if ok {
		var uerr error
		for i := range 50 {
			if uerr = retry0(func() error { return unix.Unmount(c.point, 0) }); uerr != unix.EBUSY {
				break
			}
			if i == 0 {
				c.log.Warn("slave volume busy, retrying the unmount", "mount", c.point)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if uerr != nil && uerr != unix.EINVAL {
			errs = append(errs, fmt.Errorf("unmount %s: %w", c.point, uerr))
		}
	}
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
		errs = append(errs, fmt.Errorf("glusterfs client %d of %s did not exit after the unmount", c.cmd.Process.Pid, c.point))
	}
	c.out.Close()
	return errors.Join(errs...)
}

// mounted reports whether something is mounted on point.
func mounted(point string) (bool, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	point = filepath.Clean(point)
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && unescapeMountinfo(f[4]) == point {
			return true, nil
		}
	}
	return false, nil
}

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
