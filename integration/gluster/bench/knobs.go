package bench

import (
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// knobs are the benchmark's settings, from the environment.
type knobs struct {
	scale          float64
	latencyN       int
	rollover       time.Duration
	changeInterval int // gsyncd's change_interval, seconds
	gsyncdStock    bool
	gsyncd, georep bool // which tools run
	georepArgs     []string
}

func loadKnobs(tb testing.TB) knobs {
	tb.Helper()
	k := knobs{scale: 1, rollover: 5 * time.Second, changeInterval: 1, gsyncd: true, georep: true}
	if s := os.Getenv("GEOREP_BENCH_SCALE"); s != "" {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v <= 0 || v > 10 {
			tb.Fatalf("GEOREP_BENCH_SCALE=%q: want a number in (0, 10]", s)
		}
		k.scale = v
	}
	k.latencyN = max(5, int(math.Round(50*k.scale)))
	if s := os.Getenv("GEOREP_BENCH_LATENCY_N"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			tb.Fatalf("GEOREP_BENCH_LATENCY_N=%q: want a positive integer", s)
		}
		k.latencyN = v
	}
	if s := os.Getenv("GEOREP_BENCH_ROLLOVER"); s != "" {
		v, err := time.ParseDuration(s)
		if err != nil || v < time.Second {
			tb.Fatalf("GEOREP_BENCH_ROLLOVER=%q: want a duration of at least 1s", s)
		}
		k.rollover = v
	}
	if s := os.Getenv("GEOREP_BENCH_GSYNCD_CHANGE_INTERVAL"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			tb.Fatalf("GEOREP_BENCH_GSYNCD_CHANGE_INTERVAL=%q: want whole seconds, at least 1", s)
		}
		k.changeInterval = v
	}
	k.gsyncdStock = os.Getenv("GEOREP_BENCH_GSYNCD_STOCK") == "1"
	if s := os.Getenv("GEOREP_BENCH_TOOLS"); s != "" {
		k.gsyncd, k.georep = strings.Contains(s, "gsyncd"), strings.Contains(s, "georep")
		if !k.gsyncd && !k.georep {
			tb.Fatalf("GEOREP_BENCH_TOOLS=%q: want gsyncd, georep or both", s)
		}
	}
	k.georepArgs = strings.Fields(os.Getenv("GEOREP_BENCH_GEOREP_ARGS"))
	return k
}

// scaled is n × scale, at least least.
func (k knobs) scaled(n int, least int) int {
	return max(least, int(math.Round(float64(n)*k.scale)))
}

// tail returns the last lines of s (a log).
func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(parts[max(0, len(parts)-lines):], "\n")
}
