package harness

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// NetnsPair is two network namespaces a test created, joined by a veth
// pair: one for the master and one for the slave. Their addresses exist
// only inside the namespaces. Both are deleted when the test ends (after
// the processes the test started in them, which t.Cleanup stops first when
// they are started after NewNetnsPair).
type NetnsPair struct {
	Master, Slave     string // namespace names
	MasterIP, SlaveIP string
	ip                string // path of ip(8)
}

var netnsSeq atomic.Int32

// RequireNetns skips the test unless it runs as root with ip(8) and tc(8).
func RequireNetns(t testing.TB) {
	t.Helper()
	RequireRoot(t, "creates network namespaces")
	for _, bin := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not found (Debian package iproute2): %v", bin, err)
		}
	}
}

// NewNetnsPair creates the two namespaces, the veth pair between them (the
// master's end 10.231.0.1/24, the slave's 10.231.0.2/24, both namespaces'
// loopback up) and, when netem is not empty, adds `tc qdisc add dev X root
// netem <netem>` on both ends. It skips the test when namespaces cannot be
// created, and reports whether netem could be applied (sch_netem missing:
// false, the link then has no delay or loss).
func NewNetnsPair(t testing.TB, netem string) (*NetnsPair, bool) {
	t.Helper()
	RequireNetns(t)
	ip, _ := exec.LookPath("ip")
	tc, _ := exec.LookPath("tc")
	n := netnsSeq.Add(1)
	tag := fmt.Sprintf("%d-%d", os.Getpid(), n)
	p := &NetnsPair{Master: "georep-m-" + tag, Slave: "georep-s-" + tag, MasterIP: "10.231.0.1", SlaveIP: "10.231.0.2", ip: ip}
	// Interface names: at most 15 bytes.
	vm, vs := fmt.Sprintf("grm%d", os.Getpid()%1000000*100+int(n)%100), fmt.Sprintf("grs%d", os.Getpid()%1000000*100+int(n)%100)
	run := func(bin string, args ...string) error {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %s: %v: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := run(ip, "netns", "add", p.Master); err != nil {
		t.Skipf("cannot create a network namespace: %v", err)
	}
	t.Cleanup(func() { p.delete(p.Master) })
	if err := run(ip, "netns", "add", p.Slave); err != nil {
		t.Fatalf("second network namespace: %v", err)
	}
	t.Cleanup(func() { p.delete(p.Slave) })
	steps := [][]string{
		{"link", "add", vm, "netns", p.Master, "type", "veth", "peer", "name", vs, "netns", p.Slave},
		{"-n", p.Master, "addr", "add", p.MasterIP + "/24", "dev", vm},
		{"-n", p.Slave, "addr", "add", p.SlaveIP + "/24", "dev", vs},
		{"-n", p.Master, "link", "set", vm, "up"},
		{"-n", p.Slave, "link", "set", vs, "up"},
		{"-n", p.Master, "link", "set", "lo", "up"},
		{"-n", p.Slave, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if err := run(ip, s...); err != nil {
			t.Fatalf("network namespaces: %v", err)
		}
	}
	if netem == "" {
		return p, true
	}
	for _, e := range [][2]string{{p.Master, vm}, {p.Slave, vs}} {
		args := append([]string{"-n", e[0], "qdisc", "add", "dev", e[1], "root", "netem"}, strings.Fields(netem)...)
		if err := run(tc, args...); err != nil {
			t.Logf("netem unavailable (kernel module sch_netem): %v", err)
			return p, false
		}
	}
	return p, true
}

// delete removes a namespace, retrying briefly while a process that is
// being reaped still holds it.
func (p *NetnsPair) delete(ns string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := exec.Command(p.ip, "netns", "del", ns).Run()
		if err == nil || time.Now().After(deadline) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Cmd returns the argv that runs argv inside namespace ns: ip netns exec
// execs it, so the process started keeps the pid the test knows.
func (p *NetnsPair) Cmd(ns string, argv ...string) (string, []string) {
	return p.ip, append([]string{"netns", "exec", ns}, argv...)
}
