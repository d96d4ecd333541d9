package scale

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// run is one measured run of a process.
type run struct {
	dur time.Duration
	// maxRSS is the peak resident set size from wait4's rusage, in bytes: of
	// the process and of every descendant it waited for, whichever was
	// largest (Linux reports the maximum, not a sum).
	maxRSS int64
	// selfHWM is the process's own VmHWM as last sampled before it exited
	// (every 200 ms), in bytes: a lower bound of its own peak, to tell it
	// from its children's.
	selfHWM int64
	// peakAnon and peakFile split the largest VmRSS sampled into anonymous
	// memory (Go's heap, stacks) and file pages mapped (the binary, shared libraries; bbolt mapped the
	// catalog), bytes.
	peakAnon, peakFile int64
	code               int
	killed             string // why the benchmark killed it ("" when it was not)
}

// measure runs cmd to its end and returns its time and peak RSS. Its output
// goes to log, and the lines for which echo says true are printed too (with
// the time since the start). A process whose RSS passes maxRSS (0: no
// limit) is killed and reported so.
func measure(cmd *exec.Cmd, log io.Writer, echo func(string) bool, maxRSS int64, what string) (run, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return run{}, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	// Killed with this process (a test timeout, an interrupt) rather than
	// left running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return run{}, err
	}
	pw.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(log, line)
			if echo != nil && echo(line) {
				fmt.Printf("    %s +%s: %s\n", what, time.Since(start).Round(time.Second), shorten(compact(line), 300))
			}
		}
		io.Copy(io.Discard, pr)
		pr.Close()
	}()

	var hwm, rss, peakRSS, peakAnon, peakFile atomic.Int64
	var killed atomic.Pointer[string]
	done := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			m := procMem(cmd.Process.Pid)
			r := m.rss
			if m.hwm > 0 {
				hwm.Store(m.hwm)
				rss.Store(r)
			}
			if r > peakRSS.Load() {
				peakRSS.Store(r)
				peakAnon.Store(m.anon)
				peakFile.Store(m.file)
			}
			if maxRSS > 0 && r > maxRSS && killed.Load() == nil {
				why := fmt.Sprintf("killed by the benchmark: RSS %s passed the limit %s (GEOREP_BENCH_MAX_RSS)", mb(r), mb(maxRSS))
				killed.Store(&why)
				cmd.Process.Kill()
			}
			if time.Since(last) >= 30*time.Second {
				last = time.Now()
				fmt.Printf("    %s: running %s, RSS %s (peak %s)\n", what, time.Since(start).Round(time.Second), mb(rss.Load()), mb(hwm.Load()))
			}
		}
	}()
	werr := cmd.Wait()
	r := run{dur: time.Since(start)}
	close(done)
	sampler.Wait()
	wg.Wait()
	r.selfHWM = hwm.Load()
	r.peakAnon, r.peakFile = peakAnon.Load(), peakFile.Load()
	if k := killed.Load(); k != nil {
		r.killed = *k
	}
	if ps := cmd.ProcessState; ps != nil {
		r.code = ps.ExitCode()
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			r.maxRSS = ru.Maxrss << 10 // KiB on Linux
		}
	}
	var ee *exec.ExitError
	if werr != nil && !errors.As(werr, &ee) {
		return r, werr
	}
	return r, nil
}

// mem is a process's memory from /proc/PID/status, in bytes.
type mem struct {
	hwm, rss   int64 // VmHWM (peak RSS so far), VmRSS
	anon, file int64 // RssAnon, RssFile: the parts of VmRSS
}

// procMem reads the memory of pid; zeros when the process is gone.
func procMem(pid int) mem {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return mem{}
	}
	s := string(b)
	return mem{hwm: kbField(s, "VmHWM:"), rss: kbField(s, "VmRSS:"), anon: kbField(s, "RssAnon:"), file: kbField(s, "RssFile:")}
}

// masterEcho picks the master's log lines worth showing while it runs: the
// crawl's start and end, progress, convergence, warnings and errors.
func masterEcho(line string) bool {
	for _, s := range []string{"msg=progress", `msg="hybrid crawl`, `msg="converged`, "level=WARN", "level=ERROR"} {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

// compact drops what a log line says that the benchmark already knows: the
// time, the level when it is INFO, the source and changelog paths.
func compact(line string) string {
	var keep []string
	for _, f := range strings.Fields(line) {
		if strings.HasPrefix(f, "time=") || f == "level=INFO" || strings.HasPrefix(f, "source=") || strings.HasPrefix(f, "changelog=") {
			continue
		}
		keep = append(keep, f)
	}
	return strings.Join(keep, " ")
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// mb formats bytes as MB (10^6 bytes), the unit of the table.
func mb(n int64) string {
	switch {
	case n <= 0:
		return "—"
	case n < 10e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.0f MB", float64(n)/1e6)
}

// gb formats bytes as GB (10^9 bytes).
func gb(n int64) string { return fmt.Sprintf("%.1f GB", float64(n)/1e9) }

// withTimeout is a context for one pass.
func withTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
