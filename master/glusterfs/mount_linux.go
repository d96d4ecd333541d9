package glusterfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// MountConfig says what to mount where.
type MountConfig struct {
	VolfileServer string // glusterd host the client fetches the volume file from
	Volume        string // volume name (the volfile id)
	Dir           string // an existing, empty, unmounted directory
	// AuxGFID adds --aux-gfid-mount: every inode of the volume is then also
	// reachable as <Dir>/.gfid/<gfid>, how gsyncd reads a master's data.
	// gsyncd also passes --acl and --client-pid=-1 (ExtraArgs).
	AuxGFID bool
	// LogFile is the client's log (--log-file). Empty: a temporary file,
	// removed by Close.
	LogFile       string
	GlusterfsPath string        // the glusterfs binary; "" finds it in PATH or the sbin directories
	ExtraArgs     []string      // more glusterfs options, e.g. "--acl", "--client-pid=-1"
	Timeout       time.Duration // for the mount to answer; 0 is 60 s
}

// Mount bounds.
const (
	defaultMountTimeout = 60 * time.Second
	unmountBusyTimeout  = 30 * time.Second // umount(2) retried while EBUSY
	clientExitTimeout   = 10 * time.Second // for the client to exit after the unmount, then after SIGTERM
)

// ErrMounted: the mount point of a Mount is already a mount point.
var ErrMounted = errors.New("already a mount point")

// Mounted is a GlusterFS FUSE mount whose client process this program
// started and owns. Its methods are safe for concurrent use.
type Mounted struct {
	Dir     string // the mount point (absolute, symlinks resolved)
	LogFile string // the client's log

	cmd     *exec.Cmd
	out     *tailBuffer // the client's stdout and stderr
	tempLog bool        // LogFile is ours to remove
	done    chan struct{}

	mu     sync.Mutex
	closed bool
}

// Mount starts the GlusterFS FUSE client in the foreground (glusterfs -N),
// so that it is this process's child, and waits until cfg.Dir is mounted
// (listed in /proc/self/mountinfo as fuse.glusterfs) and its root answers a
// stat, for at most cfg.Timeout or until ctx ends. On failure the client is
// stopped, nothing stays mounted, and the error carries the end of the
// client's log. The client gets SIGTERM if the thread that started it dies
// (PR_SET_PDEATHSIG), so a crashed daemon does not leave a mount behind;
// a live mount must be ended with Close.
func Mount(ctx context.Context, cfg MountConfig) (*Mounted, error) {
	if cfg.Volume == "" || cfg.VolfileServer == "" || cfg.Dir == "" {
		return nil, fmt.Errorf("mount: volume (%q), volfile server (%q) and directory (%q) are required", cfg.Volume, cfg.VolfileServer, cfg.Dir)
	}
	what := fmt.Sprintf("mount %s:%s on %s", cfg.VolfileServer, cfg.Volume, cfg.Dir)
	dir, err := filepath.Abs(cfg.Dir)
	if err == nil {
		dir, err = filepath.EvalSymlinks(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", what)
	}
	if mi, err := mountInfo(dir); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	} else if mi.mounted {
		return nil, fmt.Errorf("%s: %s is %w (%s)", what, dir, ErrMounted, mi.fstype)
	}
	bin, err := findBinary(cfg.GlusterfsPath, "glusterfs")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	m := &Mounted{Dir: dir, LogFile: cfg.LogFile, out: &tailBuffer{max: 16 << 10}, done: make(chan struct{})}
	if m.LogFile == "" {
		f, err := os.CreateTemp("", "georep-glusterfs-"+sanitize(cfg.Volume)+"-*.log")
		if err != nil {
			return nil, fmt.Errorf("%s: client log: %w", what, err)
		}
		f.Close()
		m.LogFile, m.tempLog = f.Name(), true
	}
	args := []string{"-N", "--volfile-server=" + cfg.VolfileServer, "--volfile-id=" + cfg.Volume, "--log-file=" + m.LogFile}
	if cfg.AuxGFID {
		args = append(args, "--aux-gfid-mount")
	}
	args = append(append(args, cfg.ExtraArgs...), dir)
	m.cmd = exec.Command(bin, args...)
	m.cmd.Stdout, m.cmd.Stderr = m.out, m.out
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	// Pdeathsig fires when the forking thread exits; Go keeps its threads
	// unless a goroutine exits while locked, so fork from a locked thread
	// that is unlocked (and kept) afterwards.
	runtime.LockOSThread()
	err = m.cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		m.removeTempLog()
		return nil, fmt.Errorf("%s: start %s: %w", what, bin, err)
	}
	go func() { m.cmd.Wait(); close(m.done) }()

	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = defaultMountTimeout
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := m.wait(wctx); err != nil {
		logs := m.logs()
		m.abort()
		return nil, fmt.Errorf("%s: %w\n%s", what, err, logs)
	}
	return m, nil
}

// wait polls until the mount point is mounted by our client and answers a
// stat.
func (m *Mounted) wait(ctx context.Context) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if m.exited() {
			return fmt.Errorf("glusterfs (pid %d) exited: %v", m.cmd.Process.Pid, m.cmd.ProcessState)
		}
		mi, err := mountInfo(m.Dir)
		if err != nil {
			return err
		}
		if mi.mounted {
			if mi.fstype != "fuse.glusterfs" {
				return fmt.Errorf("%s is mounted with %s, not fuse.glusterfs", m.Dir, mi.fstype)
			}
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not mounted: %w", context.Cause(ctx))
		case <-tick.C:
		}
	}
	// The first lookup waits until the client has connected to the bricks.
	// A stat stuck in FUSE returns when abort kills the client.
	errc := make(chan error, 1)
	go func() {
		var st unix.Stat_t
		errc <- unix.Stat(m.Dir, &st)
	}()
	select {
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("stat of the mount root: %w", err)
		}
		return nil
	case <-m.done:
		return fmt.Errorf("glusterfs (pid %d) exited: %v", m.cmd.Process.Pid, m.cmd.ProcessState)
	case <-ctx.Done():
		return fmt.Errorf("stat of the mount root did not return: %w", context.Cause(ctx))
	}
}

// abort ends a mount that failed to come up: kill the client (which ends
// any request stuck in FUSE), unmount what is left, reap.
func (m *Mounted) abort() {
	m.cmd.Process.Kill()
	<-m.done
	if mi, err := mountInfo(m.Dir); err == nil && mi.mounted && mi.fstype == "fuse.glusterfs" {
		unmount(m.Dir, unmountBusyTimeout)
	}
	m.removeTempLog()
}

// Pid is the client's process id.
func (m *Mounted) Pid() int { return m.cmd.Process.Pid }

// Exited is closed when the client process has exited: the mount is then
// dead (ENOTCONN) until Close unmounts it.
func (m *Mounted) Exited() <-chan struct{} { return m.done }

func (m *Mounted) exited() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// Close unmounts the mount point with umount(2) (never lazily: a lazily
// unmounted mount lives on for whoever still holds it, and gsyncd's rsync
// into /proc/<pid>/cwd of one wrote empty files), retrying for 30 s while
// it is busy, then waits for the client to exit (SIGTERM, then SIGKILL, if
// it does not) and reaps it. While the mount stays busy Close returns an
// error wrapping unix.EBUSY and leaves the client running; Close may be
// called again. After a successful Close, Close returns nil.
func (m *Mounted) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	if err := unmount(m.Dir, unmountBusyTimeout); err != nil {
		return fmt.Errorf("unmount %s: %w", m.Dir, err)
	}
	var errs []error
	if err := m.reap(); err != nil {
		errs = append(errs, err)
	}
	m.removeTempLog()
	m.closed = true
	return errors.Join(errs...)
}

// reap waits for the client to exit after its mount went away.
func (m *Mounted) reap() error {
	pid := m.cmd.Process.Pid
	select {
	case <-m.done:
		return nil
	case <-time.After(clientExitTimeout):
	}
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
		return fmt.Errorf("glusterfs client %d of %s did not exit after the unmount; ended with SIGTERM", pid, m.Dir)
	case <-time.After(clientExitTimeout):
	}
	m.cmd.Process.Kill()
	<-m.done
	return fmt.Errorf("glusterfs client %d of %s ignored the unmount and SIGTERM; killed", pid, m.Dir)
}

func (m *Mounted) removeTempLog() {
	if m.tempLog {
		os.Remove(m.LogFile)
	}
}

// logs returns what the client printed and the end of its log.
func (m *Mounted) logs() string {
	var b strings.Builder
	if out := strings.TrimSpace(m.out.String()); out != "" {
		fmt.Fprintf(&b, "glusterfs output:\n%s\n", out)
	}
	log, err := os.ReadFile(m.LogFile)
	if err != nil {
		fmt.Fprintf(&b, "glusterfs log: %v", err)
	} else {
		fmt.Fprintf(&b, "end of glusterfs log %s:\n%s", m.LogFile, tailLines(string(log), 30))
	}
	return b.String()
}

// unmount calls umount(2) on dir, retrying while EBUSY for up to busy. A
// directory that is no longer a mount point (EINVAL) is not an error.
func unmount(dir string, busy time.Duration) error {
	deadline := time.Now().Add(busy)
	for {
		err := unix.Unmount(dir, unix.UMOUNT_NOFOLLOW)
		switch {
		case err == nil, errors.Is(err, unix.EINVAL):
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EBUSY) && time.Now().Before(deadline):
			time.Sleep(100 * time.Millisecond)
			continue
		case errors.Is(err, unix.EBUSY):
			return fmt.Errorf("still busy after %v: %w", busy, err)
		}
		return err
	}
}

type mountEntry struct {
	mounted bool
	fstype  string
}

// mountInfo returns what /proc/self/mountinfo says is mounted on dir (the
// last, topmost, mount there).
func mountInfo(dir string) (mountEntry, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return mountEntry{}, err
	}
	return parseMountInfo(b, dir), nil
}

func parseMountInfo(b []byte, dir string) mountEntry {
	var e mountEntry
	for line := range strings.SplitSeq(string(b), "\n") {
		// id parent major:minor root mountpoint options [optional...] - fstype source superopts
		f := strings.Fields(line)
		if len(f) < 7 || unescapeMountinfo(f[4]) != dir {
			continue
		}
		e = mountEntry{mounted: true}
		for i := 6; i < len(f)-1; i++ {
			if f[i] == "-" {
				e.fstype = f[i+1]
				break
			}
		}
	}
	return e
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

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.Clone(t.buf))
}

// tailLines returns the last n lines of s.
func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// sanitize makes s usable in a file name.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == 0 {
			return '_'
		}
		return r
	}, s)
}
