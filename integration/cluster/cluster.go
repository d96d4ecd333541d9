// Package cluster brings up, for a test, a GlusterFS pool of five nodes on
// this machine — masters m1 m2 m3 holding the distributed-replicate volume
// mvol (2 × 3), slaves s1 s2 holding the distribute volume svol, two trusted
// pools as two sites are — and lets the test run commands inside the nodes,
// cut and restore a node's link and kill a brick. It drives cluster.sh (next
// to this file), which a person can run by hand as well; README.md describes
// the layout.
//
// Every node has its own network, mount and UTS namespaces: its own address
// on a bridge in a "switch" namespace, its own /var/lib/glusterd (so its own
// glusterd UUID), /run, /var/log/glusterfs, /etc/glusterfs and /etc/hosts,
// and its own brick directories at the same path on every node. The rest of
// the machine's file system (the repo, /tmp) is visible in every node; a FUSE
// mount made in a node exists only there. Nothing is added to the host's
// network namespace, /var/lib/glusterd or /etc.
//
// GEOREP_CLUSTER_KEEP=1 leaves the pool up when the test ends (and Up reuses
// a pool that is up, healing its links and restarting stopped bricks), for
// quick reruns; cluster.sh down removes it.
package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The volumes up creates.
const (
	MasterVolume = "mvol"
	SlaveVolume  = "svol"
)

// PingTimeout is network.ping-timeout of both volumes: a client gives up on
// a brick it cannot reach after this long.
const PingTimeout = 5 * time.Second

var (
	masters = []string{"m1", "m2", "m3"}
	slaves  = []string{"s1", "s2"}
	addrs   = map[string]string{"m1": "10.77.0.11", "m2": "10.77.0.12", "m3": "10.77.0.13", "s1": "10.77.0.21", "s2": "10.77.0.22"}
)

// upTimeout bounds cluster.sh up (about 10 s on two cores) and down.
const upTimeout = 5 * time.Minute

// Brick is one brick of a volume.
type Brick struct {
	Node     string // m1 …
	Path     string // its directory inside the node (the same on every node)
	HostPath string // the same directory as the host (and the test) sees it
}

// Cluster is a pool that is up.
type Cluster struct {
	Dir     string // cluster.sh's state (GEOREP_CLUSTER_DIR)
	DataDir string // per-node directories and bricks (GEOREP_CLUSTER_DATA)

	script string
	owned  bool // this Up created the pool (it was not reused)
}

// Require skips the test unless it runs as root on Linux with /dev/fuse, the
// GlusterFS binaries, ip, unshare and nsenter.
func Require(t testing.TB) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the GlusterFS cluster needs Linux namespaces")
	}
	if os.Geteuid() != 0 {
		t.Skip("the GlusterFS cluster needs root (namespaces, glusterd, FUSE mounts)")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("the GlusterFS cluster needs FUSE: %v", err)
	}
	for _, name := range []string{"ip", "unshare", "nsenter", "flock", "glusterd", "gluster", "glusterfs", "mount.glusterfs"} {
		if _, err := lookBin(name); err != nil {
			t.Skipf("%v (make deps installs glusterfs-server, glusterfs-client and iproute2)", err)
		}
	}
}

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

// Up brings the pool up with cluster.sh up (or reuses one that is up) and
// registers its removal with t.Cleanup, unless GEOREP_CLUSTER_KEEP=1 or the
// pool was already up before. It skips the test as Require does.
func Up(t testing.TB) *Cluster {
	t.Helper()
	Require(t)
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cluster: cannot locate cluster.sh")
	}
	c := &Cluster{
		Dir:     envOr("GEOREP_CLUSTER_DIR", "/run/georep-cluster"),
		DataDir: envOr("GEOREP_CLUSTER_DATA", "/var/tmp/georep-cluster"),
		script:  filepath.Join(filepath.Dir(file), "cluster.sh"),
	}
	ctx, cancel := context.WithTimeout(context.Background(), upTimeout)
	defer cancel()
	start := time.Now()
	out, err := c.run(ctx, "up")
	if err != nil {
		t.Fatalf("cluster: %v", err)
	}
	c.owned = !strings.Contains(out, "reusing it")
	t.Logf("cluster up in %v:\n%s", time.Since(start).Round(100*time.Millisecond), strings.TrimSpace(out))
	if c.owned && os.Getenv("GEOREP_CLUSTER_KEEP") != "1" {
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("cluster: the end of the glusterd logs:\n%s", c.logTails(20))
			}
			if err := c.Down(); err != nil {
				t.Errorf("cluster: %v", err)
			}
		})
	}
	return c
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// Owned reports whether this Up created the pool (false: it reused one that
// was up), that is whether Down removes what the test's Cleanup expects.
func (c *Cluster) Owned() bool { return c.owned }

// Down removes the pool: it unmounts the FUSE mounts of every node, ends
// every process in the nodes' namespaces (SIGTERM, then SIGKILL), deletes the
// namespaces and removes Dir and DataDir. Calling it twice is harmless.
func (c *Cluster) Down() error {
	ctx, cancel := context.WithTimeout(context.Background(), upTimeout)
	defer cancel()
	_, err := c.run(ctx, "down")
	return err
}

// Masters returns the master nodes (m1 m2 m3), Slaves the slave nodes (s1
// s2), Nodes both.
func (c *Cluster) Masters() []string { return slices.Clone(masters) }
func (c *Cluster) Slaves() []string  { return slices.Clone(slaves) }
func (c *Cluster) Nodes() []string   { return slices.Concat(masters, slaves) }

// Addr returns the IPv4 address of node ("" for an unknown node); the node
// names resolve to these on every node.
func (c *Cluster) Addr(node string) string { return addrs[node] }

// Bricks returns the bricks of volume (MasterVolume or SlaveVolume) on node,
// in the volume's order.
func (c *Cluster) Bricks(volume, node string) []Brick {
	var names []string
	switch {
	case volume == MasterVolume && slices.Contains(masters, node):
		names = []string{"mvol1", "mvol2"}
	case volume == SlaveVolume && slices.Contains(slaves, node):
		names = []string{"svol"}
	}
	var bs []Brick
	for _, n := range names {
		bs = append(bs, Brick{Node: node, Path: filepath.Join(c.DataDir, "bricks", n),
			HostPath: filepath.Join(c.DataDir, "nodes", node, "bricks", n)})
	}
	return bs
}

// ReplicaSets returns mvol's two replica sets, each a brick on m1, m2 and m3.
func (c *Cluster) ReplicaSets() [][]Brick {
	sets := make([][]Brick, 2)
	for _, m := range masters {
		for i, b := range c.Bricks(MasterVolume, m) {
			sets[i] = append(sets[i], b)
		}
	}
	return sets
}

// Exec runs args inside node's namespaces (cluster.sh exec) and returns its
// combined output; the error holds the command, its status and the output.
func (c *Cluster) Exec(ctx context.Context, node string, args ...string) (string, error) {
	if err := c.checkNode(node); err != nil {
		return "", err
	}
	return c.run(ctx, append([]string{"exec", node}, args...)...)
}

// Proc is a process Start runs inside a node.
type Proc struct {
	Node string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error
}

// Start runs args inside node in the background, its stdout and stderr
// appended to logFile. The process is the test's child (cluster.sh and
// nsenter exec it), so Pid, Kill and Wait act on it directly; Down ends it
// if it still runs.
func (c *Cluster) Start(node, logFile string, args ...string) (*Proc, error) {
	if err := c.checkNode(node); err != nil {
		return nil, err
	}
	if len(args) == 0 {
		return nil, errors.New("cluster: Start: no command")
	}
	log, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cluster: Start %s on %s: %w", args[0], node, err)
	}
	cmd := exec.Command(c.script, append([]string{"exec", node}, args...)...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("cluster: Start %s on %s: %w", args[0], node, err)
	}
	p := &Proc{Node: node, cmd: cmd, log: log, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	// Return once the process is in the node (cluster.sh has become the
	// command), so that Pid is the command's and Pids(node) lists it.
	want, err := c.nsLink(node)
	if err != nil {
		p.Kill(syscall.SIGKILL)
		return nil, err
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", p.Pid())); err == nil && l == want {
			return p, nil
		}
		if p.Exited() {
			return nil, fmt.Errorf("cluster: %s on %s ended at start: %v (its output is in %s)", args[0], node, p.err, logFile)
		}
		if time.Now().After(deadline) {
			p.Kill(syscall.SIGKILL)
			return nil, fmt.Errorf("cluster: %s on %s: not in the node's namespace after 10s", args[0], node)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// nsLink returns what /proc/PID/ns/net reads for a process in node.
func (c *Cluster) nsLink(node string) (string, error) {
	var st syscall.Stat_t
	nsFile := filepath.Join(c.Dir, "ns", node+".net")
	if err := syscall.Stat(nsFile, &st); err != nil {
		return "", fmt.Errorf("cluster: network namespace of %s: %w", node, err)
	}
	return fmt.Sprintf("net:[%d]", st.Ino), nil
}

// Pid returns the process id (the command's own: it runs in the host's pid
// namespace).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Kill sends sig to the process.
func (p *Proc) Kill(sig syscall.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("cluster: signal %v to pid %d on %s: %w", sig, p.Pid(), p.Node, err)
	}
	return nil
}

// Wait waits for the process to end and returns how it ended (nil: exit 0).
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Partition cuts node's link: its port on the bridge goes down, so packets
// to and from it are dropped without an error on either side, as in a
// network partition.
func (c *Cluster) Partition(node string) error { return c.link("partition", node) }

// Heal restores the link Partition cut.
func (c *Cluster) Heal(node string) error { return c.link("heal", node) }

func (c *Cluster) link(op, node string) error {
	if err := c.checkNode(node); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.run(ctx, op, node)
	return err
}

// KillBrick kills with SIGKILL the brick process (glusterfsd) of the brick at
// brickPath (Brick.Path) on node, and waits until it is gone. `gluster
// volume start VOL force` inside a node, or Up, restarts it; but glusterd
// notices the brick's end only seconds later (GlusterFS 10.3), and a start
// force before that does nothing: retry it until the brick is online.
func (c *Cluster) KillBrick(node, brickPath string) error {
	if err := c.checkNode(node); err != nil {
		return err
	}
	pids, err := c.brickPids(node, brickPath)
	if err != nil {
		return err
	}
	if len(pids) == 0 {
		return fmt.Errorf("cluster: no glusterfsd of brick %s:%s runs", node, brickPath)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("cluster: kill glusterfsd %d of %s:%s: %w", pid, node, brickPath, err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		left := 0
		for _, pid := range pids {
			if alive(pid) {
				left++
			}
		}
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster: glusterfsd %v of %s:%s still there 10s after SIGKILL", pids, node, brickPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// brickPids finds the glusterfsd processes in node's network namespace
// serving brickPath (its --brick-name argument).
func (c *Cluster) brickPids(node, brickPath string) ([]int, error) {
	pids, err := c.Pids(node)
	if err != nil {
		return nil, err
	}
	var found []int
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "glusterfsd" {
			continue
		}
		if i := slices.Index(args, "--brick-name"); i >= 0 && i+1 < len(args) && args[i+1] == brickPath {
			found = append(found, pid)
		}
	}
	return found, nil
}

// Pids returns the processes (not zombies) in node's network namespace:
// its glusterd, bricks, self-heal daemon, FUSE clients and whatever Exec and
// Start run there.
func (c *Cluster) Pids(node string) ([]int, error) {
	if err := c.checkNode(node); err != nil {
		return nil, err
	}
	want, err := c.nsLink(node)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns", "net")); err == nil && l == want && alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z'
}

func (c *Cluster) checkNode(node string) error {
	if _, ok := addrs[node]; !ok {
		return fmt.Errorf("cluster: unknown node %q (nodes: %s)", node, strings.Join(c.Nodes(), " "))
	}
	return nil
}

// run runs cluster.sh with args, bounded by ctx, and returns its combined
// output; the error holds the command line and the output.
func (c *Cluster) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.script, args...)
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = append(os.Environ(), "GEOREP_CLUSTER_DIR="+c.Dir, "GEOREP_CLUSTER_DATA="+c.DataDir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return string(out), fmt.Errorf("cluster.sh %s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// logTails returns the last lines of every node's glusterd log.
func (c *Cluster) logTails(lines int) string {
	var b strings.Builder
	for _, n := range c.Nodes() {
		data, err := os.ReadFile(filepath.Join(c.DataDir, "nodes", n, "log", "glusterd.log"))
		if err != nil {
			continue
		}
		parts := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		fmt.Fprintf(&b, "--- %s\n%s\n", n, strings.Join(parts[max(0, len(parts)-lines):], "\n"))
	}
	return b.String()
}
