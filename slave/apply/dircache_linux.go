package apply

import (
	"sync"

	"github.com/georep/georep/rpc/gfid"
)

// dirs opens the parent directories of the entry ops of one call. Outside a
// parallel run (nil) every open is the backend's OpenDir, closed by the
// caller's release. Within one run of IndependentEntryRuns it keeps each
// directory open for the rest of the run, so the run's entries in one
// parent share one open by gfid (on a GlusterFS volume a lookup and a
// getattr through FUSE per entry saved). That is safe because no entry of
// such a run names a gfid that is another's parent: nothing in the run
// removes, renames or creates a directory another entry of it works in, so
// the descriptor opened for the first reaches the directory a fresh open
// by gfid would. A failed open is not kept: each entry tries its own, and
// sees the error it always did.
type dirs struct {
	en *Engine
	mu sync.Mutex
	fd map[gfid.GFID]int
}

func noRelease() {}

// open opens directory g (OpenDir's errors); release is called once the
// descriptor is no longer used.
func (d *dirs) open(en *Engine, g gfid.GFID) (fd int, release func(), err error) {
	if d == nil {
		fd, err := en.b.OpenDir(g)
		if err != nil {
			return -1, nil, err
		}
		return fd, func() { CloseFd(fd) }, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if fd, ok := d.fd[g]; ok {
		return fd, noRelease, nil
	}
	fd, err = en.b.OpenDir(g)
	if err != nil {
		return -1, nil, err
	}
	if d.fd == nil {
		d.fd = map[gfid.GFID]int{}
	}
	d.fd[g] = fd
	return fd, noRelease, nil
}

// close closes what the run kept open.
func (d *dirs) close() {
	if d == nil {
		return
	}
	for _, fd := range d.fd {
		CloseFd(fd)
	}
	d.fd = nil
}
