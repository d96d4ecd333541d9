package bench

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
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	sshdBin     = "/usr/sbin/sshd"
	sshdPackage = "openssh-server" // Debian's; the Makefile's DEB_PACKAGES should list it
	privsepDir  = "/run/sshd"      // sshd refuses to start without it
)

// requireSSHD installs Debian's openssh-server when sshd is missing. The
// package's service is not started: sshd runs only as startSSHD starts it.
func requireSSHD(tb testing.TB) {
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
		tb.Logf("apt-get install %s: %v\n%s\nrunning apt-get update first", sshdPackage, err, tail(out, 10))
		if out, err := exec.CommandContext(ctx, "apt-get", "update").CombinedOutput(); err != nil {
			tb.Fatalf("apt-get update: %v\n%s", err, tail(string(out), 10))
		}
		if out, err := install(); err != nil {
			tb.Fatalf("apt-get install %s: %v\n%s", sshdPackage, err, tail(out, 20))
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

// sshd is an sshd this benchmark started in the foreground (-D), our child,
// listening on 127.0.0.1 only, with its own configuration and host key.
type sshd struct {
	port int
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

// startSSHD starts sshd on a free loopback port with the configuration and
// host key in a temporary directory, waits until it accepts connections,
// and stops it (and the session processes it forked) when the benchmark
// ends.
func startSSHD(tb testing.TB) *sshd {
	tb.Helper()
	requireSSHD(tb)
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
	cfg := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile %s
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AuthorizedKeysFile .ssh/authorized_keys
Subsystem sftp internal-sftp
LogLevel INFO
`, port, hostKey, filepath.Join(dir, "sshd.pid"))
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		tb.Fatal(err)
	}
	s := &sshd{port: port, out: &lockedBuffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(sshdBin, "-D", "-e", "-f", conf)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		tb.Fatalf("start sshd: %v", err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	tb.Cleanup(func() { s.stop(tb) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			c.Close()
			break
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
	tb.Logf("sshd (pid %d) on 127.0.0.1:%d", s.cmd.Process.Pid, port)
	return s
}

// stop ends sshd and then the session processes it had forked (gsyncd's
// connections end with its session; whatever is left is ours), by pid.
func (s *sshd) stop(tb testing.TB) {
	pid := s.cmd.Process.Pid
	kids := descendants(pid)
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	for _, k := range kids {
		if alive(k) {
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

// descendants returns the pids of the live processes below pid.
func descendants(pid int) []int {
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

func alive(pid int) bool {
	_, ok := ppid(pid)
	return ok
}

// lockedBuffer collects a process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(parts[max(0, len(parts)-lines):], "\n")
}
