package scale

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// config is what the environment asks of a run (see the package doc).
type config struct {
	sizes     []int64 // file counts, in the order they run
	perDir    int64   // files per directory
	fileSize  int64   // bytes per file
	base      string  // where the run's directory is made
	out       string  // the markdown table's file ("": bench-scale.md in the run's directory)
	maxRSS    int64   // a process past this RSS (bytes) is killed; 0: no limit
	passLimit time.Duration
	keep      bool // leave the trees, replicas, work dirs and logs behind
}

// defaultSizes are the sizes run when GEOREP_BENCH_SCALE is not set.
var defaultSizes = []int64{100_000, 1_000_000}

func loadConfig() (config, error) {
	c := config{sizes: defaultSizes, perDir: 1000, passLimit: 12 * time.Hour}
	var err error
	if s := os.Getenv("GEOREP_BENCH_SCALE"); s != "" {
		if c.sizes, err = parseCounts(s); err != nil {
			return c, fmt.Errorf("GEOREP_BENCH_SCALE: %w", err)
		}
	}
	if s := os.Getenv("GEOREP_BENCH_FILES_PER_DIR"); s != "" {
		if c.perDir, err = parseCount(s); err != nil || c.perDir < 1 {
			return c, fmt.Errorf("GEOREP_BENCH_FILES_PER_DIR=%q: want a count of at least 1", s)
		}
	}
	if s := os.Getenv("GEOREP_BENCH_FILE_SIZE"); s != "" {
		if c.fileSize, err = parseBytes(s); err != nil {
			return c, fmt.Errorf("GEOREP_BENCH_FILE_SIZE: %w", err)
		}
	}
	if s := os.Getenv("GEOREP_BENCH_MAX_RSS"); s != "" {
		if c.maxRSS, err = parseBytes(s); err != nil {
			return c, fmt.Errorf("GEOREP_BENCH_MAX_RSS: %w", err)
		}
	} else if avail := memAvailable(); avail > 0 {
		// The machine is shared: a master whose memory grows with the tree
		// is stopped before the kernel's OOM killer picks a victim.
		c.maxRSS = avail * 8 / 10
	}
	if s := os.Getenv("GEOREP_BENCH_PASS_TIMEOUT"); s != "" {
		if c.passLimit, err = time.ParseDuration(s); err != nil || c.passLimit <= 0 {
			return c, fmt.Errorf("GEOREP_BENCH_PASS_TIMEOUT=%q: want a positive duration", s)
		}
	}
	c.keep = os.Getenv("GEOREP_BENCH_KEEP") == "1"
	c.base = os.Getenv("GEOREP_BENCH_DIR")
	if c.base == "" {
		c.base = os.TempDir()
		if fi, err := os.Stat("/var/tmp"); err == nil && fi.IsDir() {
			c.base = "/var/tmp" // on disk, where /tmp may be a tmpfs
		}
	}
	if c.out = os.Getenv("GEOREP_BENCH_OUT"); c.out != "" {
		if c.out, err = filepath.Abs(c.out); err != nil {
			return c, err
		}
	}
	return c, nil
}

// parseCount reads a file count: 200000, 200k, 1M, 1.5M, 10M, 1G.
func parseCount(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := 1.0
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		mult = 1e3
	case strings.HasSuffix(s, "M"), strings.HasSuffix(s, "m"):
		mult = 1e6
	case strings.HasSuffix(s, "G"), strings.HasSuffix(s, "g"):
		mult = 1e9
	}
	num := s
	if mult != 1 {
		num = s[:len(s)-1]
	}
	num = strings.ReplaceAll(num, "_", "")
	if n, err := strconv.ParseInt(num, 10, 64); err == nil && n >= 0 {
		return n * int64(mult), nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || f*mult != float64(int64(f*mult)) {
		return 0, fmt.Errorf("%q is not a file count (e.g. 200000, 100k, 1M, 1.5M)", s)
	}
	return int64(f * mult), nil
}

// parseCounts reads a comma-separated list of file counts.
func parseCounts(s string) ([]int64, error) {
	var out []int64
	for _, f := range strings.Split(s, ",") {
		if strings.TrimSpace(f) == "" {
			continue
		}
		n, err := parseCount(f)
		if err != nil {
			return nil, err
		}
		if n < 1 {
			return nil, fmt.Errorf("%q: at least one file", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%q names no size", s)
	}
	return out, nil
}

// parseBytes reads a size in bytes: 0, 4096, 4k or 4KiB (1024), 1M or
// 1MiB, 2G or 2GiB.
func parseBytes(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSpace(s), "B"), "i")
	shift := 0
	switch {
	case strings.HasSuffix(t, "k"), strings.HasSuffix(t, "K"):
		shift = 10
	case strings.HasSuffix(t, "M"):
		shift = 20
	case strings.HasSuffix(t, "G"):
		shift = 30
	}
	if shift > 0 {
		t = t[:len(t)-1]
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size in bytes (e.g. 0, 4096, 4KiB, 1MiB)", s)
	}
	return n << shift, nil
}

// label names a file count the way the sizes are asked for: 100k, 1M, 1.5M.
func label(n int64) string {
	switch {
	case n >= 1e6 && n%1e5 == 0:
		return strings.TrimSuffix(strings.TrimSuffix(strconv.FormatFloat(float64(n)/1e6, 'f', 1, 64), "0"), ".") + "M"
	case n >= 1e3 && n%1e3 == 0:
		return strconv.FormatInt(n/1e3, 10) + "k"
	}
	return strconv.FormatInt(n, 10)
}

// group writes n with thousands separators: 1,000,000.
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	if n < 0 {
		return "-" + group(-n)
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// memAvailable is MemAvailable from /proc/meminfo in bytes, 0 when unknown.
func memAvailable() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	return kbField(string(b), "MemAvailable:")
}

// kbField reads a "Name:   1234 kB" line of a /proc file, in bytes; 0 when
// it is missing.
func kbField(text, name string) int64 {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0
			}
			v, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0
			}
			return v << 10
		}
	}
	return 0
}
