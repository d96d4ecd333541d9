package cluster_test

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/georep/georep/integration/cluster"
)

// TestClusterSession runs the whole session on the pool, the way a user
// installs it: initial sync and mutation rounds with all three master nodes
// running, then kill -9 of the Active node's georep-master, kill of the
// Active brick, a partition of the Active node and its heal, and a slave
// node killed mid-sync; each step converges with nothing lost (trees and
// gfids compared), and the slave's record of lease holders shows one Active
// worker per replica set at any moment. A checkpoint set for the session
// completes at the end. One test: the pool is set up once (bounded: each
// step waits at most a few minutes).
func TestClusterSession(t *testing.T) {
	s := newSession(t)
	s.write(t, initialTree())
	for _, m := range s.c.Masters() {
		s.startMaster(t, m)
	}
	s.converged(t, "initial sync", 4*time.Minute)
	for round := 1; round <= 2; round++ {
		s.write(t, mutations(round))
		s.converged(t, "mutation round", 3*time.Minute)
	}
	s.checkOneActive(t)
	holders := map[string]string{}
	for _, set := range []string{"0", "1"} {
		n, rec := s.holder(t, set)
		holders[set] = n
		t.Logf("set %s: Active on %s (worker %s, epoch %d)", set, n, rec.Worker, rec.Epoch)
	}

	t.Run("kill -9 of the Active master", func(t *testing.T) {
		node, rec := s.holder(t, "0")
		killed := time.Now()
		s.masters[node].Kill(syscall.SIGKILL)
		waitExit(s.masters[node], 30*time.Second)
		s.write(t, `mkdir after-kill && for j in $(seq 1 50); do echo k$j > after-kill/k$j; done`)
		n, nrec := s.waitHolder(t, "0", rec.Epoch, 2*time.Minute)
		t.Logf("failover after kill -9 of %s's georep-master: %s Active %.1f s later (epoch %d → %d)", node, n, nrec.Since.Sub(killed).Seconds(), rec.Epoch, nrec.Epoch)
		if n == node {
			t.Fatalf("the killed node %s holds the lease again", node)
		}
		s.converged(t, "after kill -9 of the Active master", 3*time.Minute)
		s.startMaster(t, node) // back: Passive
	})

	t.Run("kill of the Active brick", func(t *testing.T) {
		node, rec := s.holder(t, "1")
		var brick string
		for _, b := range s.c.ReplicaSets()[1] {
			if b.Node == node {
				brick = b.Path
			}
		}
		killed := time.Now()
		if err := s.c.KillBrick(node, brick); err != nil {
			t.Fatal(err)
		}
		s.write(t, `mkdir after-brick && for j in $(seq 1 50); do echo b$j > after-brick/b$j; done`)
		n, nrec := s.waitHolder(t, "1", rec.Epoch, 2*time.Minute)
		t.Logf("failover after the Active brick %s:%s died: %s Active %.1f s later", node, brick, n, nrec.Since.Sub(killed).Seconds())
		s.converged(t, "after the Active brick died", 3*time.Minute)
		s.shell(t, node, "gluster volume start mvol force >/dev/null")
	})

	t.Run("partition of the Active node", func(t *testing.T) {
		node, rec := s.holder(t, "0")
		cut := time.Now()
		if err := s.c.Partition(node); err != nil {
			t.Fatal(err)
		}
		healed := false
		defer func() {
			if !healed {
				s.c.Heal(node)
			}
		}()
		writer := "m1"
		if node == "m1" {
			writer = "m2"
		}
		s.shell(t, writer, `d=$(mktemp -d /tmp/georep-w-XXXXXX) && mount -t glusterfs `+writer+`:/mvol $d && mkdir $d/during-partition && for j in $(seq 1 50); do echo p$j > $d/during-partition/p$j; done; umount $d; rmdir $d`)
		n, nrec := s.waitHolder(t, "0", rec.Epoch, 3*time.Minute)
		t.Logf("failover after %s was cut off: %s Active %.1f s later", node, n, nrec.Since.Sub(cut).Seconds())
		if err := s.c.Heal(node); err != nil {
			t.Fatal(err)
		}
		healed = true
		s.converged(t, "after the partition healed", 4*time.Minute)
		if h, _ := s.holder(t, "0"); h == node {
			t.Logf("note: %s became Active again after the heal", node)
		}
	})

	t.Run("slave node killed mid-sync", func(t *testing.T) {
		s.write(t, `mkdir mid && for j in $(seq 1 200); do dd if=/dev/urandom of=mid/m$j bs=16k count=4 2>/dev/null; done`)
		time.Sleep(time.Second)
		s.slaves["s2"].Kill(syscall.SIGKILL)
		waitExit(s.slaves["s2"], 30*time.Second)
		s.write(t, `for j in $(seq 1 50); do echo after > mid/after$j; done`)
		time.Sleep(5 * time.Second)
		s.startSlave(t, "s2")
		s.converged(t, "after a slave node was killed mid-sync", 4*time.Minute)
	})

	t.Run("checkpoint for the session", func(t *testing.T) {
		s.write(t, `echo checkpoint > before-checkpoint`)
		if out, err := georepctl(t, s, "checkpoint", "set", "now"); err != nil {
			t.Fatalf("checkpoint set: %v\n%s", err, out)
		}
		out, err := georepctl(t, s, "checkpoint", "wait", "--timeout", "3m")
		if err != nil {
			st, _ := georepctl(t, s, "status")
			t.Fatalf("checkpoint wait: %v\n%s\nstatus:\n%s", err, out, st)
		}
		st, _ := georepctl(t, s, "status")
		t.Logf("status:\n%s", st)
		if strings.Count(st, "Active") < 2 {
			t.Errorf("status shows fewer than two Active workers:\n%s", st)
		}
	})
	t.Run("audit of the session", func(t *testing.T) {
		// Every replica set's Active worker compares its part of the
		// replica, contents included, after the failovers above; what it
		// finds it repairs, and the replica stays equal to the source.
		out, err := georepctl(t, s, "audit", "--content", "--wait", "--timeout", "3m")
		t.Logf("audit --content --wait:\n%s", out)
		if err != nil {
			t.Fatalf("audit of the session: %v\n%s", err, out)
		}
		if strings.Count(out, "last audit with contents") < 2 {
			t.Errorf("fewer than two workers (one per replica set) audited:\n%s", out)
		}
		s.converged(t, "after the audit", 3*time.Minute)
	})
	t.Run("oneshot on a node whose sets are Active elsewhere", func(t *testing.T) {
		// A --oneshot beside the daemons (its own work dir): every set's
		// lease is held, so it has nothing to do, says so and exits 0.
		node := ""
		for _, m := range s.c.Masters() {
			if h0, _ := s.holder(t, "0"); h0 == m {
				continue
			}
			if h1, _ := s.holder(t, "1"); h1 == m {
				continue
			}
			node = m
		}
		if node == "" {
			t.Skip("every master node holds a set's lease")
		}
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		out, err := s.c.Exec(ctx, node, filepath.Join(s.bin, "georep-master"), "--gluster-volume", cluster.MasterVolume,
			"--volfile-server", node, "--slave", "s1:"+slavePort+",s2:"+slavePort, "--work-dir", filepath.Join(s.dir, "oneshot-"+node),
			"--insecure", "--oneshot", "--oneshot-timeout", "90s")
		if err != nil {
			t.Fatalf("--oneshot on %s: %v\n%s", node, err, out)
		}
		if strings.Count(out, "nothing to do on this node") != 2 {
			t.Errorf("--oneshot on %s did not say, for both sets, that another worker is Active:\n%s", node, out)
		}
	})
	logs := s.checkOneActive(t)
	for set, evs := range logs {
		for _, ev := range evs {
			t.Logf("set %s: %s %s epoch %d worker %s slave %s %s", set, ev.Time.Format("15:04:05.000"), ev.Event, ev.Epoch, ev.Worker, ev.Slave, ev.Reason)
		}
	}
}
