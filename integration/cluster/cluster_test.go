package cluster_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/georep/georep/integration/cluster"
)

// TestClusterUp checks what tests built on the pool rely on: both pools and
// volumes are up, each node is a glusterd of its own, a FUSE mount works in
// a node, names resolve and connect between nodes off the host's network, a
// partition is seen and healed, a brick can be killed, and down leaves
// nothing behind.
func TestClusterUp(t *testing.T) {
	hostState := hostGlusterdState(t)
	c := cluster.Up(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	exec := func(node string, args ...string) string {
		t.Helper()
		out, err := c.Exec(ctx, node, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	gluster := func(node string, args ...string) string {
		t.Helper()
		return exec(node, append([]string{"gluster", "--mode=script"}, args...)...)
	}

	t.Run("volumes", func(t *testing.T) {
		info := gluster("m1", "volume", "info", cluster.MasterVolume)
		for _, want := range []string{"Type: Distributed-Replicate", "Status: Started", "Number of Bricks: 2 x 3 = 6",
			"changelog.changelog: on", "network.ping-timeout: 5"} {
			if !strings.Contains(info, want) {
				t.Errorf("gluster volume info mvol (m1) lacks %q:\n%s", want, info)
			}
		}
		// Brick order: each replica set spans m1, m2, m3.
		var bricks []string
		for _, set := range c.ReplicaSets() {
			for _, b := range set {
				bricks = append(bricks, b.Node+":"+b.Path)
			}
		}
		if got := regexp.MustCompile(`(?m)^Brick\d+: (\S+)`).FindAllStringSubmatch(info, -1); len(got) != 6 {
			t.Errorf("mvol bricks: %q", got)
		} else {
			for i, m := range got {
				if m[1] != bricks[i] {
					t.Errorf("mvol brick %d is %s, want %s", i+1, m[1], bricks[i])
				}
			}
		}
		info = gluster("s1", "volume", "info", cluster.SlaveVolume)
		for _, want := range []string{"Type: Distribute", "Status: Started", "Number of Bricks: 2", "network.ping-timeout: 5"} {
			if !strings.Contains(info, want) {
				t.Errorf("gluster volume info svol (s1) lacks %q:\n%s", want, info)
			}
		}
		if n := online(gluster("m1", "volume", "status", cluster.MasterVolume, "detail")); n != 6 {
			t.Errorf("%d bricks of mvol online, want 6", n)
		}
		if n := online(gluster("s1", "volume", "status", cluster.SlaveVolume, "detail")); n != 2 {
			t.Errorf("%d bricks of svol online, want 2", n)
		}
		if out := gluster("m1", "peer", "status"); !strings.Contains(out, "Number of Peers: 2") ||
			strings.Count(out, "Peer in Cluster (Connected)") != 2 {
			t.Errorf("peer status on m1:\n%s", out)
		}
		if out := gluster("s1", "peer", "status"); !strings.Contains(out, "Number of Peers: 1") ||
			strings.Count(out, "Peer in Cluster (Connected)") != 1 {
			t.Errorf("peer status on s1:\n%s", out)
		}
		// The slaves' pool knows nothing of the masters'.
		if out := gluster("s1", "volume", "list"); strings.Contains(out, cluster.MasterVolume) {
			t.Errorf("s1 lists %s:\n%s", cluster.MasterVolume, out)
		}
	})

	t.Run("uuids", func(t *testing.T) {
		seen := map[string]string{}
		for _, n := range c.Nodes() {
			out := exec(n, "cat", "/var/lib/glusterd/glusterd.info")
			m := regexp.MustCompile(`(?m)^UUID=(\S+)`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("%s: glusterd.info without a UUID:\n%s", n, out)
			}
			if other, ok := seen[m[1]]; ok {
				t.Errorf("%s and %s have the same glusterd UUID %s", n, other, m[1])
			}
			if strings.Contains(hostState, m[1]) {
				t.Errorf("%s has the host's glusterd UUID %s", n, m[1])
			}
			seen[m[1]] = n
			if got := strings.TrimSpace(exec(n, "hostname")); got != n {
				t.Errorf("hostname in %s: %q", n, got)
			}
		}
	})

	t.Run("mounts", func(t *testing.T) {
		m1, m2, s1 := mount(t, c, "m1", cluster.MasterVolume), mount(t, c, "m2", cluster.MasterVolume), mount(t, c, "s1", cluster.SlaveVolume)
		exec("m1", "sh", "-c", "echo through-m1 >"+m1+"/hello")
		if got := exec("m2", "cat", m2+"/hello"); got != "through-m1\n" {
			t.Errorf("hello read on m2: %q", got)
		}
		// The file is on the three bricks of one replica set.
		var on []string
		for _, set := range c.ReplicaSets() {
			for _, b := range set {
				if _, err := os.Stat(filepath.Join(b.HostPath, "hello")); err == nil {
					on = append(on, b.Node+":"+filepath.Base(b.Path))
				}
			}
		}
		if len(on) != 3 || on[0][:2] != "m1" || on[1][:2] != "m2" || on[2][:2] != "m3" {
			t.Errorf("hello is on the bricks %v, want one replica set", on)
		}
		exec("s1", "sh", "-c", "echo on-svol >"+s1+"/x")
		// A mount made in a node is not the host's.
		if _, err := os.Stat(filepath.Join(m1, "hello")); err == nil {
			t.Errorf("the mount of m1 is visible on the host")
		}
	})

	t.Run("network", func(t *testing.T) {
		if got := strings.Fields(exec("m1", "getent", "hosts", "s1")); len(got) < 1 || got[0] != c.Addr("s1") {
			t.Errorf("s1 resolves on m1 to %q, want %s", got, c.Addr("s1"))
		}
		// s1's glusterd listens on its own address: reachable by name from m1.
		exec("m1", "bash", "-c", "exec 3<>/dev/tcp/s1/24007")
		// Nothing listens on a node's loopback, and the host's loopback
		// (where a host glusterd may listen) is not a node's.
		if out, err := c.Exec(ctx, "m1", "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/24007"); err == nil {
			t.Errorf("127.0.0.1:24007 answers in m1: %s", out)
		}
		if out := exec("m1", "ip", "-o", "-4", "addr"); !strings.Contains(out, c.Addr("m1")+"/24") || strings.Count(out, "inet ") != 2 {
			t.Errorf("addresses in m1:\n%s", out)
		}
		if out, _ := osexec("ip", "-o", "-4", "addr"); strings.Contains(out, "10.77.0.") {
			t.Errorf("the host's network namespace has a pool address:\n%s", out)
		}
	})

	t.Run("partition", func(t *testing.T) {
		start := time.Now()
		if err := c.Partition("m3"); err != nil {
			t.Fatal(err)
		}
		waitPeer(t, ctx, c, "m1", "m3", "Disconnected", time.Minute)
		t.Logf("m1 saw m3 disconnected %v after the partition", time.Since(start).Round(time.Second))
		start = time.Now()
		if err := c.Heal("m3"); err != nil {
			t.Fatal(err)
		}
		waitPeer(t, ctx, c, "m1", "m3", "Connected)", time.Minute)
		t.Logf("and connected %v after the heal", time.Since(start).Round(time.Second))
	})

	t.Run("kill-brick", func(t *testing.T) {
		b := c.Bricks(cluster.MasterVolume, "m3")[0]
		if err := c.KillBrick("m3", b.Path); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "a brick of mvol offline", time.Minute, func() (bool, string) {
			out := gluster("m1", "volume", "status", cluster.MasterVolume, "detail")
			return online(out) == 5, out
		})
		// glusterd notices the brick's end only seconds later, and until then
		// start force leaves it alone: retry.
		waitFor(t, "the 6 bricks of mvol online", time.Minute, func() (bool, string) {
			out := gluster("m1", "volume", "status", cluster.MasterVolume, "detail")
			if online(out) == 6 {
				return true, out
			}
			gluster("m1", "volume", "start", cluster.MasterVolume, "force")
			time.Sleep(2 * time.Second)
			return false, out
		})
	})

	proc, err := c.Start("m2", filepath.Join(t.TempDir(), "sleep.log"), "sleep", "600")
	if err != nil {
		t.Fatal(err)
	}
	if pids, err := c.Pids("m2"); err != nil || !slices.Contains(pids, proc.Pid()) {
		t.Errorf("pid %d of sleep not among m2's %v (%v)", proc.Pid(), pids, err)
	}

	if !c.Owned() || os.Getenv("GEOREP_CLUSTER_KEEP") == "1" || t.Failed() {
		t.Logf("pool reused, kept (GEOREP_CLUSTER_KEEP=1) or test failed: not checking down")
		return
	}
	var nsInodes []string
	for _, n := range c.Nodes() {
		for _, kind := range []string{"net", "mnt"} {
			var st syscall.Stat_t
			if err := syscall.Stat(filepath.Join(c.Dir, "ns", n+"."+kind), &st); err != nil {
				t.Fatal(err)
			}
			nsInodes = append(nsInodes, fmt.Sprintf("%s:[%d]", kind, st.Ino))
		}
	}
	start := time.Now()
	if err := c.Down(); err != nil {
		t.Fatal(err)
	}
	t.Logf("down in %v", time.Since(start).Round(100*time.Millisecond))
	if err := proc.Wait(); err == nil {
		t.Errorf("sleep in m2 ended with status 0 at down, want a signal")
	}
	for _, p := range []string{c.Dir, c.DataDir} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s left after down: %v", p, err)
		}
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(mi), "\n") {
		if strings.Contains(line, c.Dir) || strings.Contains(line, c.DataDir) || strings.Contains(line, "fuse.glusterfs") {
			t.Errorf("mount left after down: %s", line)
		}
	}
	if left := inNamespaces(nsInodes); len(left) > 0 {
		t.Errorf("processes left in the nodes' namespaces after down: %v", left)
	}
	if got := hostGlusterdState(t); got != hostState {
		t.Errorf("the host's /var/lib/glusterd changed:\nbefore %s\nafter  %s", hostState, got)
	}
}

// online counts the bricks `gluster volume status VOL detail` shows online.
func online(status string) int {
	return len(regexp.MustCompile(`(?m)^Online\s+:\s+Y`).FindAllString(status, -1))
}

// mount mounts volume with the FUSE client inside node on a new directory
// and unmounts it when the test ends.
func mount(t *testing.T, c *cluster.Cluster, node, volume string) string {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Exec(ctx, node, "mount", "-t", "glusterfs", node+":/"+volume, dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := c.Exec(ctx, node, "umount", dir); err != nil {
			t.Error(err)
		}
	})
	return dir
}

// waitPeer waits until node's peer status shows peer in a state containing want.
func waitPeer(t *testing.T, ctx context.Context, c *cluster.Cluster, node, peer, want string, timeout time.Duration) {
	t.Helper()
	re := regexp.MustCompile(`Hostname: ` + peer + `\nUuid: \S+\nState: ([^\n]*)`)
	waitFor(t, fmt.Sprintf("%s to see %s %s", node, peer, want), timeout, func() (bool, string) {
		out, err := c.Exec(ctx, node, "gluster", "--mode=script", "peer", "status")
		if err != nil {
			return false, err.Error()
		}
		m := re.FindStringSubmatch(out)
		return m != nil && strings.Contains(m[1], want), out
	})
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last:\n%s", timeout, what, last)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// hostGlusterdState lists the host's /var/lib/glusterd: glusterd.info and
// the names in peers and vols, to see that the nodes never touch it.
func hostGlusterdState(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	info, _ := os.ReadFile("/var/lib/glusterd/glusterd.info")
	b.Write(info)
	for _, d := range []string{"peers", "vols"} {
		ents, _ := os.ReadDir(filepath.Join("/var/lib/glusterd", d))
		for _, e := range ents {
			b.WriteString(d + "/" + e.Name() + " ")
		}
	}
	return b.String()
}

// inNamespaces returns the processes whose network or mount namespace is
// one of nss ("net:[inode]", "mnt:[inode]").
func inNamespaces(nss []string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		for _, kind := range []string{"net", "mnt"} {
			if l, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns", kind)); err == nil && slices.Contains(nss, l) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

func osexec(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
