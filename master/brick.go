package master

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/master/catalog"
	"github.com/georep/georep/master/changelog"
	"github.com/georep/georep/master/glusterfs"
	"github.com/georep/georep/rpc/gfid"
)

// A brick worker replicates one brick of a GlusterFS master volume (gsyncd's
// worker, one per local brick). Its source is the brick directory itself,
// crawled in brick mode (gfids from trusted.gfid); it learns of changes
// from the changelogs the brick's changelog translator writes, which it
// reads directly from <brick>/.glusterfs/changelogs; its data is read
// through an aux-gfid mount of the volume; its stime lives on the brick in
// gsyncd's xattr format as well as in its work dir.

// brickState is what a worker knows of its brick.
type brickState struct {
	name     string // host:path, as the volume names it
	path     string // the brick directory
	volumeID string // the master volume's UUID
	auxMount string // an aux-gfid mount of the volume ("" reads data from the brick)
	// lastEpoch is the epoch of the last changelog applied, done the
	// changelogs of that epoch applied: several rollovers can share one
	// second, so the next listing starts at lastEpoch again, less done.
	lastEpoch time.Time
	done      map[string]bool
	// curIno is the inode of the changelog the brick is writing, curRecs
	// how many of its records are applied: records are consumed before
	// rollover (and all of them again after it, when the rolled file is
	// read under its new name).
	curIno  uint64
	curRecs int
	curSize int64 // the current changelog's size when last read
	// idleStime is the last rollover stime followed while idle.
	idleStime time.Time
	// htime follows the brick's HTIME index; rolls counts, per epoch from
	// since on, the rollovers it lists that had records (since: where the
	// worker took over, startAt; rollsMax: the latest epoch listed). Two
	// of one second mean the first changelog was replaced by the second
	// (replacedChangelog).
	htime    *glusterfs.HTIMETail
	rolls    map[int64]int
	since    int64
	rollsMax int64
	// marks are the read marks of the files shipped (brick_reads.go).
	marks readMarks
}

// currentChangelog is the changelog the brick is writing.
func (b *brickState) currentChangelog() string {
	return filepath.Join(b.path, ".glusterfs", "changelogs", "CHANGELOG")
}

// currentRead is what a pass takes from the current changelog.
type currentRead struct {
	ino  uint64
	n    int // its records applied once this pass is done
	size int64
	recs []changelog.Record
}

// readCurrent returns the whole records of the current changelog not
// applied yet (nil when there is no current changelog).
func (b *brickState) readCurrent() (*currentRead, error) {
	p := b.currentChangelog()
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open brick changelog: %w", err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("stat brick changelog: %w", err)
	}
	recs, _, err := changelog.ParseBrickPrefix(f, p)
	if err != nil {
		return nil, err
	}
	done := 0
	if st.Ino == b.curIno {
		done = min(b.curRecs, len(recs))
	}
	return &currentRead{ino: st.Ino, n: len(recs), size: st.Size, recs: recs[done:]}, nil
}

// consumed records that the records of cur are applied.
func (b *brickState) consumed(cur *currentRead) {
	if cur == nil {
		return
	}
	b.curIno, b.curRecs, b.curSize = cur.ino, cur.n, cur.size
}

// waitChange waits until the current changelog changes (the brick wrote a
// record or rolled over), something is sent on wake, or d passes.
func (b *brickState) waitChange(ctx context.Context, wake <-chan struct{}, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-wake:
			return
		case <-time.After(brickPollEvery):
		}
		var st unix.Stat_t
		if err := unix.Stat(b.currentChangelog(), &st); err == nil && st.Size != b.curSize {
			return
		}
	}
}

// brickPollEvery is how often an idle brick worker looks at the brick's
// current changelog: one stat(2).
const brickPollEvery = 100 * time.Millisecond

// applied records the changelogs of a batch whose last epoch is epoch.
func (b *brickState) applied(files []string, epoch time.Time) {
	if !epoch.Equal(b.lastEpoch) || b.done == nil {
		b.lastEpoch, b.done = epoch, map[string]bool{}
	}
	for _, f := range files {
		if e, err := glusterfs.ChangelogEpoch(f); err == nil && e.Equal(epoch) {
			b.done[f] = true
		}
	}
}

// pending lists the changelogs not applied yet, in order.
func (b *brickState) pending() ([]string, error) {
	files, err := glusterfs.Rolled(b.path, b.lastEpoch.Add(-time.Second))
	if err != nil {
		return nil, err
	}
	out := files[:0]
	for _, f := range files {
		if !b.done[f] {
			out = append(out, f)
		}
	}
	return out, nil
}

// startAt makes the changelogs after t (t's own second included: a
// changelog of that second may have rolled over after t) the next to apply.
func (b *brickState) startAt(t time.Time) {
	b.lastEpoch, b.done = t.Truncate(time.Second), nil
	b.since = b.lastEpoch.Unix()
	for e := range b.rolls {
		if e < b.since {
			delete(b.rolls, e)
		}
	}
}

// replacedChangelog reads the rollovers the brick recorded in its HTIME
// index since the last call and reports (ok) the epoch of a changelog with
// records, rolled over at or after the worker's start (startAt), that
// another rollover with records in the same second replaced: GlusterFS
// names both CHANGELOG.<epoch> and renames the second onto the first
// (glusterfs.HTIMETail), so the first one's records are in no changelog
// any more and only a crawl of the brick finds what they recorded. Each
// replaced changelog is reported once.
func (b *brickState) replacedChangelog() (epoch int64, ok bool, err error) {
	if b.htime == nil {
		b.htime = glusterfs.NewHTIMETail(b.path)
	}
	ents, err := b.htime.Next()
	if err != nil {
		return 0, false, err
	}
	if b.rolls == nil {
		b.rolls = map[int64]int{}
	}
	for _, e := range ents {
		b.rollsMax = max(b.rollsMax, e.Epoch)
		if e.Empty || e.Epoch < b.since {
			continue
		}
		b.rolls[e.Epoch]++
		if b.rolls[e.Epoch] > 1 && (!ok || e.Epoch > epoch) {
			epoch, ok = e.Epoch, true
		}
	}
	for e := range b.rolls {
		// The index lists epochs in order: once a later second is
		// listed, no other rollover of an earlier one can follow. A
		// minute's margin costs a few entries.
		if e < b.rollsMax-60 || (ok && e <= epoch) {
			delete(b.rolls, e)
		}
	}
	return epoch, ok, nil
}

// dataPath returns g on the aux-gfid mount, .gfid/<gfid>: the volume's
// view of it, where its times are read.
func (b *brickState) dataPath(g gfid.GFID) string {
	return filepath.Join(b.auxMount, ".gfid", g.String())
}

// brickDirs opens the directories the brick's changelog records name and
// gathers the names to re-examine: the names of entry records, and for
// data and metadata records the names the catalog knows the gfid by (a
// gfid new since the last pass is named by its own entry record).
//
// A D record marks its names as written (a ship even when size and times
// did not change) only when force holds its gfid (readMarks.forced).
func (w *worker) brickDirs(ds *dirSet, recs []changelog.Record, force map[gfid.GFID]bool) error {
	byGFID := map[gfid.GFID]int{} // directory gfid → index in ds, -1: gone
	dir := func(g gfid.GFID) (int, error) {
		if i, ok := byGFID[g]; ok {
			return i, nil
		}
		fd, rel, err := w.openBrickDir(g)
		if err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, errOutsideBrick) {
				byGFID[g] = -1 // removed since: its removal is recorded in its parent
				return -1, nil
			}
			return -1, err
		}
		i, err := ds.add(fd, rel)
		if err != nil {
			return -1, err
		}
		byGFID[g] = i
		return i, nil
	}
	mark := func(parent gfid.GFID, name string, data bool) error {
		i, err := dir(parent)
		if err != nil || i < 0 {
			return err
		}
		ds.mark(i, name, data)
		return nil
	}
	named := map[gfid.GFID]bool{}
	for _, r := range recs {
		if r.Kind == changelog.Entry {
			named[r.GFID] = true
		}
	}
	for _, r := range recs {
		var err error
		switch r.Kind {
		case changelog.Entry:
			err = mark(r.Parent, r.Name, false)
			if err == nil && r.Fop == changelog.Rename {
				err = mark(r.NewParent, r.NewName, false)
			}
		case changelog.Data, changelog.Meta:
			data := r.Kind == changelog.Data && force[r.GFID]
			var n catalog.Node
			var ok bool
			n, ok, err = w.cat.Node(r.GFID)
			switch {
			case err != nil:
			case ok && n.Type == catalog.TypeDir:
				err = mark(r.GFID, "", false)
			case ok:
				for _, l := range n.Links {
					if err = mark(l.Parent, l.Name, data); err != nil {
						break
					}
				}
			case r.GFID == gfid.Root:
				err = mark(gfid.Root, "", false)
			case !named[r.GFID]:
				// Neither synced nor named here: a file the last crawl
				// skipped (no gfid yet). Only a crawl can find it.
				err = fmt.Errorf("%w: %s %s is not in the catalog and no entry record names it", errNeedFull, r.Kind, r.GFID)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

var errOutsideBrick = errors.New("not inside the brick")

// openBrickDir opens directory g of the brick through the brick's gfid
// index (.glusterfs/ab/cd/<gfid>, a symlink to the directory for
// directories), and returns it with its path relative to the brick.
func (w *worker) openBrickDir(g gfid.GFID) (int, string, error) {
	brick := w.brick.path
	p := brick
	if g != gfid.Root {
		s := g.String()
		p = filepath.Join(brick, ".glusterfs", s[0:2], s[2:4], s)
	}
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, "", err
	}
	real, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		unix.Close(fd)
		return -1, "", err
	}
	rel, err := filepath.Rel(brick, real)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") || strings.HasPrefix(rel, ".glusterfs") {
		unix.Close(fd)
		return -1, "", fmt.Errorf("directory %s at %s: %w", g, real, errOutsideBrick)
	}
	return fd, rel, nil
}
