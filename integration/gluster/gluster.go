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
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bounds on what the harness waits for.
const (
	cmdTimeout   = 2 * time.Minute  // one gluster CLI call (volume create/start can take seconds)
	readyTimeout = time.Minute      // glusterd answering the CLI after it started
	stopTimeout  = 30 * time.Second // a process ending after SIGTERM or an unmount
)

const installHint = "make deps installs the Debian packages glusterfs-server and glusterfs-client"

// Require skips the test unless it runs as root, /dev/fuse exists and the
// glusterd, gluster and glusterfs binaries are installed.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("GlusterFS tests need root (glusterd, FUSE mounts, trusted.* xattrs on bricks)")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("GlusterFS tests need FUSE: %v", err)
	}
	for _, name := range []string{"glusterd", "gluster", "glusterfs"} {
		if _, err := lookBin(name); err != nil {
			t.Skipf("GlusterFS is not installed: %v (%s)", err, installHint)
		}
	}
}

// lookBin finds a GlusterFS binary in PATH or in the sbin directories, which
// are not always in a test's PATH.
func lookBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH, /usr/sbin or /sbin", name)
}

// bin is lookBin for a binary Require has found.
func bin(name string) string {
	if p, err := lookBin(name); err == nil {
		return p
	}
	return name
}

// Cluster is the single-node GlusterFS trusted pool of this host, as a test
// sees it.
type Cluster struct {
	// Host is the brick and volfile-server host name (the constant Host).
	Host string
}

// shared is the glusterd this test process uses: tests that call Start
// share one, counted; the last to end stops it if this process started it.
var shared struct {
	mu   sync.Mutex
	refs int
	own  *glusterd // nil when glusterd was already running
}

// Start makes glusterd available to the test and returns the cluster: it
// maps [Host] to 127.0.0.1 in /etc/hosts, and unless glusterd already runs,
// binds it to 127.0.0.1 in glusterd.vol and starts it. It waits until the
// gluster CLI answers. Start skips the test as Require does.
func Start(t testing.TB) *Cluster {
	t.Helper()
	Require(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.refs == 0 {
		if err := setUp(); err != nil {
			t.Fatalf("gluster: %v", err)
		}
	}
	shared.refs++
	t.Cleanup(func() { release(t) })
	return &Cluster{Host: Host}
}

func setUp() error {
	if err := ensureHostsEntry(hostsFile, Host, loopback); err != nil {
		return err
	}
	if !glusterdRunning() {
		if err := ensureBindAddress(glusterdVol, loopback); err != nil {
			return err
		}
		g, err := startGlusterd()
		if err != nil {
			return err
		}
		shared.own = g
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := waitReady(ctx, shared.own); err != nil {
		if shared.own != nil {
			shared.own.stop()
			shared.own = nil
		}
		return err
	}
	return nil
}

func release(t testing.TB) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	shared.refs--
	if shared.refs > 0 || shared.own == nil {
		return
	}
	if err := shared.own.stop(); err != nil {
		t.Errorf("gluster: %v", err)
	}
	shared.own = nil
}

// glusterdRunning reports whether a glusterd process (not a zombie) exists
// in this network namespace (those of integration/cluster's nodes, in
// their own, are not this host's).
func glusterdRunning() bool {
	self, _ := os.Readlink("/proc/self/ns/net")
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != "glusterd" {
			continue
		}
		if ns, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns/net")); err == nil && ns != self {
			continue
		}
		// A zombie has an empty command line.
		if cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && len(cmdline) > 0 {
			return true
		}
	}
	return false
}

// glusterd is a glusterd this process started, in the foreground (-N) so
// that it is our child and we know its pid.
type glusterd struct {
	cmd  *exec.Cmd
	out  *os.File // its stdout and stderr; its log is /var/log/glusterfs/glusterd.log
	done chan struct{}
}

func startGlusterd() (*glusterd, error) {
	out, err := os.CreateTemp("", "georep-glusterd-*.out")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin("glusterd"), "-N", "--log-level=INFO")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		os.Remove(out.Name())
		return nil, fmt.Errorf("start glusterd: %w", err)
	}
	g := &glusterd{cmd: cmd, out: out, done: make(chan struct{})}
	go func() { cmd.Wait(); close(g.done) }()
	return g, nil
}

func (g *glusterd) exited() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

// output returns what glusterd printed and the end of its log.
func (g *glusterd) output() string {
	b, _ := os.ReadFile(g.out.Name())
	log, _ := os.ReadFile("/var/log/glusterfs/glusterd.log")
	return fmt.Sprintf("glusterd output:\n%s\nend of /var/log/glusterfs/glusterd.log:\n%s", b, tail(string(log), 30))
}

// stop ends glusterd with SIGTERM (SIGKILL after stopTimeout) and waits.
func (g *glusterd) stop() error {
	defer func() {
		g.out.Close()
		os.Remove(g.out.Name())
	}()
	if g.exited() {
		return fmt.Errorf("glusterd (pid %d) had exited: %v\n%s", g.cmd.Process.Pid, g.cmd.ProcessState, g.output())
	}
	// glusterd runs hook scripts (e.g. after a volume delete) in the
	// background, and they call back into it: let them finish first.
	for deadline := time.Now().Add(stopTimeout); len(liveChildren(g.cmd.Process.Pid)) > 0 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
		return nil
	case <-time.After(stopTimeout):
	}
	g.cmd.Process.Kill()
	<-g.done
	return fmt.Errorf("glusterd (pid %d) ignored SIGTERM for %v and was killed\n%s", g.cmd.Process.Pid, stopTimeout, g.output())
}

// liveChildren returns the pids of the processes (not zombies) whose parent
// is pid.
func liveChildren(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range ents {
		kid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) >= 2 && f[0] != "Z" && f[1] == strconv.Itoa(pid) {
			kids = append(kids, kid)
		}
	}
	return kids
}

// waitReady polls the gluster CLI until glusterd answers, own (when not nil)
// exits, or ctx ends.
func waitReady(ctx context.Context, own *glusterd) error {
	var last error
	for {
		if own != nil && own.exited() {
			return fmt.Errorf("glusterd exited at start: %v\n%s", own.cmd.ProcessState, own.output())
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, last = run(cctx, bin("gluster"), "--mode=script", "volume", "list")
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			msg := fmt.Sprintf("glusterd did not answer within %v: %v", readyTimeout, last)
			if own != nil {
				msg += "\n" + own.output()
			}
			return errors.New(msg)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// cliMu serializes this process's gluster CLI calls: glusterd runs one
// transaction at a time and fails the others ("Another transaction is in
// progress").
var cliMu sync.Mutex

// cli runs `gluster --mode=script args...` under cmdTimeout and returns its
// output. It retries while glusterd reports another transaction in progress
// (one started by another process).
func cli(args ...string) (string, error) {
	cliMu.Lock()
	defer cliMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	args = append([]string{"--mode=script"}, args...)
	for {
		out, err := run(ctx, bin("gluster"), args...)
		if err == nil || !(strings.Contains(out, "nother transaction") || strings.Contains(out, "Locking failed")) {
			return out, err
		}
		select {
		case <-ctx.Done():
			return out, err
		case <-time.After(time.Second):
		}
	}
}

// run runs a command bounded by ctx and returns its combined output; the
// error includes the command line and the output.
func run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return string(out), fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}
