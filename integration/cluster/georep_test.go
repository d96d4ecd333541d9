package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/integration/cluster"
	"github.com/georep/georep/integration/harness"
	"github.com/georep/georep/rpc/certs"
	"github.com/georep/georep/slave/lease"
)

// The georep session on the pool: a georep-slave on each slave node serving
// svol, a georep-master daemon on each master node replicating mvol to both
// (one config, copied), plaintext inside the pool's private network.

const (
	slavePort  = "7100"
	statusPort = "7101"
	leaseFor   = "10s" // short, so that failover takes seconds
)

type session struct {
	c       *cluster.Cluster
	dir     string // the test's directory, visible in every node
	bin     string
	slaves  map[string]*cluster.Proc
	masters map[string]*cluster.Proc
}

func newSession(t *testing.T) *session {
	t.Helper()
	c := cluster.Up(t)
	bin := os.Getenv("GEOREP_BIN")
	if bin == "" {
		t.Skip("GEOREP_BIN is not set: run through make integration (it builds the binaries)")
	}
	dir, err := os.MkdirTemp("/tmp", "georep-cluster-test-")
	if err != nil {
		t.Fatal(err)
	}
	s := &session{c: c, dir: dir, bin: bin, slaves: map[string]*cluster.Proc{}, masters: map[string]*cluster.Proc{}}
	// The masters' status services serve mutual TLS on their nodes'
	// addresses (plaintext is for loopback only), georepctl has a client
	// certificate.
	var statusNames []string
	for _, m := range c.Masters() {
		statusNames = append(statusNames, c.Addr(m))
	}
	if err := certs.Generate(filepath.Join(dir, "tls"), certs.Options{SlaveNames: []string{"localhost"}, StatusNames: statusNames}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, p := range s.masters {
			p.Kill(syscall.SIGTERM)
		}
		for _, p := range s.masters {
			waitExit(p, 60*time.Second)
		}
		for _, p := range s.slaves {
			p.Kill(syscall.SIGTERM)
		}
		for _, p := range s.slaves {
			waitExit(p, 30*time.Second)
		}
		if t.Failed() || os.Getenv("GEOREP_E2E_KEEP_LOGS") != "" {
			t.Logf("logs kept in %s", dir)
			s.dumpLogTails(t)
			return
		}
		os.RemoveAll(dir)
	})
	// Start from an empty slave volume and a master volume holding nothing
	// of an earlier test (the pool may be reused: GEOREP_CLUSTER_KEEP).
	s.shell(t, "m1", `d=$(mktemp -d) && mount -t glusterfs m1:/mvol $d && find $d -mindepth 1 -maxdepth 1 ! -name .trashcan -exec rm -rf {} + ; umount $d; rmdir $d`)
	s.shell(t, "s1", `d=$(mktemp -d) && mount -t glusterfs s1:/svol $d && find $d -mindepth 1 -maxdepth 1 ! -name .trashcan -exec rm -rf {} + ; umount $d; rmdir $d`)
	for _, n := range c.Slaves() {
		s.startSlave(t, n)
	}
	return s
}

func waitExit(p *cluster.Proc, d time.Duration) {
	done := make(chan struct{})
	go func() { p.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		p.Kill(syscall.SIGKILL)
		<-done
	}
}

func (s *session) dumpLogTails(t *testing.T) {
	logs, _ := filepath.Glob(filepath.Join(s.dir, "*.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 25 {
			lines = lines[len(lines)-25:]
		}
		t.Logf("--- %s (end):\n%s", filepath.Base(l), strings.Join(lines, "\n"))
	}
}

func (s *session) shell(t *testing.T, node, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	out, err := s.c.Exec(ctx, node, "sh", "-ec", script)
	if err != nil {
		t.Fatalf("on %s: %v", node, err)
	}
	return out
}

func (s *session) startSlave(t *testing.T, node string) {
	t.Helper()
	p, err := s.c.Start(node, filepath.Join(s.dir, "slave-"+node+".log"), filepath.Join(s.bin, "georep-slave"),
		"--gluster-volume", cluster.SlaveVolume, "--volfile-server", node, "--listen", s.c.Addr(node)+":"+slavePort,
		"--insecure", "--lease", leaseFor, "--state-dir", filepath.Join(s.dir, "slave-state-"+node), "--log-level", "debug")
	if err != nil {
		t.Fatal(err)
	}
	s.slaves[node] = p
	s.waitListening(t, node, slavePort)
}

func (s *session) startMaster(t *testing.T, node string) {
	t.Helper()
	var eps []string
	for _, n := range s.c.Slaves() {
		eps = append(eps, n+":"+slavePort)
	}
	p, err := s.c.Start(node, filepath.Join(s.dir, "master-"+node+".log"), filepath.Join(s.bin, "georep-master"),
		"--gluster-volume", cluster.MasterVolume, "--volfile-server", node, "--slave", strings.Join(eps, ","),
		"--work-dir", filepath.Join(s.dir, "work-"+node), "--insecure", "--lease", leaseFor,
		"--status-listen", s.c.Addr(node)+":"+statusPort, "--status-tls-cert", s.tls(certs.StatusCertFile),
		"--status-tls-key", s.tls(certs.StatusKeyFile), "--status-tls-ca", s.tls(certs.CAFile), "--status-allowed-clients", "georepctl",
		"--change-interval", "1s", "--log-level", "debug")
	if err != nil {
		t.Fatal(err)
	}
	s.masters[node] = p
}

func (s *session) waitListening(t *testing.T, node, port string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		out, _ := s.c.Exec(ctx, node, "ss", "-Hltn", "sport = :"+port)
		cancel()
		if strings.Contains(out, port) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s:%s after 90 s", node, port)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// view mounts volume afresh inside node and returns the mount as the test
// sees it (through a process of the node's mount namespace); unmounted when
// the test ends.
func (s *session) view(t *testing.T, node, volume string) string {
	t.Helper()
	mnt := s.shell(t, node, fmt.Sprintf(`d=$(mktemp -d /tmp/georep-view-XXXXXX) && mount -t glusterfs -o entry-timeout=0,attribute-timeout=0 %s:/%s $d && echo $d`, node, volume))
	mnt = strings.TrimSpace(mnt)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s.c.Exec(ctx, node, "sh", "-c", "umount "+mnt+" && rmdir "+mnt)
	})
	pids, err := s.c.Pids(node)
	if err != nil || len(pids) == 0 {
		t.Fatalf("no process in %s to see its mounts: %v", node, err)
	}
	slices.Sort(pids)
	return fmt.Sprintf("/proc/%d/root%s", pids[0], mnt)
}

// converged waits until the slave volume holds the master volume's tree
// (fresh mounts on m1 and s1, every few seconds) and fails after limit,
// printing the differences.
func (s *session) converged(t *testing.T, what string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		diffs := s.diff(t)
		if len(diffs) == 0 {
			s.checkGFIDs(t)
			return
		}
		if time.Now().After(deadline) {
			if len(diffs) > 30 {
				diffs = diffs[:30]
			}
			t.Fatalf("%s: the slave volume differs from the master volume after %s:\n%s", what, limit, strings.Join(diffs, "\n"))
		}
		time.Sleep(3 * time.Second)
	}
}

func (s *session) diff(t *testing.T) []string {
	t.Helper()
	m := s.view(t, "m1", cluster.MasterVolume)
	sv := s.view(t, "s1", cluster.SlaveVolume)
	diffs, err := harness.Compare(m, sv, harness.CompareOptions{})
	if err != nil {
		return []string{err.Error()}
	}
	return diffs
}

// checkGFIDs compares gfids through the bricks: every inode of the slave
// volume carries the gfid GlusterFS gave it on the master volume.
func (s *session) checkGFIDs(t *testing.T) {
	t.Helper()
	master := map[string]string{}
	for _, set := range s.c.ReplicaSets() {
		brickGFIDs(t, set[0].HostPath, master)
	}
	slave := map[string]string{}
	for _, n := range s.c.Slaves() {
		for _, b := range s.c.Bricks(cluster.SlaveVolume, n) {
			brickGFIDs(t, b.HostPath, slave)
		}
	}
	var bad []string
	for p, g := range master {
		if slave[p] != g {
			bad = append(bad, fmt.Sprintf("%s: gfid %s on the master volume, %q on the slave volume", p, g, slave[p]))
		}
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		t.Fatalf("gfids differ:\n%s", strings.Join(bad[:min(len(bad), 20)], "\n"))
	}
	if len(master) == 0 {
		t.Fatal("no inode compared")
	}
}

// brickGFIDs adds the trusted.gfid of every entry of a brick (but
// GlusterFS's and georep's own, and DHT link files) to m by path.
func brickGFIDs(t *testing.T, brick string, m map[string]string) {
	t.Helper()
	err := filepath.WalkDir(brick, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(brick, p)
		switch rel {
		case ".":
			return nil
		case ".glusterfs", ".trashcan", ".georep":
			return filepath.SkipDir
		}
		if strings.HasPrefix(rel, ".glusterfs-anonymous-inode-") {
			return filepath.SkipDir // AFR's own directory, not the volume's data
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().IsRegular() && info.Mode()&os.ModeSticky != 0 && info.Mode().Perm() == 0 && info.Size() == 0 {
			return nil // a DHT link file
		}
		buf := make([]byte, 16)
		n, err := unix.Lgetxattr(p, "trusted.gfid", buf)
		if err != nil || n != 16 {
			return fmt.Errorf("%s: trusted.gfid: %v", p, err)
		}
		m[rel] = fmt.Sprintf("%x-%x-%x-%x-%x", buf[0:4], buf[4:6], buf[6:8], buf[8:10], buf[10:16])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// leaseLogs reads, from the slave volume's bricks, the lease log of every
// replica set.
func (s *session) leaseLogs(t *testing.T) map[string][]lease.Event {
	t.Helper()
	logs := map[string][]lease.Event{}
	for _, n := range s.c.Slaves() {
		for _, b := range s.c.Bricks(cluster.SlaveVolume, n) {
			files, _ := filepath.Glob(filepath.Join(b.HostPath, lease.Dir, "set-*.log"))
			for _, f := range files {
				set := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "set-"), ".log")
				evs, err := lease.ReadLog(b.HostPath, set)
				if err != nil {
					t.Fatal(err)
				}
				logs[set] = append(logs[set], evs...)
			}
		}
	}
	return logs
}

// checkOneActive checks, from the slave side's record of lease holders,
// that never were two workers of a replica set Active at once: epochs are
// acquired one after the other, and a holder whose end is recorded last
// found its lease held (every call it let through passed that check)
// before the next holder acquired it.
func (s *session) checkOneActive(t *testing.T) map[string][]lease.Event {
	t.Helper()
	logs := s.leaseLogs(t)
	if len(logs) != 2 {
		t.Fatalf("lease logs of %d replica sets, want 2: %v", len(logs), logs)
	}
	for set, evs := range logs {
		acquired := map[uint64]lease.Event{}
		var epochs []uint64
		for _, ev := range evs {
			if ev.Event == "acquired" {
				if _, dup := acquired[ev.Epoch]; dup {
					t.Fatalf("set %s: epoch %d acquired twice: %+v", set, ev.Epoch, evs)
				}
				acquired[ev.Epoch] = ev
				epochs = append(epochs, ev.Epoch)
			}
		}
		slices.Sort(epochs)
		for i, e := range epochs {
			if i > 0 && !acquired[e].Time.After(acquired[epochs[i-1]].Time) {
				t.Fatalf("set %s: epoch %d acquired at %s, not after epoch %d at %s", set, e, acquired[e].Time, epochs[i-1], acquired[epochs[i-1]].Time)
			}
		}
		for _, ev := range evs {
			if ev.Event == "acquired" {
				continue
			}
			next, ok := acquired[ev.Epoch+1]
			if ok && ev.Checked.After(next.Time) {
				t.Fatalf("set %s: epoch %d (worker %s) still passed its lease check at %s, after epoch %d (worker %s) acquired it at %s",
					set, ev.Epoch, ev.Worker, ev.Checked, ev.Epoch+1, next.Worker, next.Time)
			}
		}
	}
	return logs
}

// holder returns the master node whose worker holds set's lease now, from
// the lease record on the slave volume.
func (s *session) holder(t *testing.T, set string) (node string, rec lease.Record) {
	t.Helper()
	for _, n := range s.c.Slaves() {
		for _, b := range s.c.Bricks(cluster.SlaveVolume, n) {
			b, err := os.ReadFile(filepath.Join(b.HostPath, lease.Dir, "set-"+set+".lease"))
			if err != nil {
				continue
			}
			if err := json.Unmarshal([]byte(strings.TrimSpace(string(b))), &rec); err != nil {
				t.Fatal(err)
			}
			uuid, _, _ := strings.Cut(rec.Worker, ":")
			for _, m := range s.c.Masters() {
				info, _ := os.ReadFile(filepath.Join(s.c.DataDir, "nodes", m, "lib", "glusterd.info"))
				if strings.Contains(string(info), "UUID="+uuid) {
					return m, rec
				}
			}
			t.Fatalf("set %s: holder %s is no master node", set, rec.Worker)
		}
	}
	return "", rec
}

// waitHolder waits until set's lease has a holder with an epoch above
// after, and returns it.
func (s *session) waitHolder(t *testing.T, set string, after uint64, limit time.Duration) (string, lease.Record) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if n, rec := s.holder(t, set); n != "" && rec.Epoch > after {
			return n, rec
		}
		if time.Now().After(deadline) {
			t.Fatalf("set %s: no new holder above epoch %d within %s", set, after, limit)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// write runs a workload script on a fresh mount of mvol in node m1.
func (s *session) write(t *testing.T, script string) {
	t.Helper()
	s.shell(t, "m1", `d=$(mktemp -d /tmp/georep-w-XXXXXX) && mount -t glusterfs m1:/mvol $d && cd $d && (`+script+`) ; cd / ; umount $d ; rmdir $d`)
}

func initialTree() string {
	return `for i in 1 2 3 4 5 6; do mkdir -p d$i/sub; for j in $(seq 1 40); do echo "file $i $j" > d$i/f$j; done; dd if=/dev/urandom of=d$i/big bs=64k count=16 2>/dev/null; done
ln -s d1/f1 link1; ln d2/f1 d2/hard1; mkdir -p 'odd name'/'x y'; echo odd > 'odd name/ä ö'`
}

// mutations are round's changes (round 1 or 2) to initialTree: renames of
// a directory and of files across directories, deletes of a subtree and of
// files, appends, creates, a hardlink, a rename over an existing name, a
// chmod and a utime.
func mutations(round int) string {
	r := strconv.Itoa(round)
	return `mv d` + r + ` d` + r + `r ; mv d3/f` + r + ` d5/moved` + r + ` ; rm -rf d4/sub ; rm -f d5/f1` + r + ` d5/f2` + r + `
for j in $(seq 1 20); do echo "round ` + r + ` $j" >> d6/f$j; done
mkdir new` + r + ` ; for j in $(seq 1 30); do echo n$j > new` + r + `/n$j; done ; ln new` + r + `/n1 d6/hardnew` + r + `
mv d6/f3` + r + ` d6/f2` + r + ` ; chmod 600 d3/f1` + r + ` ; touch -d 2001-01-01 d3/f2` + r
}

func georepctl(t *testing.T, s *session, args ...string) (string, error) {
	var ms []string
	for _, m := range s.c.Masters() {
		ms = append(ms, s.c.Addr(m)+":"+statusPort)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	return s.c.Exec(ctx, "m1", append([]string{filepath.Join(s.bin, "georepctl"), "--master", strings.Join(ms, ","),
		"--tls-cert", s.tls(certs.CtlCertFile), "--tls-key", s.tls(certs.CtlKeyFile), "--tls-ca", s.tls(certs.CAFile)}, args...)...)
}

// tls is the path of one of the session's TLS files.
func (s *session) tls(name string) string {
	return filepath.Join(s.dir, "tls", name)
}
