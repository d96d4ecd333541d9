// Package harness runs georep's real binaries for end-to-end tests and
// benchmarks: it builds (or finds) georep-master and georep-slave, starts a
// slave on a loopback port, runs masters, and compares whole trees; and it
// populates and mutates the trees they replicate (Populate, Mutate, Burst).
// It has no gsyncd counterpart.
package harness

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// Bin returns the path of a georep binary: from $GEOREP_BIN when set (the
// Makefile builds into ./bin), else built once into a temporary directory.
func Bin(t testing.TB, name string) string {
	t.Helper()
	if dir := os.Getenv("GEOREP_BIN"); dir != "" {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("GEOREP_BIN=%s: %v (run make build)", dir, err)
		}
		return p
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "georep-bin-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-buildvcs=auto", "-o", binDir+"/", "github.com/georep/georep/cmd/...")
		cmd.Stderr = os.Stderr
		buildErr = cmd.Run()
	})
	if buildErr != nil {
		t.Fatalf("building georep: %v", buildErr)
	}
	return filepath.Join(binDir, name)
}

// RequireRsync skips the test when rsync is not installed.
func RequireRsync(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Skip("rsync not installed (make deps installs the Debian package rsync)")
	}
}

// Slave is a running georep-slave process.
type Slave struct {
	Addr string
	Root string
	// Certs are the certificates the slave serves with, nil when it serves
	// plaintext (or with certificates the test passed in its own flags).
	Certs *Certs
	extra []string
	cmd   *exec.Cmd
	log   *lockedBuffer
	done  chan struct{}
}

var addrRE = regexp.MustCompile(`msg="slave serving" addr=(\S+)`)

// StartSlave starts georep-slave on 127.0.0.1 port 0 serving root and waits
// until it listens. It is stopped when the test ends.
//
// The slave requires mutual TLS with certificates made for the test (see
// Slave.Certs), and MasterArgs gives a master of its address the matching
// flags; unless extra says otherwise: with --insecure it serves plaintext
// (StartSlaveInsecure), with --tls-cert the caller's certificates.
func StartSlave(t testing.TB, root string, extra ...string) *Slave {
	t.Helper()
	return startSlave(t, root, "127.0.0.1:0", extra...)
}

// StartSlaveInsecure starts georep-slave serving plaintext (--insecure), for
// the tests about plaintext itself or tools that speak only plaintext.
func StartSlaveInsecure(t testing.TB, root string, extra ...string) *Slave {
	t.Helper()
	return startSlave(t, root, "127.0.0.1:0", append([]string{"--insecure"}, extra...)...)
}

func startSlave(t testing.TB, root, listen string, extra ...string) *Slave {
	t.Helper()
	tlsArgs, certs, decided := transportArgs(t, listen, extra)
	args := append([]string{"--listen", listen, "--root", root}, tlsArgs...)
	args = append(args, extra...)
	cmd := exec.Command(Bin(t, "georep-slave"), args...)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("start georep-slave: %v", err)
	}
	s := &Slave{Root: root, Certs: certs, extra: extra, cmd: cmd, log: &lockedBuffer{}, done: make(chan struct{})}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			s.log.WriteString(line + "\n")
			if m := addrRE.FindStringSubmatch(line); m != nil {
				select {
				case addrc <- m[1]:
				default:
				}
			}
		}
	}()
	go func() { cmd.Wait(); pw.Close(); close(s.done) }()
	select {
	case s.Addr = <-addrc:
	case <-s.done:
		t.Fatalf("georep-slave exited early:\n%s", s.log.String())
	case <-time.After(30 * time.Second):
		s.Kill()
		t.Fatalf("georep-slave did not start listening:\n%s", s.log.String())
	}
	if decided {
		register(t, s.Addr, certs)
	}
	t.Cleanup(func() {
		s.Stop()
		KeepLog(t, "georep-slave", s.log.String())
		if t.Failed() {
			t.Logf("georep-slave log:\n%s", s.log.String())
		}
	})
	return s
}

// StartSlaveTLS starts georep-slave with mutual TLS from certs; MasterArgs
// gives a master of its address certs' master certificate.
func StartSlaveTLS(t testing.TB, root string, c Certs, extra ...string) *Slave {
	t.Helper()
	s := StartSlave(t, root, append(c.SlaveArgs(), extra...)...)
	s.Certs = &c
	register(t, s.Addr, &c)
	return s
}

// Restart starts the slave again on the same address, with the same flags
// and certificates, after Kill or Stop.
func (s *Slave) Restart(t testing.TB) {
	t.Helper()
	certs := s.Certs
	n := startSlave(t, s.Root, s.Addr, s.extra...)
	if n.Certs == nil {
		n.Certs = certs
	}
	*s = *n
}

// Stop ends the slave with SIGTERM and waits.
func (s *Slave) Stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		s.Kill()
	}
}

// Kill ends the slave with SIGKILL and waits.
func (s *Slave) Kill() {
	s.cmd.Process.Kill()
	<-s.done
}

// CPU is the user and system time of the slave and of the processes it
// waited for (its rsync receivers), once it has exited (Stop, Kill); zero
// while it runs.
func (s *Slave) CPU() time.Duration {
	select {
	case <-s.done:
	default:
		return 0
	}
	ps := s.cmd.ProcessState
	if ps == nil {
		return 0
	}
	return ps.UserTime() + ps.SystemTime()
}

// Log returns what the slave has logged.
func (s *Slave) Log() string { return s.log.String() }

// MasterArgs are the arguments of a master replicating source to the slave
// at slaveAddr, with the TLS flags of the certificates the harness started
// that slave with (or a proxy to it). For an address the harness started no
// slave on (nothing listens yet, or a slave the test started itself) they
// say --insecure, and a slave StartSlaveAt starts there later serves
// plaintext to match.
func MasterArgs(slaveAddr, source, workDir string, extra ...string) []string {
	args := []string{"--slave", slaveAddr, "--source", source, "--work-dir", workDir}
	c, known := transportOf(slaveAddr)
	switch {
	case c != nil:
		args = append(args, c.MasterArgs()...)
	case !known:
		register(nil, slaveAddr, nil)
		fallthrough
	default:
		args = append(args, "--insecure")
	}
	return append(args, extra...)
}

// MasterArgsInsecure are MasterArgs for a plaintext master, whatever the
// slave at slaveAddr serves.
func MasterArgsInsecure(slaveAddr, source, workDir string, extra ...string) []string {
	return append([]string{"--slave", slaveAddr, "--source", source, "--work-dir", workDir, "--insecure"}, extra...)
}

// Oneshot runs georep-master --oneshot and returns its exit code and output.
func Oneshot(t testing.TB, ctx context.Context, args ...string) (int, string) {
	t.Helper()
	code, out, _ := oneshot(t, ctx, args...)
	return code, out
}

// oneshot runs georep-master --oneshot and returns its exit code, output and
// CPU time (user and system of the master and of the processes it waited
// for: its rsyncs and their tunnels).
func oneshot(t testing.TB, ctx context.Context, args ...string) (int, string, time.Duration) {
	t.Helper()
	cmd := exec.CommandContext(ctx, Bin(t, "georep-master"), append(args, "--oneshot")...)
	out, err := cmd.CombinedOutput()
	KeepLog(t, "georep-master-oneshot", string(out))
	var cpu time.Duration
	if ps := cmd.ProcessState; ps != nil {
		cpu = ps.UserTime() + ps.SystemTime()
	}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out), cpu
		}
		t.Fatalf("run georep-master: %v\n%s", err, out)
	}
	return 0, string(out), cpu
}

// MustOneshot runs georep-master --oneshot and fails the test unless it
// exits 0.
func MustOneshot(t testing.TB, ctx context.Context, args ...string) string {
	t.Helper()
	out, _ := MustOneshotCPU(t, ctx, args...)
	return out
}

// MustOneshotCPU is MustOneshot that also returns the CPU time of the
// master and of the processes it waited for (its rsyncs and their tunnels).
func MustOneshotCPU(t testing.TB, ctx context.Context, args ...string) (string, time.Duration) {
	t.Helper()
	code, out, cpu := oneshot(t, ctx, args...)
	if code != 0 {
		t.Fatalf("georep-master --oneshot exited %d:\n%s", code, Tail(out, 60))
	}
	return out, cpu
}

// StartMaster starts georep-master as a daemon; the caller kills it.
func StartMaster(t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(Bin(t, "georep-master"), args...)
	buf := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = buf, buf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start georep-master: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		KeepLog(t, "georep-master", buf.String())
		if t.Failed() {
			t.Logf("georep-master log:\n%s", Tail(buf.String(), 80))
		}
	})
	return cmd
}

// Tail returns the last lines of s (a log), saying how many were cut.
func Tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = append([]string{fmt.Sprintf("... (%d lines cut)", len(parts)-lines)}, parts[len(parts)-lines:]...)
	}
	return strings.Join(parts, "\n")
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) WriteString(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.WriteString(s)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
