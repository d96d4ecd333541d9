package slavefake

import (
	"syscall"
	"time"

	"github.com/georep/georep/rpc/gfid"
)

// The helpers below are for tests only: they inspect or damage the
// namespace behind the master's back (what an administrator or a crash
// would do to a real replica), with none of the rules or validation of
// the ops and nothing recorded.

// Lookup returns the gfid the name parent/name holds; false when parent
// is no directory or the name is free. A test helper.
func (s *Slave) Lookup(parent gfid.GFID, name string) (gfid.GFID, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.dir(parent)
	if err != nil {
		return gfid.GFID{}, false
	}
	g, ok := p.children[name]
	return g, ok
}

// Put makes the name parent/name hold g, removing what it held (with
// everything beneath it). A gfid the slave does not know becomes an empty
// regular file; a known one gets another name (a directory must not be
// given a second one). The error is ENOENT or ENOTDIR for a parent that
// is no directory. A test helper.
func (s *Slave) Put(parent gfid.GFID, name string, g gfid.GFID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.dir(parent)
	if err != nil {
		return err
	}
	if held, ok := p.children[name]; ok {
		if held == g {
			return nil
		}
		s.purge(parent, name)
	}
	if s.inodes[g] == nil {
		now := time.Now()
		s.inodes[g] = &inode{mode: syscall.S_IFREG | 0o644, atime: now, mtime: now, names: map[link]bool{}}
	}
	s.name(g, parent, name)
	return nil
}

// Remove removes the name parent/name and, for a directory, everything
// beneath it; an inode whose last name goes is forgotten. It reports
// whether the name was there. A test helper.
func (s *Slave) Remove(parent gfid.GFID, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.dir(parent)
	if err != nil {
		return false
	}
	if _, ok := p.children[name]; !ok {
		return false
	}
	s.purge(parent, name)
	return true
}
