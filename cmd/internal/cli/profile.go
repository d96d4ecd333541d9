package cli

import (
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
)

// stopProfiles end the profiles StartCPUProfile and StartMemProfile began;
// Fatal calls them before it exits, so a run that ends in an error still
// leaves its profiles.
var (
	profileMu    sync.Mutex
	stopProfiles []func()
)

// StartCPUProfile writes a CPU profile of the whole run to the file named by
// GEOREP_CPUPROFILE, when it is set, with %n replaced by the program's name
// and %p by the process id (a benchmark's master and slave inherit the same
// environment): `go tool pprof BINARY FILE`. The returned function ends it;
// Fatal ends it too. Not a config key: a diagnostic, not an option.
func StartCPUProfile(prog string) (stop func()) {
	path := os.Getenv("GEOREP_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	path = strings.NewReplacer("%n", prog, "%p", strconv.Itoa(os.Getpid())).Replace(path)
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: GEOREP_CPUPROFILE: %v\n", prog, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "%s: GEOREP_CPUPROFILE: %v\n", prog, err)
		f.Close()
		return func() {}
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				fmt.Fprintf(os.Stderr, "%s: GEOREP_CPUPROFILE: %v\n", prog, err)
			}
		})
	}
	onFatal(stop)
	return stop
}

// onFatal has Fatal call stop before it exits.
func onFatal(stop func()) {
	profileMu.Lock()
	stopProfiles = append(stopProfiles, stop)
	profileMu.Unlock()
}

func endProfile() {
	profileMu.Lock()
	stops := stopProfiles
	profileMu.Unlock()
	for _, stop := range stops {
		stop()
	}
}
