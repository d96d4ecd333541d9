package mount

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/eintr"
	"github.com/georep/georep/rpc/tail"
)

// Config says what to mount where, and how.
type Config struct {
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
	// Remount, when not zero, are the mount flags (unix.MS_NOSYMFOLLOW,
	// unix.MS_NOSUID, ...) Dir is remounted with (MS_REMOUNT|MS_BIND) once
	// the volume answers, before Start returns.
	Remount uintptr
	// OwnProcessGroup starts the client in a process group of its own, so
	// that a terminal's ^C reaches only this program, which then unmounts
	// in order. Otherwise the client stays in this program's group and gets
	// SIGTERM when the thread that started it dies (PR_SET_PDEATHSIG), so
	// that a crashed daemon does not leave a mount behind.
	OwnProcessGroup bool
	// BusyTimeout is how long Close retries umount(2) while the mount is
	// busy; 0 is 30 s.
	BusyTimeout time.Duration
	// Log, when set, is told when the client starts and when an unmount
	// meets a busy mount.
	Log *slog.Logger
}

// Bounds.
const (
	defaultTimeout     = 60 * time.Second
	defaultBusyTimeout = 30 * time.Second // umount(2) retried while EBUSY
	clientExitTimeout  = 10 * time.Second // for the client to exit after the unmount, then after SIGTERM
)

// ErrMounted: the directory given to Start is already a mount point.
var ErrMounted = errors.New("already a mount point")

// Client is a GlusterFS FUSE mount whose client process this program
// started and owns. Its methods are safe for concurrent use.
type Client struct {
	Dir     string // the mount point (absolute, symlinks resolved)
	LogFile string // the client's log

	cmd     *exec.Cmd
	out     *tail.Buffer // the client's stdout and stderr
	tempLog bool         // LogFile is ours to remove
	busy    time.Duration
	log     *slog.Logger
	done    chan struct{}

	mu     sync.Mutex
	closed bool
}

// Start starts the GlusterFS FUSE client in the foreground (glusterfs -N),
// so that it is this process's child, and waits until cfg.Dir is mounted
// (listed in /proc/self/mountinfo as fuse.glusterfs) and its root answers a
// stat, for at most cfg.Timeout or until ctx ends; then it remounts
// cfg.Dir with cfg.Remount. On failure the client is stopped, nothing stays
// mounted, and the error carries the end of the client's log. A live mount
// must be ended with Close.
func Start(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Volume == "" || cfg.VolfileServer == "" || cfg.Dir == "" {
		return nil, fmt.Errorf("mount: volume (%q), volfile server (%q) and directory (%q) are required", cfg.Volume, cfg.VolfileServer, cfg.Dir)
	}
	what := fmt.Sprintf("mount %s:%s on %s", cfg.VolfileServer, cfg.Volume, cfg.Dir)
	dir, err := checkDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	bin, err := FindBinary(cfg.GlusterfsPath, "glusterfs")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	m := &Client{Dir: dir, LogFile: cfg.LogFile, out: &tail.Buffer{Max: 16 << 10}, busy: cfg.BusyTimeout, log: cfg.Log, done: make(chan struct{})}
	if m.busy <= 0 {
		m.busy = defaultBusyTimeout
	}
	if m.LogFile == "" {
		f, err := os.CreateTemp("", "georep-glusterfs-"+sanitize(cfg.Volume)+"-*.log")
		if err != nil {
			return nil, fmt.Errorf("%s: client log: %w", what, err)
		}
		f.Close()
		m.LogFile, m.tempLog = f.Name(), true
	}
	if err := m.start(bin, cfg); err != nil {
		m.removeTempLog()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if m.log != nil {
		m.log.Info("mounting glusterfs volume", "volume", cfg.Volume, "volfile_server", cfg.VolfileServer, "mount", dir, "pid", m.Pid())
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := m.wait(wctx); err != nil {
		logs := m.logs()
		m.abort()
		return nil, fmt.Errorf("%s: %w\n%s", what, err, logs)
	}
	if cfg.Remount != 0 {
		flags := unix.MS_REMOUNT | unix.MS_BIND | cfg.Remount
		if err := eintr.Retry(func() error { return unix.Mount("", dir, "", flags, "") }); err != nil {
			m.abort()
			return nil, fmt.Errorf("%s: remount %#x: %w", what, cfg.Remount, err)
		}
	}
	return m, nil
}

// checkDir resolves dir and checks that it is a directory and not a mount
// point.
func checkDir(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err == nil {
		dir, err = filepath.EvalSymlinks(dir)
	}
	if err != nil {
		return "", err
	}
	if fi, err := os.Stat(dir); err != nil {
		return "", err
	} else if !fi.IsDir() {
		return "", errors.New("not a directory")
	}
	if mi, err := Lookup(dir); err != nil {
		return "", err
	} else if mi.Mounted {
		return "", fmt.Errorf("%s is %w (%s)", dir, ErrMounted, mi.FSType)
	}
	return dir, nil
}

// start runs the client.
func (m *Client) start(bin string, cfg Config) error {
	args := []string{"-N", "--volfile-server=" + cfg.VolfileServer, "--volfile-id=" + cfg.Volume, "--log-file=" + m.LogFile}
	if cfg.AuxGFID {
		args = append(args, "--aux-gfid-mount")
	}
	args = append(append(args, cfg.ExtraArgs...), m.Dir)
	m.cmd = exec.Command(bin, args...)
	m.cmd.Stdout, m.cmd.Stderr = m.out, m.out
	if cfg.OwnProcessGroup {
		m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	} else {
		m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	}
	// Pdeathsig fires when the forking thread exits; Go keeps its threads
	// unless a goroutine exits while locked, so fork from a locked thread
	// that is unlocked (and kept) afterwards.
	runtime.LockOSThread()
	err := m.cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { m.cmd.Wait(); close(m.done) }()
	return nil
}

// wait polls until the mount point is mounted by our client and answers a
// stat.
func (m *Client) wait(ctx context.Context) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if m.exited() {
			return fmt.Errorf("glusterfs (pid %d) exited: %v", m.cmd.Process.Pid, m.cmd.ProcessState)
		}
		mi, err := Lookup(m.Dir)
		if err != nil {
			return err
		}
		if mi.Mounted {
			if mi.FSType != "fuse.glusterfs" {
				return fmt.Errorf("%s is mounted with %s, not fuse.glusterfs", m.Dir, mi.FSType)
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
		errc <- eintr.Retry(func() error { return unix.Stat(m.Dir, &st) })
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
func (m *Client) abort() {
	m.cmd.Process.Kill()
	<-m.done
	if mi, err := Lookup(m.Dir); err == nil && mi.Mounted && mi.FSType == "fuse.glusterfs" {
		m.unmount()
	}
	m.removeTempLog()
}

// Pid is the client's process id.
func (m *Client) Pid() int { return m.cmd.Process.Pid }

// Exited is closed when the client process has exited: the mount is then
// dead (ENOTCONN) until Close unmounts it.
func (m *Client) Exited() <-chan struct{} { return m.done }

func (m *Client) exited() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// Close unmounts the mount point with umount(2) (never lazily: a lazily
// unmounted mount lives on for whoever still holds it, and gsyncd's rsync
// into /proc/<pid>/cwd of one wrote empty files), retrying for
// Config.BusyTimeout while it is busy, then waits for the client to exit
// (SIGTERM, then SIGKILL, if it does not) and reaps it. While the mount
// stays busy Close returns an error wrapping unix.EBUSY and leaves the
// client running; Close may be called again. After a successful Close,
// Close returns nil.
func (m *Client) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	if err := m.unmount(); err != nil {
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
func (m *Client) reap() error {
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

func (m *Client) removeTempLog() {
	if m.tempLog {
		os.Remove(m.LogFile)
	}
}

// logs returns what the client printed and the end of its log.
func (m *Client) logs() string {
	var b strings.Builder
	if out := strings.TrimSpace(m.out.String()); out != "" {
		fmt.Fprintf(&b, "glusterfs output:\n%s\n", out)
	}
	log, err := os.ReadFile(m.LogFile)
	if err != nil {
		fmt.Fprintf(&b, "glusterfs log: %v", err)
	} else {
		fmt.Fprintf(&b, "end of glusterfs log %s:\n%s", m.LogFile, tail.Lines(string(log), 30))
	}
	return b.String()
}

// unmount calls umount(2) on the mount point, retrying while EBUSY for up
// to the busy timeout. A directory that is no longer a mount point
// (EINVAL) is not an error.
func (m *Client) unmount() error {
	deadline := time.Now().Add(m.busy)
	for warned := false; ; {
		err := eintr.Retry(func() error { return unix.Unmount(m.Dir, unix.UMOUNT_NOFOLLOW) })
		switch {
		case err == nil, errors.Is(err, unix.EINVAL):
			return nil
		case errors.Is(err, unix.EBUSY) && time.Now().Before(deadline):
			if !warned && m.log != nil {
				m.log.Warn("glusterfs mount busy, retrying the unmount", "mount", m.Dir)
			}
			warned = true
			time.Sleep(100 * time.Millisecond)
			continue
		case errors.Is(err, unix.EBUSY):
			return fmt.Errorf("still busy after %v: %w", m.busy, err)
		}
		return err
	}
}

// Info is what /proc/self/mountinfo says is mounted on a directory.
type Info struct {
	Mounted bool
	FSType  string // of the topmost mount there
}

// Lookup returns what is mounted on dir (absolute and clean, as the kernel
// shows it: symlinks resolved), the last (topmost) mount there.
func Lookup(dir string) (Info, error) {
	infos, err := mountinfo.GetMounts(onDir(dir))
	if err != nil {
		return Info{}, fmt.Errorf("mountinfo: %w", err)
	}
	return topmost(infos), nil
}

func onDir(dir string) mountinfo.FilterFunc {
	dir = filepath.Clean(dir)
	return func(i *mountinfo.Info) (skip, stop bool) { return i.Mountpoint != dir, false }
}

func topmost(infos []*mountinfo.Info) Info {
	if len(infos) == 0 {
		return Info{}
	}
	return Info{Mounted: true, FSType: infos[len(infos)-1].FSType}
}

// FindBinary returns path if set, else looks the GlusterFS binary name up
// in PATH and in the sbin directories (GlusterFS installs there, often
// outside a daemon's PATH).
func FindBinary(path, name string) (string, error) {
	if path != "" {
		return path, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH or the sbin directories (Debian: install glusterfs-client and glusterfs-server)", name)
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
