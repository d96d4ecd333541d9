package harness

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RequireRoot skips the test when not run as root.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: " + why)
	}
}

// Proc is a georep process started in the background by a test; its
// combined stdout and stderr is kept.
type Proc struct {
	Cmd  *exec.Cmd
	log  *lockedBuffer
	done chan struct{}
	code int // exit code once done; -1 when killed by a signal
}

// StartProc starts bin (a georep binary name, or an absolute path) with args
// and, when env is not nil, exactly that environment. The process is killed
// when the test ends; its output is logged if the test failed.
func StartProc(t testing.TB, env []string, bin string, args ...string) *Proc {
	t.Helper()
	if !filepath.IsAbs(bin) {
		bin = Bin(t, bin)
	}
	cmd := exec.Command(bin, args...)
	if env != nil {
		cmd.Env = env
	}
	p := &Proc{Cmd: cmd, log: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	// The write end of the output pipe is inherited by children (rsync and
	// its tunnel are started with their own pipes, but be safe): do not let
	// Wait block on them for long after the process itself is gone.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		err := cmd.Wait()
		p.code = 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.code = ee.ExitCode()
		} else if err != nil && cmd.ProcessState != nil {
			p.code = cmd.ProcessState.ExitCode()
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		KeepLog(t, bin, p.Log())
		if t.Failed() {
			t.Logf("%s %s log:\n%s", filepath.Base(bin), strings.Join(args, " "), Tail(p.Log(), 40))
		}
	})
	return p
}

// StartMasterProc starts georep-master in the background (see StartProc).
func StartMasterProc(t testing.TB, env []string, args ...string) *Proc {
	t.Helper()
	return StartProc(t, env, "georep-master", args...)
}

// Log returns what the process has printed so far.
func (p *Proc) Log() string { return p.log.String() }

// Kill sends SIGKILL to the process (only it, not its children) and waits
// for it to be reaped.
func (p *Proc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
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

// Wait waits up to timeout for the process to end and returns its exit code;
// ok is false when it was still running at the deadline.
func (p *Proc) Wait(timeout time.Duration) (code int, ok bool) {
	select {
	case <-p.done:
		return p.code, true
	case <-time.After(timeout):
		return 0, false
	}
}

// WaitLog polls the process output until it contains substr, the process
// ends, or timeout passes. It reports whether substr was seen.
func (p *Proc) WaitLog(substr string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if strings.Contains(p.Log(), substr) {
			return true
		}
		if p.Exited() || time.Now().After(deadline) {
			return strings.Contains(p.Log(), substr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Run runs bin (a georep binary name or an absolute path) with args and, when
// env is not nil, exactly that environment, and returns its exit code and
// combined output. ctx bounds it.
func Run(t testing.TB, ctx context.Context, env []string, bin string, args ...string) (int, string) {
	t.Helper()
	return RunIn(t, ctx, "", env, bin, args...)
}

// RunIn is Run in the working directory dir ("": this process's).
func RunIn(t testing.TB, ctx context.Context, dir string, env []string, bin string, args ...string) (int, string) {
	t.Helper()
	if !filepath.IsAbs(bin) {
		bin = Bin(t, bin)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = env
	}
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		}
		t.Fatalf("run %s: %v\n%s", bin, err, out)
	}
	return 0, string(out)
}

// StartSlaveAt starts georep-slave serving root on a given address (see
// StartSlave).
func StartSlaveAt(t testing.TB, root, listen string, extra ...string) *Slave {
	t.Helper()
	return startSlave(t, root, listen, extra...)
}

// FreeAddr returns a loopback address nothing listens on (a port the kernel
// just handed out and that was closed again).
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// ProcsMentioning returns the pids of the processes (other than this one)
// whose command line contains marker, e.g. a test's unique temporary
// directory: the rsync and rsync-tunnel children a killed master left behind.
func ProcsMentioning(marker string) []int {
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
		if strings.Contains(string(b), marker) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// KillProcsMentioning SIGKILLs the processes ProcsMentioning(marker) finds
// and returns how many there were. marker must be unique to the test (its
// temporary directory), so that only processes the test started are hit.
func KillProcsMentioning(marker string) int {
	pids := ProcsMentioning(marker)
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	return len(pids)
}

// WaitNoProcsMentioning waits up to timeout for every process mentioning
// marker to end and returns the pids still running at the deadline.
func WaitNoProcsMentioning(marker string, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	for {
		pids := ProcsMentioning(marker)
		// Zombies of reaped-later children still have a cmdline of "": they
		// are not listed; a process being torn down is.
		if len(pids) == 0 || time.Now().After(deadline) {
			return pids
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WaitConverged polls Compare until src and dst are equal or timeout passes;
// it returns the last differences (nil when converged).
func WaitConverged(src, dst string, opts CompareOptions, timeout time.Duration) ([]string, error) {
	deadline := time.Now().Add(timeout)
	delay := 100 * time.Millisecond
	for {
		diffs, err := Compare(src, dst, opts)
		if err == nil && len(diffs) == 0 {
			return nil, nil
		}
		if time.Now().After(deadline) {
			return diffs, err
		}
		time.Sleep(delay)
		delay = min(delay*2, time.Second)
	}
}

// Grpcurl returns the path of grpcurl from PATH or the repo's .tools/bin
// (make tools), or "" when it is not installed.
func Grpcurl() string {
	if p, err := exec.LookPath("grpcurl"); err == nil {
		return p
	}
	// The tests run in <repo>/integration.
	for _, dir := range []string{"../.tools/bin", ".tools/bin"} {
		p, err := filepath.Abs(filepath.Join(dir, "grpcurl"))
		if err != nil {
			continue
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// PopulateLoad fills root with small files (random sizes below 4 KiB, spread
// over 30 directories) and big files of bigSize bytes: a tree whose initial
// sync takes a few seconds, to be interrupted.
func PopulateLoad(root string, rng *rand.Rand, small, big int, bigSize int64) error {
	buf := make([]byte, 4096)
	for i := range small {
		d := filepath.Join(root, fmt.Sprintf("d%02d", i%30))
		if i < 30 {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		n := rng.IntN(len(buf))
		for j := range n {
			buf[j] = byte(rng.Uint32())
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%04d", i)), buf[:n], 0o644); err != nil {
			return err
		}
	}
	chunk := make([]byte, 1<<20)
	for i := range big {
		f, err := os.Create(filepath.Join(root, fmt.Sprintf("big%d", i)))
		if err != nil {
			return err
		}
		for off := int64(0); off < bigSize; off += int64(len(chunk)) {
			for j := 0; j < len(chunk); j += 8 {
				v := rng.Uint64()
				for k := 0; k < 8; k++ {
					chunk[j+k] = byte(v >> (8 * k))
				}
			}
			n := min(int64(len(chunk)), bigSize-off)
			if _, err := f.Write(chunk[:n]); err != nil {
				f.Close()
				return err
			}
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

// Env returns this process's environment without any GEOREP_* variable,
// plus kv ("KEY=value" each).
func Env(kv ...string) []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "GEOREP_") {
			env = append(env, e)
		}
	}
	return append(env, kv...)
}
