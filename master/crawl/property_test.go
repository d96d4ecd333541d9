package crawl

import (
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

var (
	propSeed   = flag.Uint64("crawl.seed", 0, "seed of TestRandomMutations (0: random)")
	propRounds = flag.Int("crawl.rounds", 25, "mutation rounds per seed in TestRandomMutations")
)

// TestRandomMutations mutates a real tree at random, crawls after every
// round and replays the records on the simulated slave: every record must
// be valid where it stands and the slave must end equal to the tree.
func TestRandomMutations(t *testing.T) {
	seeds := []uint64{*propSeed}
	if *propSeed == 0 {
		seeds = []uint64{rand.Uint64(), rand.Uint64(), rand.Uint64(), rand.Uint64(), rand.Uint64(), rand.Uint64()}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("reproduce with: go test ./master/crawl -run TestRandomMutations -crawl.seed=%d", seed)
				}
			}()
			r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
			e := newEnv(t)
			m := &mutator{t: t, r: r, root: e.src}
			for i := 0; i < 15; i++ {
				m.step()
			}
			e.crawl()
			var tot Stats
			for round := 0; round < *propRounds; round++ {
				n := 1 + r.IntN(12)
				for i := 0; i < n; i++ {
					m.step()
				}
				s := e.crawl().Stats
				tot.Entries += s.Entries
				tot.Renames += s.Renames
				tot.Deletes += s.Deletes
				tot.Data += s.Data
				tot.Meta += s.Meta
			}
			t.Logf("entries %d renames %d deletes %d data %d meta %d", tot.Entries, tot.Renames, tot.Deletes, tot.Data, tot.Meta)
		})
	}
}

type mutator struct {
	t    *testing.T
	r    *rand.Rand
	root string
	// note, when set, hears of every name a mutation changes (as a change
	// journal would) before and after it happens; data is true when the
	// content was written.
	note func(path string, data bool)
}

func (m *mutator) touch(data bool, paths ...string) {
	if m.note == nil {
		return
	}
	for _, p := range paths {
		m.note(p, data)
	}
}

func (m *mutator) name() string {
	switch m.r.IntN(12) {
	case 0:
		return "sp ace%" + fmt.Sprint(m.r.IntN(4))
	case 1:
		return "nl\n\xff" + fmt.Sprint(m.r.IntN(4))
	case 2:
		return strings.Repeat("n", 250) + fmt.Sprint(m.r.IntN(4))
	}
	return string(rune('a' + m.r.IntN(8)))
}

// entries lists every path under the root (not the root), dirs separately.
func (m *mutator) entries() (all, dirs, files []string) {
	filepath.WalkDir(m.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == m.root {
			return nil
		}
		all = append(all, p)
		if d.IsDir() {
			dirs = append(dirs, p)
		} else if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	return
}

func (m *mutator) pick(ps []string) string {
	if len(ps) == 0 {
		return ""
	}
	return ps[m.r.IntN(len(ps))]
}

func (m *mutator) dir(dirs []string) string {
	if len(dirs) == 0 || m.r.IntN(3) == 0 {
		return m.root
	}
	return m.pick(dirs)
}

// step applies one random mutation; failures (a name taken, a rename into
// its own subtree) are ignored, as a user's would be.
func (m *mutator) step() {
	all, dirs, files := m.entries()
	target := filepath.Join(m.dir(dirs), m.name())
	switch m.r.IntN(14) {
	case 0, 1:
		if fi, err := os.Lstat(target); err == nil && !fi.Mode().IsRegular() {
			return // never open a fifo
		}
		os.WriteFile(target, []byte(strings.Repeat("x", m.r.IntN(100))), 0o644)
		m.touch(true, target)
	case 2:
		os.Mkdir(target, 0o755)
		m.touch(false, target)
	case 3:
		os.Symlink(m.name(), target)
		m.touch(false, target)
	case 4:
		unix.Mkfifo(target, 0o644)
		m.touch(false, target)
	case 5:
		if f := m.pick(files); f != "" {
			os.Link(f, target)
			m.touch(false, target)
		}
	case 6, 7:
		if p := m.pick(all); p != "" {
			m.gone(target)
			os.Rename(p, target) // over files, empty dirs; into own subtree fails
			m.touch(false, p, target)
		}
	case 8:
		if p := m.pick(all); p != "" {
			os.Remove(p)
			m.touch(false, p)
		}
	case 9:
		if d := m.pick(dirs); d != "" {
			m.gone(d)
			os.RemoveAll(d)
			m.touch(false, d)
		}
	case 10:
		if f := m.pick(files); f != "" {
			os.WriteFile(f, []byte(fmt.Sprint(m.r.Uint64())), 0o644)
			m.touch(true, f)
		}
	case 11:
		if p := m.pick(all); p != "" {
			os.Chmod(p, fs.FileMode(0o700|m.r.IntN(0o100)))
			m.touch(false, p)
		}
	case 12: // swap two names
		a, b := m.pick(all), m.pick(all)
		if a != "" && b != "" && a != b {
			tmp := filepath.Join(m.root, ".swap")
			if os.Rename(a, tmp) == nil {
				m.touch(false, a, tmp)
				if os.Rename(b, a) == nil {
					m.touch(false, b, a)
					os.Rename(tmp, b)
					m.touch(false, tmp, b)
				} else {
					os.Rename(tmp, a)
					m.touch(false, tmp, a)
				}
			}
		}
	case 13: // move a directory under its former child
		if d := m.pick(dirs); d != "" {
			var sub []string
			for _, x := range dirs {
				if filepath.Dir(x) == d {
					sub = append(sub, x)
				}
			}
			if c := m.pick(sub); c != "" {
				tmp := filepath.Join(filepath.Dir(d), ".mv"+fmt.Sprint(m.r.IntN(1000)))
				if os.Rename(c, tmp) == nil {
					m.touch(false, c, tmp)
					to := filepath.Join(tmp, filepath.Base(d))
					os.Rename(d, to)
					m.touch(false, d, to)
				}
			}
		}
	}
}

// gone notes every name below path, which a mutation is about to remove
// (a journal reports each deletion of rm -rf, and what a rename replaces).
func (m *mutator) gone(path string) {
	if m.note == nil {
		return
	}
	filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && p != path {
			m.note(p, false)
		}
		return nil
	})
}
