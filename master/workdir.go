package master

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/atomicfile"
	"github.com/georep/georep/rpc/gfid"
)

// workDir is the master's state directory:
//
//	lock          flock held while a daemon runs on this work dir
//	volume-id     the master volume's UUID (a plain directory has none of its own)
//	catalog.db/   gfid identity and the namespace as last synced (master/catalog, a Pebble store)
//	xsync/        changelogs written by the crawls (hybrid and scoped)
//	journal/      the change journal (master/journal) while the daemon runs
//	failures      the durable failure queue (JSON)
//	stage/        scratch directories of the sync jobs
//	stime         how far the slave is known to be in sync (JSON)
//	stats         crawl statistics (JSON, gsyncd's total_crawl_stats)
type workDir struct {
	dir  string
	lock *os.File
	// published is the last crawlStats loaded or saved: the status service
	// reads it while the worker's goroutine goes on changing its own copy.
	published atomic.Pointer[crawlStats]
}

func openWorkDir(dir string) (*workDir, error) {
	// rsync's tunnel runs with another working directory: every path handed
	// out from here must be absolute.
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("work-dir %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("work-dir %s: %w", dir, err)
	}
	probe, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return nil, fmt.Errorf("work-dir %s is not writable: %w", dir, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("work-dir lock: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("work-dir %s is in use by another georep-master", dir)
		}
		return nil, fmt.Errorf("work-dir lock: %w", err)
	}
	for _, sub := range []string{"xsync", "stage"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			lock.Close()
			return nil, fmt.Errorf("work-dir: %w", err)
		}
	}
	return &workDir{dir: dir, lock: lock}, nil
}

func (w *workDir) close() error { return w.lock.Close() }

func (w *workDir) path(name string) string { return filepath.Join(w.dir, name) }

// volumeID returns the master volume's UUID, created on first use.
func (w *workDir) volumeID() (string, error) {
	b, err := os.ReadFile(w.path("volume-id"))
	if err == nil {
		id := strings.TrimSpace(string(b))
		if _, err := gfid.Parse(id); err != nil {
			return "", fmt.Errorf("%s: %w", w.path("volume-id"), err)
		}
		return id, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	id := gfid.New().String()
	return id, atomicfile.Write(w.path("volume-id"), []byte(id+"\n"), 0o600)
}

// stime is the resume point of the session: every change recorded before
// Data (entry ops before Entry) has been applied on the slave.
type stime struct {
	Data  time.Time `json:"data"`
	Entry time.Time `json:"entry"`
}

func (w *workDir) loadStime() (stime, error) {
	var s stime
	b, err := os.ReadFile(w.path("stime"))
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%s: %w", w.path("stime"), err)
	}
	return s, nil
}

func (w *workDir) saveStime(s stime) error { return writeJSON(w.path("stime"), s) }

// crawlStats mirrors gsyncd's total_crawl_stats, persisted after every
// changelog so that status survives restarts.
type crawlStats struct {
	WorkerStatus   string    `json:"worker_status,omitempty"` // Active, Passive (brick workers)
	CrawlStatus    string    `json:"crawl_status"`
	LastSynced     time.Time `json:"last_synced"`
	FilesSynced    int64     `json:"files_synced"`
	BytesSynced    int64     `json:"bytes_synced"`
	EntriesSynced  int64     `json:"entries_synced"`
	DeletesSynced  int64     `json:"deletes_synced"`
	FilesPending   int64     `json:"files_pending"`
	BytesPending   int64     `json:"bytes_pending"`
	EntriesPending int64     `json:"entries_pending"`
	MetaPending    int64     `json:"meta_pending"`
	DeletesPending int64     `json:"deletes_pending"`
	Failures       int64     `json:"failures"`
	LastError      string    `json:"last_error,omitempty"`
	// Guard names the safety guard that refused the last pass ("" : none).
	Guard string `json:"guard,omitempty"`
}

func (w *workDir) loadStats() crawlStats {
	var s crawlStats
	if b, err := os.ReadFile(w.path("stats")); err == nil {
		_ = json.Unmarshal(b, &s) // a damaged stats file is only statistics: start afresh
	}
	w.published.Store(&s)
	return s
}

func (w *workDir) saveStats(s crawlStats) error {
	w.published.Store(&s)
	return writeJSON(w.path("stats"), s)
}

// stats returns the last crawlStats saved (safe from any goroutine).
func (w *workDir) stats() crawlStats {
	if s := w.published.Load(); s != nil {
		return *s
	}
	return crawlStats{}
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), 0o600)
}
