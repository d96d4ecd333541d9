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
	// The same, by (dev, ino), for directories deeper than PATH_MAX.
	sourceKey   [2]uint64
	excludeKeys map[[2]uint64]bool
}

func newFilter(mountFD int, source string, exclude []string, log *slog.Logger) *filter {
	f := &filter{mountFD: mountFD, source: source, exclude: exclude, cache: make(map[string]bool), log: log,
		excludeKeys: map[[2]uint64]bool{}}
	var st unix.Stat_t
	if unix.Stat(source, &st) == nil {
		f.sourceKey = [2]uint64{st.Dev, st.Ino}
	}
	for _, ex := range exclude {
		if unix.Stat(ex, &st) == nil {
			f.excludeKeys[[2]uint64{st.Dev, st.Ino}] = true
		}
	}
	return f
}

// insideFD decides for directory fd by walking up its ancestors with "..":
// the way for a directory whose path is longer than PATH_MAX (its
// /proc/self/fd link cannot be read).
func (f *filter) insideFD(fd int) bool {
	cur := fd
	defer func() {
		if cur != fd {
			unix.Close(cur)
		}
	}()
	for range 1 << 14 {
		var st unix.Stat_t
		if err := unix.Fstat(cur, &st); err != nil {
			return true // undecided: kept
		}
		key := [2]uint64{st.Dev, st.Ino}
		switch {
		case f.excludeKeys[key]:
			return false
		case key == f.sourceKey:
			return true
		}
		parent, err := unix.Openat(cur, "..", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return true
		}
		var pst unix.Stat_t
		if err := unix.Fstat(parent, &pst); err != nil || (pst.Dev == st.Dev && pst.Ino == st.Ino) {
			unix.Close(parent)
			return err != nil // the filesystem's root: outside
		}
		if cur != fd {
			unix.Close(cur)
		}
		cur = parent
	}
	return true
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
	if errors.Is(err, unix.ENAMETOOLONG) {
		fd, err := unix.OpenByHandleAt(f.mountFD, unix.NewFileHandle(h.Type, h.Bytes), unix.O_PATH|unix.O_CLOEXEC)
		if err == nil {
			in := f.insideFD(fd)
			unix.Close(fd)
			f.remember(k, in)
			return in
		}
	}
	if err != nil {
		f.log.Debug("journal: directory handle not resolved, kept", "handle", h.String(), "err", err)
		return true
	}
	unix.Close(fd)
	in := f.inside(path)
	f.remember(k, in)
	return in
}

func (f *filter) remember(k string, in bool) {
	if len(f.cache) >= maxCached {
		f.reset()
	}
	f.cache[k] = in
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
