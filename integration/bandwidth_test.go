package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/georep/georep/integration/harness"
)

// bwBurst is the most the master's bucket lets through beyond the rate:
// 50 ms of it, at least 16 KiB (rpc/bwlimit).
func bwBurst(rate float64) float64 { return max(rate/20, 16<<10) }

// bwTree fills a fresh source with big files and small ones (WriteFiles,
// in the master's gRPC connection): bigMiB MiB in 4 MiB files and smallMiB
// MiB in 128 KiB files. Of the big files, the even ones are dense (new
// files: the WriteFile stream, in the master's gRPC connection) and the odd
// ones begin with a hole of 1 MiB (rsync's path, through the tunnels).
func bwTree(t *testing.T, bigMiB, smallMiB int) (string, int64) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	rng := rand.New(rand.NewPCG(16, 3))
	var total int64
	write := func(dir string, i, size, hole int) {
		b := make([]byte, size-hole)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		if err := os.MkdirAll(filepath.Join(src, dir), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(filepath.Join(src, dir, fmt.Sprintf("f%03d", i)))
		if err == nil {
			_, err = f.WriteAt(b, int64(hole))
		}
		if err == nil {
			err = f.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
		total += int64(size)
	}
	for i := range bigMiB / 4 {
		write("big", i, 4<<20, (i%2)<<20)
	}
	for i := range smallMiB * 8 {
		write(fmt.Sprintf("small%d", i%4), i, 128<<10, 0)
	}
	return src, total
}

// TestBandwidthLimit: with --bandwidth-limit, what the master sends to
// the slave — its gRPC connection (entry ops, small files in WriteFiles,
// new big files in WriteFile streams) and the rsync tunnels (big files
// with holes) together — stays under the limit: the
// bytes a proxy in front of the slave saw come from the master, over the
// time the --oneshot run took, are at most the rate (and one burst), and
// at least half of it. Then live: a daemon started at 1MiB/s keeps to it
// over a window, and after `georepctl config set bandwidth-limit none`
// sends several times faster.
func TestBandwidthLimit(t *testing.T) {
	harness.RequireRsync(t)
	t.Run("oneshot", func(t *testing.T) {
		const limit = 4 << 20
		src, total := bwTree(t, 16, 8)
		_, replica, work := roundDirs(t)
		proxy := harness.StartProxy(t, harness.StartSlave(t, replica).Addr)
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
		defer cancel()
		start := time.Now()
		harness.MustOneshot(t, ctx, harness.MasterArgs(proxy.Addr, src, work, "--bandwidth-limit", "4MiB/s", "--oneshot-timeout", "2m")...)
		d := time.Since(start)
		mustConverge(t, src, replica, harness.CompareOptions{}, "after the limited sync")
		_, _, up, down := proxy.Stats()
		rate := float64(up) / d.Seconds()
		t.Logf("%.1f MiB of files: the master sent %.1f MiB in %s (%.2f MiB/s, limit 4MiB/s), received %.2f MiB",
			float64(total)/(1<<20), float64(up)/(1<<20), d.Round(time.Millisecond), rate/(1<<20), float64(down)/(1<<20))
		if up < total {
			t.Fatalf("the proxy saw %d bytes from the master, fewer than the %d of the files: not everything went through it", up, total)
		}
		if allowed := float64(limit)*d.Seconds() + 2*bwBurst(limit); float64(up) > allowed {
			t.Errorf("sent %d bytes in %s: above the limit (%.0f allowed: the rate over that time and two bursts)", up, d, allowed)
		}
		if rate < limit/2 {
			t.Errorf("sent %.2f MiB/s: under half the limit of 4MiB/s", rate/(1<<20))
		}
	})
	t.Run("live", func(t *testing.T) {
		const limit = 1 << 20
		const window = 3 * time.Second
		src, total := bwTree(t, 32, 0)
		_, replica, work := roundDirs(t)
		proxy := harness.StartProxy(t, harness.StartSlave(t, replica).Addr)
		m := harness.StartMasterProc(t, nil, harness.MasterArgs(proxy.Addr, src, work, "--bandwidth-limit", "1MiB/s")...)
		t.Cleanup(func() { harness.KillProcsMentioning(work) })
		// Past the session's start, a window of the limited transfer.
		deadline := time.Now().Add(time.Minute)
		for {
			if _, _, up, _ := proxy.Stats(); up > 1<<20 {
				break
			}
			if m.Exited() || time.Now().After(deadline) {
				t.Fatalf("the master sent nothing for a minute:\n%s", lastLines(m.Log(), 30))
			}
			time.Sleep(50 * time.Millisecond)
		}
		_, _, up0, _ := proxy.Stats()
		t0 := time.Now()
		time.Sleep(window)
		_, _, up1, _ := proxy.Stats()
		d := time.Since(t0)
		limited := float64(up1-up0) / d.Seconds()
		if allowed := float64(limit) + 2*bwBurst(limit)/d.Seconds(); limited > allowed {
			t.Errorf("at --bandwidth-limit 1MiB/s the master sent %.2f MiB/s over %s", limited/(1<<20), d.Round(time.Millisecond))
		}
		if limited < limit/2 {
			t.Errorf("at --bandwidth-limit 1MiB/s the master sent only %.2f MiB/s over %s", limited/(1<<20), d.Round(time.Millisecond))
		}
		if code, out := ctl(t, "--work-dir", work, "config", "set", "bandwidth-limit", "none"); code != 0 {
			t.Fatalf("georepctl config set bandwidth-limit none: exit %d\n%s", code, out)
		}
		if code, out := ctl(t, "--work-dir", work, "config", "get", "bandwidth-limit"); code != 0 || !containsWord(out, "none") {
			t.Errorf("georepctl config get bandwidth-limit after setting none: exit %d\n%s", code, out)
		}
		t1 := time.Now()
		_, _, up2, _ := proxy.Stats()
		if diffs, err := harness.WaitConverged(src, replica, harness.CompareOptions{}, 2*time.Minute); err != nil || len(diffs) > 0 {
			t.Fatalf("not converged 2 minutes after the limit was lifted: %v %q\n%s", err, diffs[:min(5, len(diffs))], lastLines(m.Log(), 30))
		}
		d = time.Since(t1)
		_, _, up3, _ := proxy.Stats()
		lifted := float64(up3-up2) / d.Seconds()
		t.Logf("%.0f MiB: %.2f MiB/s at 1MiB/s, then %.1f MiB in %s (%.2f MiB/s) after the limit was lifted",
			float64(total)/(1<<20), limited/(1<<20), float64(up3-up2)/(1<<20), d.Round(time.Millisecond), lifted/(1<<20))
		if lifted < 3*limit {
			t.Errorf("after config set bandwidth-limit none the master sent %.2f MiB/s, not faster than the 1MiB/s limit it had", lifted/(1<<20))
		}
	})
}

// containsWord reports whether out has w as a whole field.
func containsWord(out, w string) bool {
	return slices.Contains(strings.FieldsFunc(out, func(r rune) bool { return unicode.IsSpace(r) || r == '=' || r == ':' }), w)
}
