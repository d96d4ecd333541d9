package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/georep/georep/integration/harness"
)

func makeTree(b *testing.B, root string, files, size int) int64 {
	b.Helper()
	total, err := harness.PopulateFlat(root, files, size)
	if err != nil {
		b.Fatal(err)
	}
	return total
}

func dropCaches() {
	exec.Command("sync").Run()
}

// rounds is how many times each tool runs; the median is reported. The disks
// of virtual machines vary by several times from one minute to the next, so
// the two tools alternate and each gets the same conditions on average.
func rounds() int {
	if n, err := strconv.Atoi(os.Getenv("GEOREP_BENCH_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 3
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func compare(b *testing.B, name string, files, size int) {
	harness.RequireRsync(b)
	dir := b.TempDir()
	src := filepath.Join(dir, "src")
	bytes := makeTree(b, src, files, size)

	var rsyncTimes, georepTimes, rsyncCPU, georepCPU []time.Duration
	for round := range rounds() {
		// Local rsync -a into an empty directory.
		dropCaches()
		start := time.Now()
		cmd := exec.Command("rsync", "-a", src+"/", filepath.Join(dir, fmt.Sprintf("rsync-dst-%d", round))+"/")
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("rsync: %v\n%s", err, out)
		}
		rsyncTimes = append(rsyncTimes, time.Since(start))
		// rsync's CPU includes its receiver's (a child it waits for).
		rsyncCPU = append(rsyncCPU, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())

		// georep: a slave on loopback and one --oneshot pass into an empty replica.
		replica := filepath.Join(dir, fmt.Sprintf("replica-%d", round))
		os.Mkdir(replica, 0o755)
		slave := harness.StartSlave(b, replica)
		dropCaches()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		start = time.Now()
		_, masterCPU := harness.MustOneshotCPU(b, ctx, harness.MasterArgs(slave.Addr, src, filepath.Join(dir, fmt.Sprintf("work-%d", round)))...)
		georepTimes = append(georepTimes, time.Since(start))
		cancel()
		slave.Stop()
		// Master, slave and every rsync and tunnel of either.
		georepCPU = append(georepCPU, masterCPU+slave.CPU())
		if round == 0 {
			diffs, err := harness.Compare(src, replica, harness.CompareOptions{})
			if err != nil || len(diffs) > 0 {
				b.Fatalf("replica differs: %v %v", err, diffs)
			}
		}
	}
	rsyncTime, georepTime := median(rsyncTimes), median(georepTimes)
	mib := float64(bytes) / (1 << 20)
	fps := func(d time.Duration) float64 { return float64(files) / d.Seconds() }
	mbs := func(d time.Duration) float64 { return mib / d.Seconds() }
	b.ReportMetric(fps(georepTime), "georep-files/s")
	b.ReportMetric(mbs(georepTime), "georep-MiB/s")
	b.ReportMetric(fps(rsyncTime), "rsync-files/s")
	b.ReportMetric(mbs(rsyncTime), "rsync-MiB/s")
	b.ReportMetric(rsyncTime.Seconds()/georepTime.Seconds(), "ratio")
	gib := float64(bytes) / (1 << 30)
	perGiB := func(d time.Duration) float64 { return d.Seconds() / gib }
	b.ReportMetric(perGiB(median(georepCPU)), "georep-cpu-s/GiB")
	b.ReportMetric(perGiB(median(rsyncCPU)), "rsync-cpu-s/GiB")
	fmt.Printf("\n%-28s %10s %12s %10s   (median of %d; all runs: rsync %v, georep %v)\n", name, "seconds", "files/s", "MiB/s",
		len(rsyncTimes), roundAll(rsyncTimes), roundAll(georepTimes))
	fmt.Printf("%-28s %10.2f %12.0f %10.1f\n", "  rsync -a (local)", rsyncTime.Seconds(), fps(rsyncTime), mbs(rsyncTime))
	fmt.Printf("%-28s %10.2f %12.0f %10.1f\n", "  georep --oneshot", georepTime.Seconds(), fps(georepTime), mbs(georepTime))
	fmt.Printf("%-28s %10.2fx\n", "  georep rate / rsync rate", rsyncTime.Seconds()/georepTime.Seconds())
	fmt.Printf("%-28s %10.2f   (all runs: rsync %v, georep %v)\n", "  CPU s/GiB, rsync -a", perGiB(median(rsyncCPU)), roundAll(rsyncCPU), roundAll(georepCPU))
	fmt.Printf("%-28s %10.2f   (master, slave and their rsyncs)\n", "  CPU s/GiB, georep", perGiB(median(georepCPU)))
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(10 * time.Millisecond)
	}
	return out
}

// BenchmarkSmallFiles: 20,000 files of 4 KiB.
func BenchmarkSmallFiles(b *testing.B) { compare(b, "20,000 x 4 KiB", 20000, 4<<10) }

// BenchmarkLargeFiles: 4 files of 256 MiB.
func BenchmarkLargeFiles(b *testing.B) { compare(b, "4 x 256 MiB", 4, 256<<20) }
