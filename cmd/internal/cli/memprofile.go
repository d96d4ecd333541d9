package cli

import (
	"fmt"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"
)

// memSample is the process's memory at one moment: what the kernel counts
// (RSS, anonymous and file-mapped) and what Go's runtime holds of it. What
// is anonymous and not Go's is C's: with cgo, Pebble's block cache and
// memtables are malloc'd.
type memSample struct {
	rss, anon, file int64 // VmRSS, RssAnon, RssFile
	goMapped        int64 // /memory/classes/total minus heap/released: Go's, resident or not yet returned
	heapObjects     int64 // live and not yet swept heap objects
}

func (s memSample) String() string {
	mb := func(n int64) string { return strconv.FormatInt(n/1e6, 10) + " MB" }
	return fmt.Sprintf("RSS %s (anonymous %s, file-mapped %s); Go runtime %s, of it heap objects %s; anonymous outside Go (C: Pebble's cache and memtables) %s",
		mb(s.rss), mb(s.anon), mb(s.file), mb(s.goMapped), mb(s.heapObjects), mb(s.anon-s.goMapped))
}

var memMetrics = []metrics.Sample{
	{Name: "/memory/classes/total:bytes"},
	{Name: "/memory/classes/heap/released:bytes"},
	{Name: "/memory/classes/heap/objects:bytes"},
}

// sampleMem reads /proc/self/status and Go's runtime metrics.
func sampleMem() (memSample, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return memSample{}, err
	}
	var s memSample
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *int64
		switch name {
		case "VmRSS":
			dst = &s.rss
		case "RssAnon":
			dst = &s.anon
		case "RssFile":
			dst = &s.file
		default:
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return memSample{}, fmt.Errorf("/proc/self/status: %q", line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return memSample{}, fmt.Errorf("/proc/self/status: %q: %w", line, err)
		}
		*dst = kb << 10
	}
	ms := make([]metrics.Sample, len(memMetrics))
	copy(ms, memMetrics)
	metrics.Read(ms)
	s.goMapped = int64(ms[0].Value.Uint64() - ms[1].Value.Uint64())
	s.heapObjects = int64(ms[2].Value.Uint64())
	return s, nil
}

// StartMemProfile watches the process's RSS while GEOREP_MEMPROFILE is set
// (%n the program, %p its pid, as GEOREP_CPUPROFILE) and writes a heap
// profile there each time the RSS passes its peak by 2 %, so that the file
// left shows what was live at (nearly) the peak: `go tool pprof -sample_index
// inuse_space BINARY FILE`. Beside it, FILE.txt says how that peak divides
// between Go's heap and memory outside Go (Pebble's cache and memtables,
// malloc'd), and the returned function, which ends the watch, prints the
// same to stderr. A diagnostic, not a config key.
func StartMemProfile(prog string) (stop func()) {
	path := os.Getenv("GEOREP_MEMPROFILE")
	if path == "" {
		return func() {}
	}
	path = strings.NewReplacer("%n", prog, "%p", strconv.Itoa(os.Getpid())).Replace(path)
	fail := func(err error) { fmt.Fprintf(os.Stderr, "%s: GEOREP_MEMPROFILE: %v\n", prog, err) }
	done, finished := make(chan struct{}), make(chan struct{})
	var peak memSample
	go func() {
		defer close(finished)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		var written int64
		for {
			s, err := sampleMem()
			if err != nil {
				fail(err)
				return
			}
			if s.rss > peak.rss {
				peak = s
			}
			if s.rss > written+written/50 {
				if err := writeHeapProfile(path, s); err != nil {
					fail(err)
					return
				}
				written = s.rss
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			close(done)
			<-finished
			fmt.Fprintf(os.Stderr, "%s: GEOREP_MEMPROFILE: peak %s; heap profile near it in %s\n", prog, peak, path)
		})
	}
	onFatal(stop)
	return stop
}

// writeHeapProfile writes the heap profile to path and s to path.txt, each
// through a temporary file renamed over it, so a reader never sees half.
func writeHeapProfile(path string, s memSample) error {
	write := func(name string, fill func(*os.File) error) error {
		f, err := os.Create(name + ".tmp")
		if err != nil {
			return err
		}
		err = fill(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(name+".tmp", name)
		}
		if err != nil {
			os.Remove(name + ".tmp")
		}
		return err
	}
	if err := write(path, func(f *os.File) error { return pprof.Lookup("heap").WriteTo(f, 0) }); err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	if err := write(path+".txt", func(f *os.File) error { _, err := fmt.Fprintln(f, s); return err }); err != nil {
		return fmt.Errorf("heap profile's note: %w", err)
	}
	return nil
}
