package crawl

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/georep/georep/master/changelog"
	"golang.org/x/sys/unix"
)

// journal records changed names by directory inode, as the fanotify journal
// does by directory handle: a directory renamed after the change is still
// the same directory.
type journal struct {
	t     *testing.T
	root  string
	names map[uint64]map[string]bool
}

func newJournal(t *testing.T, root string) *journal {
	return &journal{t: t, root: root, names: map[uint64]map[string]bool{}}
}

func (j *journal) note(path string, data bool) {
	var st unix.Stat_t
	if unix.Lstat(filepath.Dir(path), &st) != nil {
		return
	}
	m := j.names[st.Ino]
	if m == nil {
		m = map[string]bool{}
		j.names[st.Ino] = m
	}
	m[filepath.Base(path)] = m[filepath.Base(path)] || data
}

// dirs opens the journaled directories that still exist, where they are now.
func (j *journal) dirs() []Dir {
	where := map[uint64]string{}
	filepath.WalkDir(j.root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			var st unix.Stat_t
			if unix.Lstat(p, &st) == nil {
				where[st.Ino] = p
			}
		}
		return nil
	})
	var out []Dir
	for ino, names := range j.names {
		p, ok := where[ino]
		if !ok {
			continue // deleted, as a stale handle
		}
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			j.t.Fatal(err)
		}
		j.t.Cleanup(func() { unix.Close(fd) })
		rel, _ := filepath.Rel(j.root, p)
		out = append(out, Dir{Fd: fd, Rel: rel, Names: names})
	}
	slices.SortFunc(out, func(a, b Dir) int { return strings.Compare(a.Rel, b.Rel) })
	j.names = map[uint64]map[string]bool{}
	return out
}

// scoped runs Scoped on what the journal heard, replays the records on the
// simulated slave, commits, and checks with a hybrid crawl that nothing
// was missed: the slave equals the tree and no entry op remains.
func (e *env) scoped(j *journal) *Result {
	e.t.Helper()
	res, err := Scoped(e.t.Context(), e.cfg, e.cat, j.dirs(), e.log)
	if err != nil {
		e.t.Fatalf("Scoped: %v", err)
	}
	for i, r := range res.Records {
		if err := e.sim.apply(r); err != nil {
			e.t.Fatalf("record %d %q is invalid: %v\n%s", i, e.describe(res, r), err, strings.Join(e.lines(res), "\n"))
		}
	}
	if err := res.Commit(e.cat, nil, nil); err != nil {
		e.t.Fatal(err)
	}
	full, err := Hybrid(e.t.Context(), e.cfg, e.cat, e.log)
	if err != nil {
		e.t.Fatal(err)
	}
	if d := e.sim.diffNames(full.Snapshot, e.cfg.IgnoreDeletes); d != "" {
		e.t.Fatalf("slave differs from the tree after the scoped crawl:\n%s\nrecords:\n%s", d, strings.Join(e.lines(res), "\n"))
	}
	for _, r := range full.Records {
		if r.Kind == changelog.Entry {
			e.t.Fatalf("the scoped crawl missed %q\nscoped records:\n%s\nhybrid records:\n%s", e.describe(full, r),
				strings.Join(e.lines(res), "\n"), strings.Join(e.lines(full), "\n"))
		}
	}
	if err := full.Commit(e.cat, nil, nil); err != nil {
		e.t.Fatal(err)
	}
	e.old, e.prev = e.prev, full.Snapshot
	return res
}

// TestScopedRandomMutations is TestRandomMutations with the changes found by
// Scoped from the names a journal heard instead of by walking the tree.
func TestScopedRandomMutations(t *testing.T) {
	seeds := []uint64{*propSeed}
	if *propSeed == 0 {
		seeds = []uint64{rand.Uint64(), rand.Uint64(), rand.Uint64(), rand.Uint64(), rand.Uint64(), rand.Uint64()}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("reproduce with: go test ./master/crawl -run TestScopedRandomMutations -crawl.seed=%d", seed)
				}
			}()
			r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
			e := newEnv(t)
			j := newJournal(t, e.src)
			m := &mutator{t: t, r: r, root: e.src}
			for i := 0; i < 15; i++ {
				m.step()
			}
			e.crawl()
			m.note = j.note
			var tot Stats
			for round := 0; round < *propRounds; round++ {
				n := 1 + r.IntN(12)
				for i := 0; i < n; i++ {
					m.step()
				}
				s := e.scoped(j).Stats
				tot.Entries += s.Entries
				tot.Renames += s.Renames
				tot.Deletes += s.Deletes
			}
			t.Logf("entries %d renames %d deletes %d", tot.Entries, tot.Renames, tot.Deletes)
		})
	}
}

func TestScopedCases(t *testing.T) {
	e := newEnv(t)
	must(t, os.MkdirAll(e.p("a/b"), 0o755))
	must(t, os.MkdirAll(e.p("c"), 0o755))
	write(t, e.p("a/f"), "one")
	write(t, e.p("a/b/g"), "two")
	must(t, os.Link(e.p("a/f"), e.p("c/hard")))
	e.crawl()
	j := newJournal(t, e.src)

	// A file written with the same size and mtime: still shipped.
	fi, err := os.Stat(e.p("a/f"))
	must(t, err)
	write(t, e.p("a/f"), "ONE")
	must(t, os.Chtimes(e.p("a/f"), fi.ModTime(), fi.ModTime()))
	j.note(e.p("a/f"), true)
	if got := e.lines(e.scoped(j)); !slices.Contains(got, "D /a/f") && !slices.Contains(got, "D /c/hard") {
		t.Fatalf("no data record for a same-size same-mtime write: %q", got)
	}

	// A directory renamed into another, then a file written inside it: the
	// write is reported in the directory, which the journal names by inode.
	must(t, os.Rename(e.p("a/b"), e.p("c/b2")))
	j.note(e.p("a/b"), false)
	j.note(e.p("c/b2"), false)
	write(t, e.p("c/b2/new"), "3")
	j.note(e.p("c/b2/new"), true)
	got := e.lines(e.scoped(j))
	for _, want := range []string{"RENAME /a/b PARK", "RENAME PARK /c/b2", "CREATE /c/b2/new", "D /c/b2/new"} {
		if !slices.Contains(got, want) {
			t.Fatalf("records %q lack %q", got, want)
		}
	}

	// One name of a hardlinked file removed: an UNLINK, the other stays.
	must(t, os.Remove(e.p("c/hard")))
	j.note(e.p("c/hard"), false)
	if got := e.lines(e.scoped(j)); !slices.Contains(got, "UNLINK /c/hard") || slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, "/a/f") && !strings.HasPrefix(s, "M") }) {
		t.Fatalf("records %q", got)
	}

	// A directory moved out of the source: it and everything below go.
	out := filepath.Join(t.TempDir(), "out")
	must(t, os.Rename(e.p("c"), out))
	j.note(e.p("c"), false)
	got = e.lines(e.scoped(j))
	for _, want := range []string{"UNLINK /c/b2/g", "UNLINK /c/b2/new", "RMDIR /c/b2", "RMDIR /c"} {
		if !slices.Contains(got, want) {
			t.Fatalf("records %q lack %q", got, want)
		}
	}

	// A tree moved in from outside: walked whole.
	must(t, os.MkdirAll(filepath.Join(out, "deep/er"), 0o755))
	write(t, filepath.Join(out, "deep/er/x"), "x")
	must(t, os.Rename(out, e.p("back")))
	j.note(e.p("back"), false)
	got = e.lines(e.scoped(j))
	for _, want := range []string{"MKDIR /back", "MKDIR /back/deep", "MKDIR /back/deep/er", "CREATE /back/deep/er/x"} {
		if !slices.Contains(got, want) {
			t.Fatalf("records %q lack %q", got, want)
		}
	}
}

// A directory the catalog never saw, reported without its own creation,
// cannot be placed: the caller must crawl.
func TestScopedIncomplete(t *testing.T) {
	e := newEnv(t)
	e.crawl()
	must(t, os.MkdirAll(e.p("n/m"), 0o755))
	write(t, e.p("n/m/f"), "x")
	j := newJournal(t, e.src)
	j.note(e.p("n/m/f"), true)
	_, err := Scoped(t.Context(), e.cfg, e.cat, j.dirs(), e.log)
	if !errors.Is(err, ErrIncomplete) {
		t.Fatalf("err = %v, want ErrIncomplete", err)
	}
}

// A directory that vanished between the journal and the crawl is skipped.
func TestScopedStaleDir(t *testing.T) {
	e := newEnv(t)
	must(t, os.Mkdir(e.p("d"), 0o755))
	e.crawl()
	fd, err := unix.Open(e.p("d"), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	must(t, err)
	defer unix.Close(fd)
	must(t, os.Remove(e.p("d")))
	res, err := Scoped(t.Context(), e.cfg, e.cat, []Dir{{Fd: fd, Rel: "d", Names: map[string]bool{"x": false}}}, e.log)
	if err != nil && !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("Scoped on a removed directory: %v", err)
	}
	_ = res
}

// After CommitEntries alone (a crash before Commit), a new crawl redoes the
// metadata and data of what the entry ops created, not the entry ops.
func TestCommitEntriesSkipsEntryOpsOnReplay(t *testing.T) {
	e := newEnv(t)
	e.crawl()
	must(t, os.Mkdir(e.p("d"), 0o755))
	write(t, e.p("d/f"), "data")
	res, err := Hybrid(t.Context(), e.cfg, e.cat, e.log)
	must(t, err)
	must(t, res.CommitEntries(e.cat, nil))
	again, err := Hybrid(t.Context(), e.cfg, e.cat, e.log)
	must(t, err)
	got := e.lines(again)
	for _, r := range again.Records {
		if r.Kind == changelog.Entry {
			t.Fatalf("entry op replayed after CommitEntries: %q", got)
		}
	}
	for _, want := range []string{"D /d/f", "M SETATTR /d"} {
		if !slices.Contains(got, want) {
			t.Fatalf("replay %q lacks %q", got, want)
		}
	}
}

// An xattr set on a directory is reported on the directory itself: the
// scoped crawl reads the directory's xattrs too.
func TestScopedDirectoryXattr(t *testing.T) {
	e := newEnv(t)
	e.cfg.SyncXattrs = true
	must(t, os.Mkdir(e.p("d"), 0o755))
	e.crawl()
	if err := unix.Setxattr(e.p("d"), "user.note", nil, 0); err != nil {
		t.Skipf("user xattrs unsupported here: %v", err)
	}
	fd, err := unix.Open(e.p("d"), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	must(t, err)
	defer unix.Close(fd)
	res, err := Scoped(t.Context(), e.cfg, e.cat, []Dir{{Fd: fd, Rel: "d", Names: map[string]bool{"": false}}}, e.log)
	must(t, err)
	if got := e.lines(res); !slices.Contains(got, "M SETXATTR /d") {
		t.Fatalf("records %q lack the directory's SETXATTR", got)
	}
}

// A hardlinked file changed through one of its names (chmod, utime, a
// same-size rewrite) whose name is then removed or given to another inode
// before the scoped crawl: the journal reported the change under that name
// only, and the file is still on the source under its other name. The
// crawl re-examines it there and carries the change.
func TestScopedChangedThroughLostName(t *testing.T) {
	for _, tc := range []struct {
		name string
		lose func(e *env, j *journal)
	}{
		{"removed", func(e *env, j *journal) {
			must(t, os.Remove(e.p("c/hard")))
			j.note(e.p("c/hard"), false)
		}},
		{"renamed over", func(e *env, j *journal) {
			write(t, e.p("c/other"), "other")
			j.note(e.p("c/other"), true)
			must(t, os.Rename(e.p("c/other"), e.p("c/hard")))
			j.note(e.p("c/other"), false)
			j.note(e.p("c/hard"), false)
		}},
		{"directory removed", func(e *env, j *journal) {
			// The name's directory goes, with the record of the change
			// (its handle is stale).
			must(t, os.RemoveAll(e.p("c")))
			j.note(e.p("c"), false)
		}},
		{"directory renamed", func(e *env, j *journal) {
			// The other name's directory moves in the same batch.
			must(t, os.Rename(e.p("a"), e.p("a2")))
			j.note(e.p("a"), false)
			j.note(e.p("a2"), false)
			must(t, os.Remove(e.p("c/hard")))
			j.note(e.p("c/hard"), false)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			must(t, os.MkdirAll(e.p("a/b"), 0o755))
			must(t, os.MkdirAll(e.p("c"), 0o755))
			write(t, e.p("a/b/f"), "one")
			must(t, os.Link(e.p("a/b/f"), e.p("c/hard")))
			e.crawl()
			j := newJournal(t, e.src)

			must(t, os.Chmod(e.p("c/hard"), 0o600))
			old := time.Date(2011, 2, 3, 4, 5, 6, 7, time.UTC)
			must(t, os.Chtimes(e.p("c/hard"), old, old))
			j.note(e.p("c/hard"), false)
			tc.lose(e, j)

			res, err := Scoped(t.Context(), e.cfg, e.cat, j.dirs(), e.log)
			must(t, err)
			for i, r := range res.Records {
				if err := e.sim.apply(r); err != nil {
					t.Fatalf("record %d %q is invalid: %v", i, e.describe(res, r), err)
				}
			}
			must(t, res.Commit(e.cat, nil, nil))
			full, err := Hybrid(t.Context(), e.cfg, e.cat, e.log)
			must(t, err)
			if got := e.lines(full); len(got) > 0 {
				t.Fatalf("the scoped crawl missed changes a hybrid crawl finds: %q\nscoped records: %q", got, e.lines(res))
			}
		})
	}
}

// The two halves of a directory's rename in different batches (the journal
// was read between them). New name first: that batch moves the directory
// there, since a directory has one name, and the old name, examined in the
// next batch, removes nothing (an RMDIR of it would take the slave's
// directory with everything in it, and the catalog would still have it).
// Old name first: the directory is deleted, then created again whole.
func TestScopedDirectoryRenameHalves(t *testing.T) {
	for _, first := range []string{"new", "old"} {
		t.Run(first+" name first", func(t *testing.T) {
			e := newEnv(t)
			must(t, os.MkdirAll(e.p("a/sub"), 0o755))
			write(t, e.p("a/sub/f"), "data")
			e.crawl()
			j := newJournal(t, e.src)
			must(t, os.Rename(e.p("a"), e.p("b")))
			halves := []string{e.p("b"), e.p("a")}
			if first == "old" {
				halves[0], halves[1] = halves[1], halves[0]
			}
			for _, p := range halves {
				j.note(p, false)
				res, err := Scoped(t.Context(), e.cfg, e.cat, j.dirs(), e.log)
				if errors.Is(err, ErrIncomplete) {
					continue // a hybrid crawl would follow: fine
				}
				must(t, err)
				for i, r := range res.Records {
					if err := e.sim.apply(r); err != nil {
						t.Fatalf("record %d %q is invalid: %v\n%q", i, e.describe(res, r), err, e.lines(res))
					}
					if first == "new" && r.Kind == changelog.Entry && r.Fop == changelog.Rmdir {
						t.Fatalf("a renamed directory removed: %q", e.lines(res))
					}
				}
				must(t, res.Commit(e.cat, nil, nil))
			}
			full, err := Hybrid(t.Context(), e.cfg, e.cat, e.log)
			must(t, err)
			if d := e.sim.diffNames(full.Snapshot, false); d != "" {
				t.Fatalf("slave differs from the tree:\n%s", d)
			}
			if got := e.lines(full); len(got) > 0 {
				t.Fatalf("the scoped crawls missed %q", got)
			}
		})
	}
}

// With WritesRecorded (a brick's changelog, which marks every write), a
// rename, which changes the file's ctime, ships no data; a write marked, a
// change of size or mtime, and a ctime the catalog holds as impossible
// still do. Without it, the renamed file's ctime ships its data.
func TestScopedWritesRecordedCtime(t *testing.T) {
	for _, recorded := range []bool{false, true} {
		t.Run(fmt.Sprintf("recorded=%v", recorded), func(t *testing.T) {
			e := newEnv(t)
			e.cfg.WritesRecorded = recorded
			must(t, os.MkdirAll(e.p("a"), 0o755))
			must(t, os.MkdirAll(e.p("b"), 0o755))
			write(t, e.p("a/moved"), "moved")
			write(t, e.p("a/written"), "written")
			write(t, e.p("a/grown"), "grown")
			e.crawl()
			time.Sleep(20 * time.Millisecond) // a later ctime, whatever the clock's tick
			j := newJournal(t, e.src)
			must(t, os.Rename(e.p("a/moved"), e.p("b/moved")))
			j.note(e.p("a/moved"), false)
			j.note(e.p("b/moved"), false)
			// Rewritten in place, same size, the mtime put back: only the
			// mark tells.
			var st unix.Stat_t
			must(t, unix.Lstat(e.p("a/written"), &st))
			write(t, e.p("a/written"), "WRITTEN")
			mt := time.Unix(st.Mtim.Sec, st.Mtim.Nsec)
			must(t, os.Chtimes(e.p("a/written"), mt, mt))
			j.note(e.p("a/written"), true)
			write(t, e.p("a/grown"), "grown more")
			j.note(e.p("a/grown"), false)
			res := e.scoped(j)
			data := map[string]bool{}
			for _, r := range res.Records {
				if r.Kind == changelog.Data {
					p, _ := res.Snapshot.Path(r.GFID)
					rel, _ := filepath.Rel(e.src, p)
					data[rel] = true
				}
			}
			want := map[string]bool{"a/written": true, "a/grown": true, "b/moved": !recorded}
			for rel, w := range want {
				if data[rel] != w {
					t.Errorf("%s: data record %v, want %v (records: %q)", rel, data[rel], w, e.lines(res))
				}
			}
		})
	}
}
