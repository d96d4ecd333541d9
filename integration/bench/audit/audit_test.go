// Package audit measures what the master's audit costs: time and bytes on
// the link for a whole round, without and with file contents, at 0 and
// 50 ms round trip (make bench-audit; GEOREP_BENCH_SCALE files, default
// 200,000 of 4 KiB).
package audit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/georep/georep/integration/harness"
)

func files() int {
	if n, err := strconv.Atoi(strings.ReplaceAll(os.Getenv("GEOREP_BENCH_SCALE"), "k", "000")); err == nil && n > 0 {
		return n
	}
	return 200000
}

func BenchmarkAudit(b *testing.B) {
	harness.RequireRsync(b)
	n := files()
	dir := b.TempDir()
	src, replica := filepath.Join(dir, "src"), filepath.Join(dir, "replica")
	if err := os.Mkdir(replica, 0o755); err != nil {
		b.Fatal(err)
	}
	total, err := harness.PopulateFlat(src, n, 4096)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Printf("audit cost: %d files of 4 KiB (%s) in %s\n", n, mib(total), dir)
	slave := harness.StartSlave(b, replica)
	work := filepath.Join(dir, "work")
	for _, rtt := range []time.Duration{0, 50 * time.Millisecond} {
		var p *harness.Proxy
		if rtt == 0 {
			p = harness.StartProxy(b, slave.Addr)
		} else {
			p = harness.StartDelayProxy(b, slave.Addr, rtt/2)
		}
		m := harness.StartMasterProc(b, nil, harness.MasterArgs(p.Addr, src, work, "--audit-rate", "none", "--sync-xattrs")...)
		if diffs, err := harness.WaitConverged(src, replica, harness.CompareOptions{}, 30*time.Minute); err != nil || len(diffs) > 0 {
			b.Fatalf("first sync: %v %v\n%s", err, diffs, harness.Tail(m.Log(), 30))
		}
		waitIdle(b, work)
		for _, content := range []bool{false, true} {
			args := []string{"--work-dir", work, "audit", "--wait"}
			if content {
				args = append(args, "--content")
			}
			_, _, up0, down0 := p.Stats()
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			start := time.Now()
			code, out := harness.Run(b, ctx, nil, "georepctl", args...)
			d := time.Since(start)
			cancel()
			_, _, up1, down1 := p.Stats()
			if code != 0 || !strings.Contains(out, " 0 differences") {
				b.Fatalf("georepctl %s: exit %d\n%s\n%s", strings.Join(args, " "), code, out, harness.Tail(m.Log(), 30))
			}
			fmt.Printf("  RTT %-5s audit%-10s %8.2f s   link: %s master to slave, %s back (%.0f B/file)   %s\n", rtt, map[bool]string{true: " --content"}[content],
				d.Seconds(), mib(up1-up0), mib(down1-down0), float64(up1-up0+down1-down0)/float64(n), loadavg())
		}
		m.Kill()
	}
}

// waitIdle waits until the daemon's first pass is over (its stime set): the
// audit then has the worker to itself.
func waitIdle(b *testing.B, work string) {
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		code, out := harness.Run(b, ctx, nil, "georepctl", "--work-dir", work, "status", "--json")
		cancel()
		if code == 0 && harness.AllSynced(out) {
			return
		}
		time.Sleep(time.Second)
	}
	b.Fatal("the daemon did not finish its first pass")
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return "(load " + strings.Join(f[:3], " ") + ")"
}
