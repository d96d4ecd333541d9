package integration

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/integration/harness"
)

// detectors are the change detectors the live tests run the daemon with, one
// subtest each; "" passes no --change-detector flag (the daemon's default).
var detectors = []string{"changelog", "xsync"}

var liveSeed = flag.Uint64("live-seed", 0, "seed of the live writers of TestLive (0: a fixed default)")

// Live tests' bounds. None is a timing assertion: the writers stop after
// liveWriteFor or liveMaxSteps steps each, whichever comes first, and
// liveConverge only stops a test that would otherwise hang.
const (
	liveWriteFor = 3 * time.Second
	liveMaxSteps = 5000
	liveConverge = 60 * time.Second
)

func detectorName(det string) string {
	if det == "" {
		return "default"
	}
	return det
}

// liveArgs are the daemon flags of the live tests for detector det.
func liveArgs(det string) []string {
	// The writers delete whole subtrees on purpose (rm -rf, directories
	// replaced): a pass that catches more than half the tree deleted would
	// be refused by max-delete, whose own tests are in guard_test.go.
	args := []string{"--change-interval", "500ms", "--max-delete", "off"}
	if det != "" {
		args = append(args, "--change-detector", det)
	}
	return args
}

// waitLive polls until the replica dst matches src and fails the test with
// the differences and the tail of the master's log otherwise.
func waitLive(t *testing.T, m *harness.Proc, src, dst, what string) {
	t.Helper()
	if m.Exited() {
		t.Fatalf("%s: the master daemon exited:\n%s", what, lastLines(m.Log(), 40))
	}
	diffs, err := harness.WaitConverged(src, dst, harness.CompareOptions{}, liveConverge)
	if err == nil && len(diffs) == 0 {
		return
	}
	if len(diffs) > 30 {
		diffs = append(diffs[:30], fmt.Sprintf("... (%d differences)", len(diffs)))
	}
	if err != nil {
		diffs = append(diffs, "compare: "+err.Error())
	}
	t.Fatalf("%s: the replica still differs from the source after %s:\n%s\nmaster log (last 40 lines, exited: %v):\n%s",
		what, liveConverge, strings.Join(diffs, "\n"), m.Exited(), lastLines(m.Log(), 40))
}

// liveScenario is a kind of concurrent change: setup makes its starting tree
// under root before the daemon starts; writers returns the loops that change
// it while the daemon runs, and a function that releases what they hold open
// once they have stopped.
type liveScenario struct {
	name    string
	setup   func(root string, rng *rand.Rand) error
	writers func(root string) ([]harness.Writer, func())
}

var liveScenarios = []liveScenario{
	{"renames-vs-writes", renamesSetup, renamesWriters},
	{"rmrf-vs-creates", rmrfSetup, rmrfWriters},
	{"dir-rename-vs-writes", dirRenameSetup, dirRenameWriters},
	{"replace-name", replaceSetup, replaceWriters},
	{"mix", mixSetup, mixWriters},
}

// TestLive runs the daemon while writers change the source at the same time
// (renames racing with writes, rm -rf of a directory while files are created
// in it, a directory renamed while files in it are written, a file renamed
// away and a new one created under its old name, and all of it at once), then
// stops the writers and checks that the replica converges to the source. One
// daemon per detector serves every scenario in turn, each in its own
// directory. Replay the writers' choices with -live-seed (the interleaving
// with the daemon is not reproducible).
func TestLive(t *testing.T) {
	base := uint64(20260501)
	if *liveSeed != 0 {
		base = *liveSeed
	}
	for _, det := range detectors {
		t.Run(detectorName(det), func(t *testing.T) {
			s := newSite(t)
			rng := rand.New(rand.NewPCG(base, 99))
			if err := harness.Populate(s.src, rng); err != nil {
				t.Fatal(err)
			}
			for _, sc := range liveScenarios {
				if err := sc.setup(filepath.Join(s.src, sc.name), rng); err != nil {
					t.Fatalf("set up %s: %v", sc.name, err)
				}
			}
			m := harness.StartMasterProc(t, nil, s.args(liveArgs(det)...)...)
			waitLive(t, m, s.src, s.replica, "the initial sync")
			for i, sc := range liveScenarios {
				t.Run(sc.name, func(t *testing.T) {
					seed := base + uint64(i)
					t.Logf("writers' seed %d (replay with -live-seed %d -run 'TestLive/%s/%s')", seed, base, detectorName(det), sc.name)
					root := filepath.Join(s.src, sc.name)
					ws, release := sc.writers(root)
					counts, err := harness.RunWriters(t.Context(), seed, liveWriteFor, liveMaxSteps, ws...)
					release()
					t.Logf("writers: %s", counts)
					t.Logf("master so far: %d crawls, %d warnings", strings.Count(m.Log(), "hybrid crawl started"), strings.Count(m.Log(), "level=WARN"))
					if err != nil {
						t.Fatalf("a writer failed (seed %d): %v", seed, err)
					}
					waitLive(t, m, root, filepath.Join(s.replica, sc.name), fmt.Sprintf("after %s (seed %d)", sc.name, seed))
				})
			}
			// Nothing leaked out of a scenario's directory either.
			waitLive(t, m, s.src, s.replica, "the whole tree after every scenario")
		})
	}
}

// TestLiveIdleWrite: once the daemon has converged and is idle, a single
// write reaches the replica, whether it creates a file, rewrites one, or
// appends through a descriptor that stays open. How long it took is logged,
// not asserted.
func TestLiveIdleWrite(t *testing.T) {
	for _, det := range detectors {
		t.Run(detectorName(det), func(t *testing.T) {
			s := newSite(t)
			if err := harness.Populate(s.src, rand.New(rand.NewPCG(11, 12))); err != nil {
				t.Fatal(err)
			}
			for _, n := range []string{"existing", "log"} {
				if err := os.WriteFile(filepath.Join(s.src, "d1", n), []byte("before\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			m := harness.StartMasterProc(t, nil, s.args(liveArgs(det)...)...)
			waitLive(t, m, s.src, s.replica, "the initial sync")
			time.Sleep(1500 * time.Millisecond) // idle: the daemon has nothing to do

			logf, err := os.OpenFile(filepath.Join(s.src, "d1", "log"), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer logf.Close()
			steps := []struct {
				name, path string
				write      func(p string, b []byte) error
			}{
				{"new file", "d1/new", func(p string, b []byte) error { return os.WriteFile(p, b, 0o644) }},
				{"rewrite", "d1/existing", func(p string, b []byte) error { return os.WriteFile(p, b, 0o644) }},
				{"append kept open", "d1/log", func(p string, b []byte) error { _, err := logf.Write(b); return err }},
			}
			for i, st := range steps {
				p := filepath.Join(s.src, st.path)
				start := time.Now()
				if err := st.write(p, fmt.Appendf(nil, "idle write %d at %s\n", i, start.Format(time.RFC3339Nano))); err != nil {
					t.Fatalf("%s: %v", st.name, err)
				}
				want, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if !pollFile(filepath.Join(s.replica, st.path), want, liveConverge) {
					got, _ := os.ReadFile(filepath.Join(s.replica, st.path))
					t.Fatalf("%s: %s did not reach the replica within %s (replica has %q, want %q)\nmaster log (last 40 lines):\n%s",
						st.name, st.path, liveConverge, got, want, lastLines(m.Log(), 40))
				}
				t.Logf("%s: on the replica after %s", st.name, time.Since(start).Round(time.Millisecond))
			}
			waitLive(t, m, s.src, s.replica, "after the idle writes")
		})
	}
}

// pollFile polls every 10 ms until the file p holds want, up to timeout.
func pollFile(p string, want []byte, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if got, err := os.ReadFile(p); err == nil && bytes.Equal(got, want) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Helpers of the writers.

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := rng.Uint64()
		for k := 0; k < 8 && i+k < n; k++ {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b
}

// rewrite truncates the existing file p and writes b into it.
func rewrite(p string, b []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// appendFile appends b to p, creating it when create is set.
func appendFile(p string, b []byte, create bool) error {
	flags := os.O_WRONLY | os.O_APPEND | unix.O_NOFOLLOW
	if create {
		flags |= os.O_CREATE
	}
	f, err := os.OpenFile(p, flags, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// truncateSameSize truncates the regular file p and writes as many new bytes
// as it had, then sets its old modification time back: size and mtime are
// those the replica already has, only the bytes differ.
func truncateSameSize(p string, rng *rand.Rand) error {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size == 0 {
		return nil
	}
	if err := rewrite(p, randBytes(rng, int(st.Size))); err != nil {
		return err
	}
	return os.Chtimes(p, time.Unix(st.Atim.Unix()), time.Unix(st.Mtim.Unix()))
}

// (a) Renames racing with writes: files in a few directories are rewritten,
// or written chunk by chunk through a descriptor held across the chunks,
// while other goroutines rename them around (over existing names, into the
// other directories) and swap them.

const renDirs, renNames = 4, 16

func renPath(root string, rng *rand.Rand) string {
	return filepath.Join(root, fmt.Sprintf("r%d", rng.IntN(renDirs)), fmt.Sprintf("f%02d", rng.IntN(renNames)))
}

func renamesSetup(root string, rng *rand.Rand) error {
	for d := range renDirs {
		dir := filepath.Join(root, fmt.Sprintf("r%d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for n := range renNames {
			if rng.IntN(4) == 0 {
				continue
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d", n)), randBytes(rng, rng.IntN(8192)), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

func renamesWriters(root string) ([]harness.Writer, func()) {
	return []harness.Writer{
		// Rewrite with new content, or create (the renames over existing
		// names keep thinning the files out).
		func(rng *rand.Rand, _ int) error {
			p, b := renPath(root, rng), randBytes(rng, rng.IntN(8192))
			if rng.IntN(2) == 0 {
				return os.WriteFile(p, b, 0o644)
			}
			return rewrite(p, b)
		},
		// Write in chunks at random offsets through one descriptor, which
		// may be renamed between the chunks.
		func(rng *rand.Rand, _ int) error {
			f, err := os.OpenFile(renPath(root, rng), os.O_WRONLY|unix.O_NOFOLLOW, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			for range 4 {
				if _, err := f.WriteAt(randBytes(rng, 1024), rng.Int64N(8192)); err != nil {
					return err
				}
				time.Sleep(100 * time.Microsecond)
			}
			return f.Close()
		},
		// Rename, over an existing name or to a free one, in the same
		// directory or another.
		func(rng *rand.Rand, _ int) error {
			return os.Rename(renPath(root, rng), renPath(root, rng))
		},
		// Swap two names through a temporary one.
		func(rng *rand.Rand, _ int) error {
			a, b := renPath(root, rng), renPath(root, rng)
			tmp := filepath.Join(root, "r0", ".swap")
			if err := os.Rename(a, tmp); err != nil {
				return err
			}
			if err := os.Rename(b, a); err != nil {
				return err
			}
			return os.Rename(tmp, b)
		},
	}, func() {}
}

// (b) rm -rf of a directory while files are created inside it: creators
// re-create the directories as they go (os.MkdirAll), one writes each file in
// chunks through a descriptor (the file may be unlinked under it), and a
// remover deletes whole victims every few milliseconds.

func rmrfPath(root string, rng *rand.Rand) (dir, file string) {
	dir = filepath.Join(root, fmt.Sprintf("v%d", rng.IntN(2)), fmt.Sprintf("s%d", rng.IntN(3)))
	if rng.IntN(3) == 0 {
		dir = filepath.Join(dir, "deep", "er")
	}
	return dir, filepath.Join(dir, fmt.Sprintf("f%d", rng.IntN(6)))
}

func rmrfSetup(root string, rng *rand.Rand) error {
	for range 30 {
		dir, file := rmrfPath(root, rng)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(file, randBytes(rng, rng.IntN(4096)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func rmrfWriters(root string) ([]harness.Writer, func()) {
	create := func(rng *rand.Rand, _ int) error {
		dir, file := rmrfPath(root, rng)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		return os.WriteFile(file, randBytes(rng, rng.IntN(4096)), 0o644)
	}
	return []harness.Writer{
		create,
		create,
		func(rng *rand.Rand, _ int) error {
			dir, file := rmrfPath(root, rng)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
			if err != nil {
				return err
			}
			defer f.Close()
			for range 3 {
				if _, err := f.Write(randBytes(rng, 512)); err != nil {
					return err
				}
				time.Sleep(200 * time.Microsecond)
			}
			return f.Close()
		},
		func(rng *rand.Rand, _ int) error {
			time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
			return os.RemoveAll(filepath.Join(root, fmt.Sprintf("v%d", rng.IntN(2))))
		},
	}, func() {}
}

// (c) A directory renamed back and forth and into other directories while
// files in it are written and appended: by path (wherever it is now), through
// a descriptor of the directory itself (openat follows it), and through a
// file descriptor held open across many appends.

var dirPlaces = []string{"p/work", "p/work-renamed", "q/work", "q/inner/work"}

// findWork returns where the moving directory is now, "" if it is between
// places (it never is, but a writer may look while it moves).
func findWork(root string) string {
	for _, p := range dirPlaces {
		if fi, err := os.Lstat(filepath.Join(root, p)); err == nil && fi.IsDir() {
			return filepath.Join(root, p)
		}
	}
	return ""
}

func workFile(rng *rand.Rand) string {
	if rng.IntN(3) == 0 {
		return filepath.Join("sub", fmt.Sprintf("w%d", rng.IntN(4)))
	}
	return fmt.Sprintf("w%d", rng.IntN(8))
}

func dirRenameSetup(root string, rng *rand.Rand) error {
	for _, d := range []string{"p/work/sub", "q/inner"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	for range 10 {
		if err := os.WriteFile(filepath.Join(root, "p/work", workFile(rng)), randBytes(rng, rng.IntN(4096)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func dirRenameWriters(root string) ([]harness.Writer, func()) {
	dirfd := -1
	var held *os.File
	release := func() {
		if dirfd >= 0 {
			unix.Close(dirfd)
		}
		if held != nil {
			held.Close()
		}
	}
	return []harness.Writer{
		// Move the directory to another of its places.
		func(rng *rand.Rand, _ int) error {
			from := findWork(root)
			to := filepath.Join(root, dirPlaces[rng.IntN(len(dirPlaces))])
			if from == "" || from == to {
				return nil
			}
			return os.Rename(from, to)
		},
		// Append to, or rewrite, a file in it by path.
		func(rng *rand.Rand, step int) error {
			dir := findWork(root)
			if dir == "" {
				return nil
			}
			p := filepath.Join(dir, workFile(rng))
			if rng.IntN(2) == 0 {
				return appendFile(p, fmt.Appendf(nil, "by path %d\n", step), true)
			}
			return os.WriteFile(p, randBytes(rng, rng.IntN(4096)), 0o644)
		},
		// Create, append to and unlink files through a descriptor of the
		// directory, reopened now and then.
		func(rng *rand.Rand, step int) error {
			if dirfd < 0 || step%50 == 0 {
				if dirfd >= 0 {
					unix.Close(dirfd)
					dirfd = -1
				}
				dir := findWork(root)
				if dir == "" {
					return nil
				}
				fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
				if err != nil {
					return &os.PathError{Op: "open", Path: dir, Err: err}
				}
				dirfd = fd
			}
			name := workFile(rng)
			if rng.IntN(10) == 0 {
				if err := unix.Unlinkat(dirfd, name, 0); err != nil {
					return &os.PathError{Op: "unlinkat", Path: name, Err: err}
				}
				return nil
			}
			fd, err := unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_APPEND|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o644)
			if err != nil {
				return &os.PathError{Op: "openat", Path: name, Err: err}
			}
			_, err = unix.Write(fd, fmt.Appendf(nil, "by dirfd %d\n", step))
			unix.Close(fd)
			return err
		},
		// Append lines to one file through a descriptor kept open across
		// steps (a log), reopened now and then.
		func(rng *rand.Rand, step int) error {
			if held == nil || step%100 == 0 {
				if held != nil {
					held.Close()
					held = nil
				}
				dir := findWork(root)
				if dir == "" {
					return nil
				}
				f, err := os.OpenFile(filepath.Join(dir, "sub", "log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
				if err != nil {
					return err
				}
				held = f
			}
			_, err := fmt.Fprintf(held, "held %d %x\n", step, rng.Uint32())
			return err
		},
	}, release
}

// (d) A file renamed away and a new one created under its old name, in a
// loop, with new content each time: backup then write (an editor), write a
// temporary then rename it over (an atomic save), rotate then create
// exclusively (logrotate), and appends to whatever file has the name.

const replNames = 6

func replName(root string, rng *rand.Rand) (string, int) {
	k := rng.IntN(replNames)
	return filepath.Join(root, fmt.Sprintf("n%d", k)), k
}

func replaceSetup(root string, rng *rand.Rand) error {
	if err := os.MkdirAll(filepath.Join(root, "old"), 0o755); err != nil {
		return err
	}
	for k := range replNames {
		if err := os.WriteFile(filepath.Join(root, fmt.Sprintf("n%d", k)), randBytes(rng, rng.IntN(2048)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func replaceWriters(root string) ([]harness.Writer, func()) {
	return []harness.Writer{
		func(rng *rand.Rand, _ int) error {
			p, k := replName(root, rng)
			if err := os.Rename(p, filepath.Join(root, "old", fmt.Sprintf("n%d.%d", k, rng.IntN(3)))); err != nil && !harness.Benign(err) {
				return err
			}
			return os.WriteFile(p, randBytes(rng, rng.IntN(2048)), 0o644)
		},
		func(rng *rand.Rand, _ int) error {
			p, k := replName(root, rng)
			tmp := filepath.Join(root, fmt.Sprintf(".n%d.tmp", k))
			if err := os.WriteFile(tmp, randBytes(rng, rng.IntN(2048)), 0o600); err != nil {
				return err
			}
			return os.Rename(tmp, p)
		},
		func(rng *rand.Rand, step int) error {
			p, _ := replName(root, rng)
			if err := os.Rename(p, p+".1"); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(f, "rotated %d\n", step)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			return err
		},
		func(rng *rand.Rand, step int) error {
			p, _ := replName(root, rng)
			return appendFile(p, fmt.Appendf(nil, "appended %d\n", step), false)
		},
	}, func() {}
}

// (e) All of the above at once, each in its own subdirectory, plus
// hardlinks, symlinks replaced atomically, chmod, same-size rewrites whose
// mtime is set back (truncated and rewritten, or overwritten in place), and
// harness.Mutate on a tree of every file type.

func mixSetup(root string, rng *rand.Rand) error {
	for _, s := range []struct {
		dir   string
		setup func(string, *rand.Rand) error
	}{{"a", renamesSetup}, {"b", rmrfSetup}, {"c", dirRenameSetup}, {"d", replaceSetup}, {"mutate", harness.Populate}} {
		dir := filepath.Join(root, s.dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := s.setup(dir, rng); err != nil {
			return fmt.Errorf("%s: %w", s.dir, err)
		}
	}
	return os.MkdirAll(filepath.Join(root, "links"), 0o755)
}

func mixWriters(root string) ([]harness.Writer, func()) {
	var ws []harness.Writer
	var releases []func()
	for _, s := range []struct {
		dir     string
		writers func(string) ([]harness.Writer, func())
	}{{"a", renamesWriters}, {"b", rmrfWriters}, {"c", dirRenameWriters}, {"d", replaceWriters}} {
		w, release := s.writers(filepath.Join(root, s.dir))
		ws = append(ws, w...)
		releases = append(releases, release)
	}
	links := filepath.Join(root, "links")
	// A regular file of a or d (renamed, rewritten, replaced all along).
	target := func(rng *rand.Rand) string {
		if rng.IntN(2) == 0 {
			return renPath(filepath.Join(root, "a"), rng)
		}
		p, _ := replName(filepath.Join(root, "d"), rng)
		return p
	}
	ws = append(ws,
		// Hardlinks into links/, and links removed again.
		func(rng *rand.Rand, _ int) error {
			l := filepath.Join(links, fmt.Sprintf("h%d", rng.IntN(8)))
			if rng.IntN(3) == 0 {
				return os.Remove(l)
			}
			return os.Link(target(rng), l)
		},
		// Symlinks (relative, absolute, dangling) replaced through a
		// rename.
		func(rng *rand.Rand, _ int) error {
			targets := []string{"../a/r1/f03", "../d/n2", "/etc/hostname", "no/such/thing", "h1"}
			tmp := filepath.Join(links, ".s.tmp")
			os.Remove(tmp)
			if err := os.Symlink(targets[rng.IntN(len(targets))], tmp); err != nil {
				return err
			}
			return os.Rename(tmp, filepath.Join(links, fmt.Sprintf("s%d", rng.IntN(4))))
		},
		// chmod, setuid, setgid and sticky bits included.
		func(rng *rand.Rand, _ int) error {
			return unix.Fchmodat(unix.AT_FDCWD, target(rng), uint32(rng.IntN(0o10000)), 0)
		},
		// Same size, new bytes, old mtime: truncated and rewritten.
		func(rng *rand.Rand, _ int) error { return truncateSameSize(target(rng), rng) },
		// Same size, new bytes, old mtime: overwritten in place (a hardlink
		// of a or d, so the other names change too).
		func(rng *rand.Rand, _ int) error {
			p := filepath.Join(links, fmt.Sprintf("h%d", rng.IntN(8)))
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				return err
			}
			if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size == 0 {
				return nil
			}
			f, err := os.OpenFile(p, os.O_WRONLY|unix.O_NOFOLLOW, 0)
			if err != nil {
				return err
			}
			_, err = f.WriteAt(randBytes(rng, int(st.Size)), 0)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			return unix.UtimesNano(p, []unix.Timespec{st.Atim, st.Mtim})
		},
		// Every other kind of change, on a tree of every file type.
		func(rng *rand.Rand, _ int) error {
			_, err := harness.Mutate(filepath.Join(root, "mutate"), rng, 1)
			return err
		},
	)
	return ws, func() {
		for _, r := range releases {
			r()
		}
	}
}

// TestLiveFallbackWithoutFanotify runs the daemon as an unprivileged user,
// who may not mark a filesystem with fanotify: the master must say so in its
// log and keep replicating by periodic hybrid crawls.
func TestLiveFallbackWithoutFanotify(t *testing.T) {
	setpriv, src, dst, work := unprivilegedSite(t)
	if err := os.WriteFile(filepath.Join(src, "before"), []byte("one\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	slave := harness.StartSlave(t, dst)
	args := append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", harness.Bin(t, "georep-master")},
		harness.MasterArgs(slave.Addr, src, work, "--change-interval", "300ms")...)
	m := harness.StartProc(t, nil, setpriv, args...)
	if !m.WaitLog("falling back to a hybrid crawl every change-interval", 30*time.Second) {
		t.Fatalf("the master did not log its fallback:\n%s", lastLines(m.Log(), 20))
	}
	waitLive(t, m, src, dst, "the initial sync")
	if err := os.WriteFile(filepath.Join(src, "after"), []byte("two\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitLive(t, m, src, dst, "a write after the initial sync")
}

// TestLiveQueueOverflow makes the kernel drop events: the daemon is stopped
// (SIGSTOP) while more changes happen than its fanotify queue holds (the
// queue limit is lowered for the daemon's group only while it starts). The
// master must notice the overflow, crawl the whole tree, and converge.
func TestLiveQueueOverflow(t *testing.T) {
	harness.RequireRoot(t, "fanotify needs root")
	const sysctl = "/proc/sys/fs/fanotify/max_queued_events"
	old, err := os.ReadFile(sysctl)
	if err != nil {
		t.Skipf("no %s: %v", sysctl, err)
	}
	s := newSite(t)
	if err := os.WriteFile(filepath.Join(s.src, "seed"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sysctl, []byte("64\n"), 0o644); err != nil {
		t.Skipf("cannot lower %s: %v", sysctl, err)
	}
	restore := func() { os.WriteFile(sysctl, old, 0o644) }
	defer restore()
	m := harness.StartMasterProc(t, nil, s.args("--change-detector", "changelog")...)
	if !m.WaitLog("change journal started", 30*time.Second) {
		t.Fatalf("no change journal:\n%s", lastLines(m.Log(), 20))
	}
	restore() // the limit is read when the group is created
	waitLive(t, m, s.src, s.replica, "the initial sync")

	if err := m.Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		if err := os.WriteFile(filepath.Join(s.src, fmt.Sprintf("burst%03d", i)), []byte{byte(i)}, 0o644); err != nil {
			m.Cmd.Process.Signal(syscall.SIGCONT)
			t.Fatal(err)
		}
	}
	if err := m.Cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if !m.WaitLog("event queue overflowed", 30*time.Second) {
		t.Fatalf("the master did not report the overflow:\n%s", lastLines(m.Log(), 20))
	}
	waitLive(t, m, s.src, s.replica, "after the overflow")
}

// TestLiveFailureQueue makes the slave refuse a create (its directory is
// immutable): the failure is recorded in the work dir's failure queue with
// its reason, stime does not advance, and once the slave accepts again the
// retry (every change-interval) converges and empties the queue.
func TestLiveFailureQueue(t *testing.T) {
	harness.RequireRoot(t, "chattr +i needs root")
	chattr, err := exec.LookPath("chattr")
	if err != nil {
		t.Skip("chattr (e2fsprogs) not found")
	}
	for _, det := range detectors {
		t.Run(detectorName(det), func(t *testing.T) {
			s := newSite(t)
			if err := os.MkdirAll(filepath.Join(s.src, "d"), 0o755); err != nil {
				t.Fatal(err)
			}
			m := harness.StartMasterProc(t, nil, s.args(liveArgs(det)...)...)
			waitLive(t, m, s.src, s.replica, "the initial sync")
			dir := filepath.Join(s.replica, "d")
			if out, err := exec.Command(chattr, "+i", dir).CombinedOutput(); err != nil {
				t.Skipf("chattr +i on the replica's filesystem: %v: %s", err, out)
			}
			defer exec.Command(chattr, "-i", dir).Run()
			// The replica matches as soon as the first pass's ops are
			// applied; its stime is written after its verify.
			var stimeBefore []byte
			for deadline := time.Now().Add(liveConverge); len(stimeBefore) == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				stimeBefore, _ = os.ReadFile(filepath.Join(s.work, "stime"))
			}
			if len(stimeBefore) == 0 {
				t.Fatalf("no stime after the initial sync:\n%s", lastLines(m.Log(), 20))
			}

			if err := os.WriteFile(filepath.Join(s.src, "d", "blocked"), []byte("x\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			var queue []map[string]any
			deadline := time.Now().Add(liveConverge)
			for !slices.ContainsFunc(queue, func(f map[string]any) bool { return f["name"] == "blocked" }) && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
				if b, err := os.ReadFile(filepath.Join(s.work, "failures")); err == nil {
					json.Unmarshal(b, &queue)
				}
			}
			blocked := slices.IndexFunc(queue, func(f map[string]any) bool { return f["dir"] == "d" && f["name"] == "blocked" })
			if blocked < 0 || queue[blocked]["reason"] == "" {
				t.Fatalf("failure queue = %v, want the create of d/blocked with a reason", queue)
			}
			if !m.WaitLog("sync failure queued for retry", 10*time.Second) {
				t.Fatalf("the failure was not logged:\n%s", lastLines(m.Log(), 20))
			}
			time.Sleep(time.Second) // more retries, all refused
			if stimeAfter, _ := os.ReadFile(filepath.Join(s.work, "stime")); string(stimeAfter) != string(stimeBefore) {
				t.Fatalf("stime advanced past a failure: %s -> %s", stimeBefore, stimeAfter)
			}

			if out, err := exec.Command(chattr, "-i", dir).CombinedOutput(); err != nil {
				t.Fatalf("chattr -i: %v: %s", err, out)
			}
			waitLive(t, m, s.src, s.replica, "after the slave accepts again")
			deadline = time.Now().Add(liveConverge)
			for time.Now().Before(deadline) {
				b, _ := os.ReadFile(filepath.Join(s.work, "failures"))
				queue = nil
				json.Unmarshal(b, &queue)
				if len(queue) == 0 {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Fatalf("failure queue not emptied after convergence: %v", queue)
		})
	}
}
