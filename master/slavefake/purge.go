package slavefake

import (
	"context"
	"fmt"
	"syscall"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// Purge removes name in parent with everything beneath it (only when it
// holds the gfid only, unless only is zero) and says how many inodes went:
// directories, and non-directories whose last name was removed. A missing
// name is not an error; an unknown parent is fs.ErrNotExist.
func (s *Slave) Purge(ctx context.Context, parent gfid.GFID, name string, only gfid.GFID) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := ops.ValidateParentName(parent, name, reserved); err != nil {
		return 0, fmt.Errorf("purge %s/%q: %w", parent, name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.dir(parent)
	if err != nil {
		return 0, fmt.Errorf("purge %s/%q: %w", parent, name, err)
	}
	held, ok := p.children[name]
	if !ok || (!only.IsZero() && held != only) {
		return 0, nil
	}
	if held == gfid.Root || held == gfid.Park {
		return 0, errorf(syscall.EPERM, "purge %s/%q: refusing to remove gfid %s", parent, name, held)
	}
	return s.purge(parent, name), nil
}

// purge removes parent/name and, for a directory, everything below it
// first; it returns the inodes removed.
func (s *Slave) purge(parent gfid.GFID, name string) (removed uint64) {
	in := s.inodes[s.inodes[parent].children[name]]
	if in.isDir() {
		g := s.inodes[parent].children[name]
		for child := range in.children {
			removed += s.purge(g, child)
		}
	}
	if s.unname(parent, name) {
		removed++
	}
	return removed
}
