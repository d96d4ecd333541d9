package journal

import (
	"errors"
	"log/slog"

	"golang.org/x/sys/unix"
)

// maxCached bounds the filter's cache: a filesystem mark reports every
// directory of the filesystem, most of them outside the source.
const maxCached = 1 << 16

// filter decides whether an event's directory is the source or beneath it,
// and not beneath an excluded path, by opening the directory's handle and
// reading its path. Decisions are cached per handle; a directory's decision
// changes only when it or an ancestor is renamed or removed, so the producer
// resets the cache on every move or delete of a directory.
type filter struct {
	mountFD int
	source  string
	exclude []string
	cache   map[string]bool
	log     *slog.Logger
}

func newFilter(mountFD int, source string, exclude []string, log *slog.Logger) *filter {
	return &filter{mountFD: mountFD, source: source, exclude: exclude, cache: make(map[string]bool), log: log}
}

// reset forgets every decision.
func (f *filter) reset() { clear(f.cache) }

// keep reports whether the events of directory h belong to the journal. A
// removed directory's events are dropped; one that cannot be resolved for
// another reason is kept (the consumer decides).
func (f *filter) keep(h Handle) bool {
	k := h.key()
	if in, ok := f.cache[k]; ok {
		return in
	}
	fd, path, err := openHandle(f.mountFD, h, unix.O_PATH)
	if errors.Is(err, ErrStale) {
		// Removed since: the consumer would skip its records (it finds
		// the handle stale too), and its removal is reported in its
		// parent. Keeping them would fill the journal with the churn of
		// every short-lived directory on the filesystem.
		return false
	}
	if err != nil {
		f.log.Debug("journal: directory handle not resolved, kept", "handle", h.String(), "err", err)
		return true
	}
	unix.Close(fd)
	in := f.inside(path)
	if len(f.cache) >= maxCached {
		f.reset()
	}
	f.cache[k] = in
	return in
}

// inside decides on a resolved path.
func (f *filter) inside(path string) bool {
	if !within(path, f.source) {
		return false
	}
	for _, ex := range f.exclude {
		if within(path, ex) {
			return false
		}
	}
	return true
}
