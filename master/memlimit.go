package master

import (
	"os"
	"runtime/debug"

	"github.com/georep/georep/master/catalog"
)

// workerMemory is what one worker's memory should stay within, its
// catalog's included: Go's heap gets a soft limit of what the catalogs'
// caches and memtables leave (catalog.Resident each: 136 MiB, for 128 MiB
// of cache). Measured at 1,000,000 files (README, "Scale"): left to GOGC
// alone, Go held up to 161 MB at a first pass's peak (88 MB of it live
// objects), which beside a full cache would pass 300 MB; a limit costs only
// collections when the heap nears it (a first pass's master CPU: +4 % with
// 100 MiB). A soft limit: a pass whose live heap needs more gets it (Go
// caps the collector's share of CPU as the limit is passed).
const workerMemory = 264 << 20

// limitMemory sets Go's soft memory limit for a process that runs workers
// workers, each with its own catalog (a GlusterFS node runs one per local
// brick), unless GOMEMLIMIT says otherwise.
func limitMemory(workers int) {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		return
	}
	debug.SetMemoryLimit(int64(max(1, workers)) * (workerMemory - catalog.Resident))
}
