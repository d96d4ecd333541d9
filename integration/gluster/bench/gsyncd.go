package bench

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/georep/georep/integration/gluster"
	"github.com/georep/georep/integration/harness"
)

// Where GlusterFS keeps geo-replication state and logs (fixed paths).
const (
	geoRepDir     = "/var/lib/glusterd/geo-replication"
	gsyncdWorkDir = "/var/lib/misc/gluster/gsyncd"
	geoRepLogs    = "/var/log/glusterfs/geo-replication"
	geoRepSecLogs = "/var/log/glusterfs/geo-replication-secondaries"
	cliTimeout    = 3 * time.Minute // one gluster CLI call (create runs gverify: two mounts and ssh)
)

// gsecFiles are what `gluster system:: execute gsec_create` writes into
// geoRepDir.
var gsecFiles = map[string]bool{
	"common_secret.pem.pub": true,
	"secret.pem":            true, "secret.pem.pub": true,
	"tar_ssh.pem": true, "tar_ssh.pem.pub": true,
}

// glusterCLI runs `gluster --mode=script args...`, retrying while glusterd
// is busy with another transaction, bounded by cliTimeout.
func glusterCLI(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	args = append([]string{"--mode=script"}, args...)
	for {
		cmd := exec.CommandContext(ctx, "gluster", args...)
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.CombinedOutput()
		if err == nil {
			return string(out), nil
		}
		err = fmt.Errorf("gluster %s: %w\n%s", strings.Join(args[1:], " "), err, strings.TrimSpace(string(out)))
		if !strings.Contains(string(out), "nother transaction") && !strings.Contains(string(out), "Locking failed") {
			return string(out), err
		}
		select {
		case <-ctx.Done():
			return string(out), err
		case <-time.After(time.Second):
		}
	}
}

// gsyncdHost is what every gsyncd session on this host needs, set up once
// by a benchmark: sshd on loopback, root's key login, gsec_create's keys.
type gsyncdHost struct {
	sshd   *harness.SSHD
	sshDir string // root's ~/.ssh
}

// setUpGsyncdHost prepares the host for gsyncd sessions and registers the
// undoing of everything it changes.
func setUpGsyncdHost(tb testing.TB) *gsyncdHost {
	tb.Helper()
	root, err := user.Lookup("root")
	if err != nil {
		tb.Fatal(err)
	}
	sshDir := filepath.Join(root.HomeDir, ".ssh")
	// Registered first, so undone last: after the sessions and sshd stopped.
	keepDir(tb, sshDir)
	removeNew(tb, geoRepDir, func(name string) bool { return gsecFiles[name] || strings.HasPrefix(name, "georep-") })
	h := &gsyncdHost{sshd: harness.StartSSHD(tb, harness.SSHDOptions{}), sshDir: sshDir}
	authorizeRootKey(tb, sshDir, h.sshd.Port)
	if _, err := glusterCLI("system::", "execute", "gsec_create"); err != nil {
		tb.Fatal(err)
	}
	return h
}

// authorizeRootKey lets root log in as root with its default identity (the
// one gverify.sh and the push-pem hook use): it creates ~/.ssh/id_ed25519
// when root has no default key, and authorizes the public key; then checks
// that `ssh -p port root@host` works.
func authorizeRootKey(tb testing.TB, sshDir string, port int) {
	tb.Helper()
	if err := os.MkdirAll(sshDir, 0o700); err != nil {
		tb.Fatal(err)
	}
	var pub string
	for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
		if _, err := os.Stat(filepath.Join(sshDir, name)); err == nil {
			pub = filepath.Join(sshDir, name+".pub")
			if _, err := os.Stat(pub); err != nil {
				tb.Fatalf("root has the ssh key %s but not its public half: %v", name, err)
			}
			break
		}
	}
	if pub == "" {
		key := filepath.Join(sshDir, "id_ed25519")
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "georep-gluster-bench", "-f", key).CombinedOutput(); err != nil {
			tb.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
		pub = key + ".pub"
	}
	line, err := os.ReadFile(pub)
	if err != nil {
		tb.Fatal(err)
	}
	auth := filepath.Join(sshDir, "authorized_keys")
	cur, _ := os.ReadFile(auth)
	if !strings.Contains(string(cur), strings.TrimSpace(string(line))) {
		f, err := os.OpenFile(auth, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			tb.Fatal(err)
		}
		if len(cur) > 0 && cur[len(cur)-1] != '\n' {
			f.WriteString("\n")
		}
		_, err = f.Write(line)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ssh", "-p", strconv.Itoa(port), "-oBatchMode=yes", "-oStrictHostKeyChecking=no",
		"-oUserKnownHostsFile=/dev/null", "-oLogLevel=ERROR", "root@"+gluster.Host, "true").CombinedOutput()
	if err != nil {
		tb.Fatalf("root cannot log in to its sshd on port %d with its key: %v\n%s", port, err, out)
	}
}

// waitAuthorized waits until root's authorized_keys holds the public key of
// gsyncd's secret.pem.
func waitAuthorized(sshDir string, timeout time.Duration) error {
	pub, err := os.ReadFile(filepath.Join(geoRepDir, "secret.pem.pub"))
	if err != nil {
		return err
	}
	f := strings.Fields(string(pub))
	if len(f) < 2 {
		return fmt.Errorf("%s: not a public key", filepath.Join(geoRepDir, "secret.pem.pub"))
	}
	auth := filepath.Join(sshDir, "authorized_keys")
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(auth)
		if strings.Contains(string(b), f[1]) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the push-pem hook did not authorize secret.pem in %s within %s (see /var/log/glusterfs/glusterd.log)", auth, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// gsyncdSession is a geo-replication session MASTER HOST::SLAVE.
type gsyncdSession struct {
	master, slave string
	sessionArgs   []string // volume geo-replication M HOST::S
	logDir        string
	changeIntv    int
}

// newGsyncdSession creates the session (push-pem force, the ssh port of h's
// sshd) and configures it; it is stopped and deleted when the benchmark
// ends, with its working directory and logs.
func newGsyncdSession(tb testing.TB, h *gsyncdHost, k knobs, master, slave *gluster.Volume) *gsyncdSession {
	tb.Helper()
	s := &gsyncdSession{
		master: master.Name, slave: slave.Name,
		sessionArgs: []string{"volume", "geo-replication", master.Name, gluster.Host + "::" + slave.Name},
		changeIntv:  k.changeInterval,
	}
	sessionName := master.Name + "_" + gluster.Host + "_" + slave.Name
	s.logDir = filepath.Join(geoRepLogs, sessionName)
	mine := func(name string) bool { return strings.Contains(name, master.Name) }
	for _, dir := range []string{geoRepSecLogs, gsyncdWorkDir} {
		removeNew(tb, dir, mine)
	}
	// create's gverify.sh and the CLI log there too, when they did not yet.
	removeNew(tb, geoRepLogs, func(name string) bool {
		return mine(name) || name == "cli.log" || strings.HasPrefix(name, "gverify-")
	})
	port := strconv.Itoa(h.sshd.Port)
	if _, err := glusterCLI(s.cmd("create", "ssh-port", port, "push-pem", "force")...); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.remove(tb) })
	// glusterd runs the push-pem hook (which authorizes secret.pem for root
	// through add_secret_pub) in the background after create returns: a
	// session started before it is done is refused by sshd and stays
	// "Created".
	if err := waitAuthorized(h.sshDir, 2*time.Minute); err != nil {
		tb.Fatal(err)
	}
	// create does not keep ssh-port in the session's configuration: without
	// this, the monitor connects to port 22.
	configs := [][2]string{{"ssh_port", port}, {"change_interval", strconv.Itoa(k.changeInterval)}}
	if !k.gsyncdStock {
		configs = append(configs, [2]string{"secondary-access-mount", "true"})
	}
	for _, kv := range configs {
		if _, err := glusterCLI(s.cmd("config", kv[0], kv[1])...); err != nil {
			tb.Fatal(err)
		}
	}
	return s
}

func (s *gsyncdSession) cmd(args ...string) []string {
	return append(append([]string{}, s.sessionArgs...), args...)
}

func (s *gsyncdSession) start(tb testing.TB) {
	tb.Helper()
	if _, err := glusterCLI(s.cmd("start")...); err != nil {
		tb.Fatal(err)
	}
}

var (
	statusRE = regexp.MustCompile(`<status>([^<]*)</status>`)
	crawlRE  = regexp.MustCompile(`<crawl_status>([^<]*)</crawl_status>`)
)

// status returns the worker's status and crawl status from `status --xml`.
func (s *gsyncdSession) status() (status, crawl string, err error) {
	out, err := glusterCLI(s.cmd("status", "--xml")...)
	if err != nil {
		return "", "", err
	}
	if m := statusRE.FindStringSubmatch(out); m != nil {
		status = m[1]
	}
	if m := crawlRE.FindStringSubmatch(out); m != nil {
		crawl = m[1]
	}
	return status, crawl, nil
}

// waitCrawl waits up to timeout for the worker to be Active in crawl (e.g.
// "Changelog Crawl").
func (s *gsyncdSession) waitCrawl(crawl string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		st, cr, err := s.status()
		if err == nil && st == "Active" && cr == crawl {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gsyncd not Active in %s after %s: status %q, crawl %q, %v", crawl, timeout, st, cr, err)
		}
		time.Sleep(time.Second)
	}
}

// diag returns the session's status and the end of its log, for a failure.
func (s *gsyncdSession) diag() string {
	st, cr, err := s.status()
	log, _ := os.ReadFile(filepath.Join(s.logDir, "gsyncd.log"))
	return fmt.Sprintf("gsyncd status %q, crawl %q (%v); end of %s:\n%s", st, cr, err, filepath.Join(s.logDir, "gsyncd.log"), tail(string(log), 15))
}

// remove stops and deletes the session and makes sure nothing of it keeps
// running or mounted.
func (s *gsyncdSession) remove(tb testing.TB) {
	if _, err := glusterCLI(s.cmd("stop", "force")...); err != nil {
		tb.Logf("%v", err)
	}
	if _, err := glusterCLI(s.cmd("delete", "reset-sync-time")...); err != nil {
		tb.Errorf("%v", err)
	}
	// gsyncd's processes name the master volume on their command lines; the
	// name is unique to this benchmark.
	deadline := time.Now().Add(30 * time.Second)
	for {
		pids := gsyncdProcs(s.master)
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			for _, p := range pids {
				cmdline, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p), "cmdline"))
				tb.Logf("gsyncd process %d of the session still running 30s after stop: SIGTERM: %s", p, strings.ReplaceAll(string(cmdline), "\x00", " "))
				syscall.Kill(p, syscall.SIGTERM)
			}
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, m := range mountsOf(s.master, s.slave) {
		tb.Logf("gsyncd left %s mounted: unmounting it", m)
		if out, err := exec.Command("umount", "-l", m).CombinedOutput(); err != nil {
			tb.Errorf("umount -l %s: %v\n%s", m, err, out)
		}
	}
}

// gsyncdProcs returns the pids of gsyncd processes (gsyncd.py run by
// python, the gsyncd wrapper, or ssh running gsyncd on the slave) whose
// command line names vol.
func gsyncdProcs(vol string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		var isGsyncd, names bool
		for _, arg := range strings.Split(strings.TrimRight(string(b), "\x00"), "\x00") {
			for _, word := range strings.Fields(arg) { // ssh passes the remote command as one argument
				base := filepath.Base(word)
				isGsyncd = isGsyncd || base == "gsyncd.py" || base == "gsyncd"
				names = names || word == vol
			}
		}
		if isGsyncd && names {
			pids = append(pids, pid)
		}
	}
	return pids
}

// mountsOf returns the mount points of this process's mount namespace whose
// source is one of the volumes (host:volume).
func mountsOf(vols ...string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for line := range strings.SplitSeq(string(b), "\n") {
		// ... mount-point ... - fstype source options
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 2 || !strings.HasPrefix(g[0], "fuse.glusterfs") {
			continue
		}
		_, vol, _ := strings.Cut(g[1], ":")
		for _, v := range vols {
			if vol == v && strings.HasPrefix(f[4], "/tmp/gsyncd-") {
				out = append(out, f[4])
			}
		}
	}
	return out
}

var errNoGsyncd = errors.New("gsyncd is not installed")

// requireGsyncd checks that the geo-replication daemon and its Python
// sources are where Debian's glusterfs packages put them.
func requireGsyncd() error {
	for _, p := range []string{"/usr/lib/x86_64-linux-gnu/glusterfs/gsyncd", "/usr/lib/x86_64-linux-gnu/glusterfs/python/syncdaemon/gsyncd.py"} {
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %s missing (Debian package glusterfs-server)", errNoGsyncd, p)
		}
	}
	return nil
}
