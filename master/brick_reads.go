package master

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/master/changelog"
	"github.com/georep/georep/rpc/gfid"
)

// A brick changelog's D record makes the worker ship a file's data even
// when its size and times look unchanged (invariant 1): the brick records a
// file's data once per changelog however often it is written, so the record
// is all that tells of a write that kept them. A record is already covered,
// though, when the data the slave holds was read after every write the
// record stands for: then shipping it again ships the same bytes. That is
// what makes the first changelogs after a hybrid crawl cheap: they record
// the writes made before and during the crawl, which read the files after
// them.
//
// When has every write a record stands for completed? The changelog
// translator records a write in its callback, after the brick's file system
// completed it, into the changelog file the brick is writing ("CHANGELOG");
// a second write in the same slice is folded into the first record when its
// callback finds the inode's version equal to the slice's, a check made
// under the lock the rollover takes to rename the file and advance the
// slice (changelog.c: changelog_update, changelog_rollover). So every write
// a rolled changelog's records stand for completed before the file was
// renamed away from "CHANGELOG". The worker sees that rename without any
// clock: it stats "CHANGELOG" (inode and birth time: a rename keeps both,
// a new slice's file is a new inode, and an empty slice's file, unlinked,
// may give its inode number to a later one but not its birth time) and
// numbers the slices in the order it sees them. Before it hands a file's
// data to rsync or WriteFiles it looks again: every slice numbered below
// the one "CHANGELOG" is now (all of them when there is none) was renamed
// before the data was read. That number is the file's read mark, kept once
// the data is shipped. A D record of a rolled changelog whose slice is
// numbered below the file's read mark is covered: it does not force a
// ship (a change of size, mtime or ctime still does). Every other D record
// forces one as before: one of a slice the worker never saw current, one of
// the current changelog (records read before the rollover), one of a file
// with no mark.
//
// The marks live in memory only. After a restart every record forces a
// ship again (a replay after kill -9 converges as before), and they are
// forgotten whenever the worker opens a session (another worker of the
// replica set may have shipped in between, from its own brick) and for every
// gfid whose data, entry or meta ops failed or whose slave inode the
// resolution rounds purged.
type readMarks struct {
	mu sync.Mutex
	// slices numbers the slices seen current, in the order seen; next is
	// the number of the next one, cur the one "CHANGELOG" was when last
	// seen (haveCur false: none, or not seen yet).
	slices  map[sliceID]int64
	next    int64
	cur     sliceID
	haveCur bool
	// read is each file's read mark.
	read map[gfid.GFID]int64
}

// sliceID identifies the file of one changelog slice.
type sliceID struct {
	ino         uint64
	bsec, bnsec int64
}

// Bounds of what the marks hold: slices older than the last maxSlices seen
// have no number any more (their records force a ship), and files beyond
// maxReadMarks get no mark.
const (
	maxSlices    = 4096
	maxReadMarks = 1 << 20
)

// statSlice returns the slice the changelog file at p is; ok false when
// the file system gives no birth time (nothing can be told then).
func statSlice(p string) (id sliceID, ok bool, err error) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_INO|unix.STATX_BTIME, &stx); err != nil {
		return sliceID{}, false, err
	}
	if stx.Mask&unix.STATX_BTIME == 0 {
		return sliceID{}, false, nil
	}
	return sliceID{ino: stx.Ino, bsec: stx.Btime.Sec, bnsec: int64(stx.Btime.Nsec)}, true, nil
}

// observe looks at the current changelog (cur, the path of "CHANGELOG")
// and returns the number below which every slice seen was renamed before
// the call; -1 when nothing can be told.
func (m *readMarks) observe(cur string) int64 {
	id, ok, err := statSlice(cur)
	m.mu.Lock()
	defer m.mu.Unlock()
	if errors.Is(err, unix.ENOENT) {
		// Renamed (or unlinked, empty) and the next not made yet: every
		// slice seen is done.
		m.haveCur = false
		return m.next
	}
	if err != nil || !ok {
		return -1
	}
	if m.slices == nil {
		m.slices = map[sliceID]int64{}
	}
	if m.haveCur && id == m.cur {
		return m.slices[id]
	}
	// A new slice. Its identity may be one seen before: an empty slice's
	// file is unlinked at its rollover, and the next may get its inode
	// number within the same tick of the file system's clock (birth times
	// are coarse). It takes a new number all the same, so that no mark
	// issued before it was made covers it. (Two slices taken for one, when
	// the worker did not look in between, only delay what covers them.)
	m.slices[id] = m.next
	m.cur, m.haveCur = id, true
	m.next++
	if len(m.slices) > 2*maxSlices {
		for s, n := range m.slices {
			if n < m.next-maxSlices {
				delete(m.slices, s)
			}
		}
	}
	return m.next - 1
}

// number returns the number of the rolled changelog at p (ok false: a slice
// not seen current, or nothing can be told).
func (m *readMarks) number(p string) (int64, bool) {
	id, ok, err := statSlice(p)
	if err != nil || !ok {
		return 0, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.slices[id]
	return n, ok
}

// shipped records the read marks of the files whose data a changelog
// shipped (marks, taken before their data was read) and forgets those of
// every gfid that failed in it.
func (m *readMarks) shipped(marks map[gfid.GFID]int64, out *outcome) {
	m.mu.Lock()
	defer m.mu.Unlock()
	bad := func(g gfid.GFID) bool {
		_, failed := out.failed[g]
		return failed || out.dataFailed[g] || out.purged[g]
	}
	for g, k := range marks {
		if bad(g) || k < 0 {
			delete(m.read, g)
			continue
		}
		if m.read == nil {
			m.read = map[gfid.GFID]int64{}
		}
		if old, ok := m.read[g]; ok || len(m.read) < maxReadMarks {
			m.read[g] = max(old, k)
		}
	}
	for g := range out.failed {
		delete(m.read, g)
	}
	for g := range out.dataFailed {
		delete(m.read, g)
	}
	for g := range out.purged {
		delete(m.read, g)
	}
}

// forget drops every read mark.
func (m *readMarks) forget() {
	m.mu.Lock()
	m.read = nil
	m.mu.Unlock()
}

// forced returns the gfids whose D records force a data ship: every D
// record of the current changelog (cur), and those of the rolled changelogs
// files (counts[i] records of recs each, in order) that their file's read
// mark does not cover.
func (m *readMarks) forced(files []string, counts []int, recs []changelog.Record) (map[gfid.GFID]bool, error) {
	if len(counts) != len(files) {
		return nil, fmt.Errorf("read marks: %d record counts for %d changelogs", len(counts), len(files))
	}
	force := map[gfid.GFID]bool{}
	i := 0
	for fi, p := range files {
		n, known := m.number(p)
		m.mu.Lock()
		for _, r := range recs[i : i+counts[fi]] {
			if r.Kind != changelog.Data {
				continue
			}
			if k, ok := m.read[r.GFID]; !known || !ok || n >= k {
				force[r.GFID] = true
			}
		}
		m.mu.Unlock()
		i += counts[fi]
	}
	for _, r := range recs[i:] { // the current changelog's
		if r.Kind == changelog.Data {
			force[r.GFID] = true
		}
	}
	return force, nil
}
