package glusterfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/georep/georep/master/changelog"
)

// HTIMETail follows a brick's current HTIME index as GlusterFS appends to
// it: each Next returns the rollovers recorded since the last call (from
// the start of the index the first time, and when the changelog was
// turned on again, which starts a new index). It reads only what was
// appended: an index grows by one entry per rollover, without bound.
//
// What it is for: GlusterFS names a rolled-over changelog after the second
// of its rollover and renames the changelog being written onto that name.
// Two rollovers with records in one second (seen with GlusterFS 10.3 and a
// 1 s rollover-time on a loaded host; an explicit rollover racing the
// timed one) give both the same name, and the second rename replaces the
// first changelog: its records are lost, and only the index, which lists
// every rollover, still shows that there were two.
type HTIMETail struct {
	brick string
	path  string // the index followed ("" before the first Next)
	off   int64  // bytes of it read, whole entries only
}

// NewHTIMETail returns a tail of brick's HTIME index that starts at the
// beginning of the current index.
func NewHTIMETail(brick string) *HTIMETail { return &HTIMETail{brick: brick} }

// Next returns the entries appended to the current index since the last
// call, whole entries only (a partly written one waits for the next call).
// A brick without an index yet has none.
func (t *HTIMETail) Next() ([]changelog.HTimeEntry, error) {
	dir := filepath.Join(t.brick, ChangelogDir, "htime")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("changelog index of %s: %w", t.brick, err)
	}
	var newest int64 = -1
	for _, e := range ents {
		if start, ok := epochSuffix(e.Name(), "HTIME."); ok && start > newest {
			newest = start
		}
	}
	if newest < 0 {
		return nil, nil
	}
	if p := filepath.Join(dir, fmt.Sprintf("HTIME.%d", newest)); p != t.path {
		t.path, t.off = p, 0
	}
	f, err := os.Open(t.path)
	if err != nil {
		return nil, fmt.Errorf("changelog index of %s: %w", t.brick, err)
	}
	defer f.Close()
	buf, err := io.ReadAll(io.NewSectionReader(f, t.off, 1<<62))
	if err != nil {
		return nil, fmt.Errorf("changelog index %s: %w", t.path, err)
	}
	whole := bytes.LastIndexByte(buf, 0) + 1
	if whole == 0 {
		return nil, nil
	}
	out, err := changelog.ParseHTIME(bytes.NewReader(buf[:whole]), t.path)
	if err != nil {
		return nil, err
	}
	t.off += int64(whole)
	return out, nil
}
