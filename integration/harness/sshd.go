package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	sshdBin     = "/usr/sbin/sshd"
	sshdPackage = "openssh-server" // Debian's; the Makefile's DEB_PACKAGES should list it
	privsepDir  = "/run/sshd"      // sshd refuses to start without it
)

// RequireSSHD installs Debian's openssh-server when sshd is missing (and
// sshd's privilege separation user). The package's service is not started:
// sshd runs only as StartSSHD starts it.
func RequireSSHD(tb testing.TB) {
	tb.Helper()
	defer requirePrivsepUser(tb)
	if _, err := os.Stat(sshdBin); err == nil {
		return
	}
	tb.Logf("%s is missing: installing the Debian package %s", sshdBin, sshdPackage)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	install := func() (string, error) {
		cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "--no-install-recommends", sshdPackage)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := install(); err != nil {
		tb.Logf("apt-get install %s: %v\n%s\nrunning apt-get update first", sshdPackage, err, Tail(out, 10))
		if out, err := exec.CommandContext(ctx, "apt-get", "update").CombinedOutput(); err != nil {
			tb.Fatalf("apt-get update: %v\n%s", err, Tail(string(out), 10))
		}
		if out, err := install(); err != nil {
			tb.Fatalf("apt-get install %s: %v\n%s", sshdPackage, err, Tail(out, 20))
		}
	}
	if _, err := os.Stat(sshdBin); err != nil {
		tb.Fatalf("%s installed but %v", sshdPackage, err)
	}
}

// requirePrivsepUser creates sshd's privilege separation user when it is
// missing, as the package's postinst does (seen missing here after a
// restore of /etc/passwd: sshd then refuses to start).
func requirePrivsepUser(tb testing.TB) {
	tb.Helper()
	if _, err := user.Lookup("sshd"); err == nil {
		return
	}
	out, err := exec.Command("adduser", "--quiet", "--system", "--no-create-home", "--home", "/run/sshd",
		"--shell", "/usr/sbin/nologin", "sshd").CombinedOutput()
	if err != nil {
		tb.Fatalf("creating sshd's privilege separation user: %v\n%s", err, out)
	}
	tb.Log("created sshd's privilege separation user (the package's postinst would have)")
}

// SSHD is an sshd a test or benchmark started in the foreground (-D), its
// child, listening on 127.0.0.1 only, with its own configuration and host
// key. The GlusterFS benchmark runs gsyncd's sessions through one, the WAN
// benchmark rsync over ssh.
type SSHD struct {
	Port int
	Addr string // host:port
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

// SSHDOptions are what differs between the users of StartSSHD.
type SSHDOptions struct {
	// AuthorizedKeys, when not empty, is the only authorized_keys file, for
	// every user (an absolute path; StrictModes is off, since it lives in a
	// test's temporary directory under /tmp). Empty: each user's
	// ~/.ssh/authorized_keys, sshd's default and where gsyncd's
	// add_secret_pub writes.
	AuthorizedKeys string
	// Netns, when not nil, runs sshd in the pair's slave namespace,
	// listening on its address (the test cannot dial it there: sshd's
	// own "Server listening" says when it is ready).
	Netns *NetnsPair
}

// StartSSHD starts sshd on a free loopback port (or in a namespace, see
// SSHDOptions.Netns) with the configuration and host key in a temporary
// directory, waits until it accepts connections, and stops it (and the
// session processes it forked) when the test ends. Root may log in with a
// key (no password, no PAM).
func StartSSHD(tb testing.TB, opts SSHDOptions) *SSHD {
	tb.Helper()
	RequireSSHD(tb)
	dir := tb.TempDir()
	hostKey := filepath.Join(dir, "ssh_host_ed25519_key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostKey).CombinedOutput(); err != nil {
		tb.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	if _, err := os.Stat(privsepDir); errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(privsepDir, 0o755); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { os.Remove(privsepDir) })
	}
	port := freePort(tb)
	conf := filepath.Join(dir, "sshd_config")
	// AuthorizedKeysFile is sshd's default, and the place gsyncd's
	// add_secret_pub writes to when /etc/ssh/sshd_config does not say.
	keys, strict := ".ssh/authorized_keys", "yes"
	if opts.AuthorizedKeys != "" {
		keys, strict = opts.AuthorizedKeys, "no"
	}
	listen := "127.0.0.1"
	if opts.Netns != nil {
		listen = opts.Netns.SlaveIP
	}
	cfg := fmt.Sprintf(`Port %d
ListenAddress %s
HostKey %s
PidFile %s
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AuthorizedKeysFile %s
StrictModes %s
Subsystem sftp internal-sftp
LogLevel INFO
`, port, listen, hostKey, filepath.Join(dir, "sshd.pid"), keys, strict)
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		tb.Fatal(err)
	}
	s := &SSHD{Port: port, Addr: net.JoinHostPort(listen, strconv.Itoa(port)), out: &lockedBuffer{}, done: make(chan struct{})}
	bin, args := sshdBin, []string{"-D", "-e", "-f", conf}
	if opts.Netns != nil {
		bin, args = opts.Netns.Cmd(opts.Netns.Slave, append([]string{sshdBin}, args...)...)
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		tb.Fatalf("start sshd: %v", err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	tb.Cleanup(func() { s.stop(tb) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		if opts.Netns != nil {
			if strings.Contains(s.out.String(), "Server listening on") {
				break
			}
			err = errors.New("no \"Server listening\" in its log")
		} else {
			c, derr := net.DialTimeout("tcp", s.Addr, time.Second)
			if derr == nil {
				c.Close()
				break
			}
			err = derr
		}
		select {
		case <-s.done:
			tb.Fatalf("sshd exited at start: %v\n%s", s.cmd.ProcessState, s.out.String())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("sshd does not accept connections on port %d after 30s: %v\n%s", port, err, s.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Logf("sshd (pid %d) on %s", s.cmd.Process.Pid, s.Addr)
	return s
}

// Log returns what sshd has logged.
func (s *SSHD) Log() string { return s.out.String() }

// ClientKey makes a passphrase-less key pair in a temporary directory and
// returns the private key's path and an authorized_keys file listing its
// public half (for SSHDOptions.AuthorizedKeys).
func ClientKey(tb testing.TB) (key, authorizedKeys string) {
	tb.Helper()
	dir := tb.TempDir()
	key = filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "georep-test", "-f", key).CombinedOutput(); err != nil {
		tb.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		tb.Fatal(err)
	}
	authorizedKeys = filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorizedKeys, pub, 0o600); err != nil {
		tb.Fatal(err)
	}
	return key, authorizedKeys
}

// stop ends sshd and then the session processes it had forked (gsyncd's
// connections end with its session; whatever is left is ours), by pid.
func (s *SSHD) stop(tb testing.TB) {
	pid := s.cmd.Process.Pid
	kids := Descendants(pid)
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	for _, k := range kids {
		if Alive(k) {
			tb.Logf("sshd session process %d still running after sshd stopped: SIGTERM", k)
			syscall.Kill(k, syscall.SIGTERM)
		}
	}
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Descendants returns the pids of the live processes below pid.
func Descendants(pid int) []int {
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, ok := ppid(p); ok {
			parent[p] = pp
		}
	}
	var out []int
	for p := range parent {
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				out = append(out, p)
				break
			}
			if _, ok := parent[q]; !ok {
				break
			}
		}
	}
	return out
}

// ppid returns the parent of a live (not zombie) process.
func ppid(pid int) (int, bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 || f[0] == "Z" {
		return 0, false
	}
	pp, err := strconv.Atoi(f[1])
	return pp, err == nil
}

// Alive reports whether pid is a live process (not a zombie).
func Alive(pid int) bool {
	_, ok := ppid(pid)
	return ok
}
