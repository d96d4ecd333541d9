package glusterfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/master/changelog"
)

// A brick's changelog translator writes <brick>/.glusterfs/changelogs/:
//
//	CHANGELOG                        the changelog being written
//	YYYY/MM/DD/CHANGELOG.<epoch>     rolled over (renamed there whole) when not empty
//	htime/HTIME.<epoch>              the index of one period during which the
//	                                 changelog was on, named after its start
//
// Observed with GlusterFS 10.3: every rollover, empty or not, appends its path
// to the current HTIME file, an empty one as ".../changelog.<epoch>" with no
// file on disk. Epochs in an index are non-decreasing, not increasing:
// explicit rollovers (every `gluster volume set`, a brick's fsync barrier) can
// happen within one second, listing the same epoch several times, an empty
// and a non-empty rollover of the same second both. Turning the changelog
// off rolls over a last time and ends the period; turning it on again starts
// a new HTIME file, and what happened in between is in no changelog. The
// htime directory's xattr trusted.glusterfs.current_htime names the current
// index; each index's trusted.glusterfs.htime is "<last epoch>:<entries>".

// ChangelogDir is where a brick's changelogs live, relative to the brick.
const ChangelogDir = ".glusterfs/changelogs"

// ErrNoHistory: the brick's changelogs cannot tell everything that changed
// since the time asked for. The caller crawls the brick instead.
var ErrNoHistory = errors.New("changelog history does not cover the time asked for")

// htimePeriod is one HTIME index: a period during which the changelog was on.
type htimePeriod struct {
	path  string
	start int64 // the name's epoch: when the changelog was turned on
	ents  []changelog.HTimeEntry
}

// last is the epoch of the period's last rollover (its start when none).
func (p *htimePeriod) last() int64 {
	if len(p.ents) == 0 {
		return p.start
	}
	return p.ents[len(p.ents)-1].Epoch
}

// History returns the brick's rolled-over changelogs that may hold a change
// made after since, up to those rolled over in the second of until, in
// rollover order, as absolute paths under brick, from its HTIME index (as
// libgfchangelog's history API finds them). A changelog is named after the
// second it was rolled over in and holds the changes up to that moment
// (observed: a file written at 459.03 s is in CHANGELOG.459), so the one of
// since's own second is included: epochs in [floor(since), until]. A caller
// that keeps as stime the epoch of the last changelog it processed gets that
// one again (replaying it is harmless; gsyncd even keeps epoch - 1). A
// changelog listed twice is returned once.
//
// It fails with an error wrapping ErrNoHistory, so that the caller falls back
// to a full crawl, when the index cannot vouch for every change after since:
// since is zero (never synced); no period of the changelog began a whole
// second before since (it was turned on later, or never); the period that
// holds since ended before until and a later one began after it (the
// changelog was off in between); or a changelog the index lists in the range
// is missing on disk.
//
// The latest period is taken to be live: changes after its last rollover are
// in the changelog being written and will be rolled over later (see Rolled).
// That holds while the volume's changelog.changelog is on; check it first.
func History(brick string, since, until time.Time) ([]string, error) {
	if since.IsZero() {
		return nil, fmt.Errorf("history of %s: no start time: %w", brick, ErrNoHistory)
	}
	if until.Before(since) {
		return nil, fmt.Errorf("history of %s: end %v before start %v", brick, until, since)
	}
	periods, err := readPeriods(brick)
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", brick, err)
	}
	after, upto := since.Unix()-1, until.Unix()
	// The last period that began a whole second before since.
	i := -1
	for j, p := range periods {
		if p.start < since.Unix() {
			i = j
		}
	}
	if i < 0 {
		first := "no changelog index"
		if len(periods) > 0 {
			first = fmt.Sprintf("the changelog was turned on at %d", periods[0].start)
		}
		return nil, fmt.Errorf("history of %s since %d: %s: %w", brick, since.Unix(), first, ErrNoHistory)
	}
	var paths []string
	for j := i; j < len(periods); j++ {
		p := &periods[j]
		for _, e := range p.ents {
			if e.Epoch <= after || e.Epoch > upto || e.Empty {
				continue
			}
			path := rebase(brick, e.Path)
			if len(paths) > 0 && paths[len(paths)-1] == path {
				continue
			}
			paths = append(paths, path)
		}
		if j+1 == len(periods) || p.last() >= upto {
			break
		}
		// The period ended before until; the next began later. A gap
		// unless the next began within the second this one ended in.
		if next := periods[j+1].start; next > p.last() {
			return nil, fmt.Errorf("history of %s: the changelog was off from %d to %d (%s, %s): %w",
				brick, p.last(), next, filepath.Base(p.path), filepath.Base(periods[j+1].path), ErrNoHistory)
		}
	}
	for _, p := range paths {
		if _, err := os.Lstat(p); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("history of %s: changelog %s is indexed but missing: %w", brick, p, ErrNoHistory)
			}
			return nil, fmt.Errorf("history of %s: %w", brick, err)
		}
	}
	return paths, nil
}

// afterEpoch is the epoch of the last changelog processed, given as a time:
// a fraction of a second counts as the second before.
func afterEpoch(t time.Time) int64 {
	if t.Nanosecond() == 0 {
		return t.Unix()
	}
	return t.Unix() - 1
}

// rebase returns the path of a changelog the index recorded as recorded,
// under brick's changelog directory (the brick may have been mounted
// elsewhere when it was recorded).
func rebase(brick, recorded string) string {
	const marker = "/" + ChangelogDir + "/"
	if i := strings.LastIndex(recorded, marker); i >= 0 {
		return filepath.Join(brick, ChangelogDir, recorded[i+len(marker):])
	}
	return recorded
}

// readPeriods reads every HTIME index of brick, oldest first.
func readPeriods(brick string) ([]htimePeriod, error) {
	dir := filepath.Join(brick, ChangelogDir, "htime")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var periods []htimePeriod
	for _, e := range ents {
		start, ok := epochSuffix(e.Name(), "HTIME.")
		if !ok {
			continue
		}
		p := htimePeriod{path: filepath.Join(dir, e.Name()), start: start}
		f, err := os.Open(p.path)
		if err != nil {
			return nil, err
		}
		p.ents, err = changelog.ParseHTIME(f, p.path)
		f.Close()
		if err != nil {
			return nil, err
		}
		periods = append(periods, p)
	}
	slices.SortFunc(periods, func(a, b htimePeriod) int { return int(a.start - b.start) })
	return periods, nil
}

// epochSuffix parses name as prefix followed by a decimal epoch.
func epochSuffix(name, prefix string) (int64, bool) {
	s, ok := strings.CutPrefix(name, prefix)
	if !ok || s == "" || s[0] < '0' || s[0] > '9' {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n >= 0
}

// Rolled returns the changelogs the brick rolled over after the one of
// epoch after (whole seconds; with a fraction, the changelog of its own second is
// included), in
// rollover order, for the live crawl: a worker passes the epoch of the last
// changelog it processed (ChangelogEpoch), or, when History found none, one
// second before the since it gave History. It lists the day directories
// (YYYY/MM/DD) from the day before after to the day after today, not the
// HTIME index, which grows without bound.
//
// A period of the changelog that began after after means it was off for a
// while since: Rolled then fails with an error wrapping ErrNoHistory.
func Rolled(brick string, after time.Time) ([]string, error) {
	return rolled(brick, after, time.Now())
}

func rolled(brick string, after, now time.Time) ([]string, error) {
	base := filepath.Join(brick, ChangelogDir)
	hents, err := os.ReadDir(filepath.Join(base, "htime"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("changelogs of %s: %w", brick, err)
	}
	for _, e := range hents {
		if start, ok := epochSuffix(e.Name(), "HTIME."); ok && start > after.Unix() {
			return nil, fmt.Errorf("changelogs of %s after %d: the changelog was turned on again at %d: %w", brick, after.Unix(), start, ErrNoHistory)
		}
	}
	type rolledFile struct {
		epoch int64
		path  string
	}
	var files []rolledFile
	min := afterEpoch(after)
	// Directories are named after the rollover's date; UTC on the hosts
	// seen, but a day either side covers any time zone.
	first := after.UTC().AddDate(0, 0, -1)
	last := now.UTC().AddDate(0, 0, 1)
	for day := time.Date(first.Year(), first.Month(), first.Day(), 0, 0, 0, 0, time.UTC); !day.After(last); day = day.AddDate(0, 0, 1) {
		dir := filepath.Join(base, day.Format("2006/01/02"))
		ents, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("changelogs of %s: %w", brick, err)
		}
		for _, e := range ents {
			if ep, ok := epochSuffix(e.Name(), "CHANGELOG."); ok && ep > min {
				files = append(files, rolledFile{ep, filepath.Join(dir, e.Name())})
			}
		}
	}
	slices.SortFunc(files, func(a, b rolledFile) int { return int(a.epoch - b.epoch) })
	paths := make([]string, 0, len(files))
	for _, f := range files {
		paths = append(paths, f.path)
	}
	return paths, nil
}

// ChangelogEpoch returns the rollover epoch of a rolled-over changelog's
// path (".../CHANGELOG.<epoch>").
func ChangelogEpoch(path string) (time.Time, error) {
	ep, ok := epochSuffix(filepath.Base(path), "CHANGELOG.")
	if !ok {
		return time.Time{}, fmt.Errorf("%s is not a rolled-over changelog (CHANGELOG.<epoch>)", path)
	}
	return time.Unix(ep, 0), nil
}

// LastRollover returns the epoch of the brick's last changelog rollover,
// empty ones included (GlusterFS keeps no file for those, only the HTIME
// index entry): the current index's trusted.glusterfs.htime xattr,
// "<last epoch>:<entries>". ok is false when the brick has no index yet.
func LastRollover(brick string) (t time.Time, ok bool, err error) {
	dir := filepath.Join(brick, ChangelogDir, "htime")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	var newest int64 = -1
	for _, e := range ents {
		if start, ok := epochSuffix(e.Name(), "HTIME."); ok && start > newest {
			newest = start
		}
	}
	if newest < 0 {
		return time.Time{}, false, nil
	}
	cur := filepath.Join(dir, "HTIME."+strconv.FormatInt(newest, 10))
	buf := make([]byte, 64)
	n, err := unix.Getxattr(cur, htimeXattr, buf)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("%s of %s: %w", htimeXattr, cur, err)
	}
	last, _, err := changelog.ParseHTIMEXattr(strings.TrimRight(string(buf[:n]), "\x00"))
	if err != nil {
		return time.Time{}, false, fmt.Errorf("%s: %w", dir, err)
	}
	return time.Unix(last, 0), last > 0, nil
}

// htimeXattr holds, on an HTIME index, "<last epoch>:<entries>".
const htimeXattr = "trusted.glusterfs.htime"
