// Package buildinfo says which build of georep is running: the module
// version, the VCS commit and its time, as the Go toolchain stamped them
// into the binary (runtime/debug.ReadBuildInfo). The three binaries print
// it for --version, the master's GetStatus carries it, and both daemons
// export it as the georep_build_info metric.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Info is one binary's build.
type Info struct {
	// Version is the module version ("v1.2.3"), or "(devel)" for a build
	// from a checkout.
	Version string
	// Commit is the VCS revision, with "-dirty" when the checkout had
	// uncommitted changes; "unknown" when the build was not stamped (go
	// test, or -buildvcs=false).
	Commit string
	// Time is the commit's time (RFC 3339), "unknown" when not stamped.
	Time string
	// GoVersion is the toolchain that built the binary.
	GoVersion string
}

// Read returns the running binary's build.
func Read() Info {
	info := Info{Version: "(devel)", Commit: "unknown", Time: "unknown", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	if v := bi.Main.Version; v != "" {
		info.Version = v
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Commit = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && info.Commit != "unknown" {
		info.Commit += "-dirty"
	}
	return info
}

// String is the --version line of program.
func (i Info) String(program string) string {
	return fmt.Sprintf("%s %s (commit %s, %s, %s)", program, i.Version, i.Commit, i.Time, i.GoVersion)
}

// Collector is the georep_build_info gauge: always 1, the build in its
// labels (the Prometheus convention for build information, so that a
// query can join it to any other series of the process).
func (i Info) Collector(program string) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "georep_build_info",
		Help: "Build of the running georep binary: always 1, the build in the labels.",
		ConstLabels: prometheus.Labels{
			"program":   program,
			"version":   i.Version,
			"revision":  i.Commit,
			"goversion": i.GoVersion,
		},
	}, func() float64 { return 1 })
}
