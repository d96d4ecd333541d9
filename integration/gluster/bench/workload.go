package bench

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// tree is what the slave must hold: every regular file by path relative to
// the root, with its size and SHA-256.
type tree map[string]fileSum

type fileSum struct {
	size int64
	sum  [sha256.Size]byte
}

func (t tree) bytes() int64 {
	var n int64
	for _, f := range t {
		n += f.size
	}
	return n
}

const perDir = 200 // small files per directory

func smallPath(i int) string {
	return filepath.Join(fmt.Sprintf("d%03d", i/perDir), fmt.Sprintf("f%05d", i))
}

func randBytes(rng *rand.Rand, p []byte) {
	for i := 0; i < len(p); i += 8 {
		v := rng.Uint64()
		for k := 0; k < 8 && i+k < len(p); k++ {
			p[i+k] = byte(v >> (8 * k))
		}
	}
}

// writeSmall writes n files of size bytes of random data under root, 200 to
// a directory, and returns them.
func writeSmall(tb testing.TB, root string, n, size int, seed uint64) tree {
	tb.Helper()
	rng := rand.New(rand.NewPCG(seed, seed))
	buf := make([]byte, size)
	want := tree{}
	for i := range n {
		rel := smallPath(i)
		if i%perDir == 0 {
			if err := os.Mkdir(filepath.Join(root, filepath.Dir(rel)), 0o755); err != nil {
				tb.Fatal(err)
			}
		}
		randBytes(rng, buf)
		if err := os.WriteFile(filepath.Join(root, rel), buf, 0o644); err != nil {
			tb.Fatal(err)
		}
		want[rel] = fileSum{size: int64(size), sum: sha256.Sum256(buf)}
	}
	return want
}

// writeBig writes n files of size bytes of random data at the top of root.
func writeBig(tb testing.TB, root string, n int, size int64, seed uint64) tree {
	tb.Helper()
	rng := rand.New(rand.NewPCG(seed, seed))
	chunk := make([]byte, 1<<20)
	want := tree{}
	for i := range n {
		rel := fmt.Sprintf("big%d", i)
		f, err := os.Create(filepath.Join(root, rel))
		if err != nil {
			tb.Fatal(err)
		}
		h := sha256.New()
		for off := int64(0); off < size; off += int64(len(chunk)) {
			p := chunk[:min(int64(len(chunk)), size-off)]
			randBytes(rng, p)
			h.Write(p)
			if _, err := f.Write(p); err != nil {
				f.Close()
				tb.Fatal(err)
			}
		}
		if err := f.Close(); err != nil {
			tb.Fatal(err)
		}
		var fs fileSum
		fs.size = size
		copy(fs.sum[:], h.Sum(nil))
		want[rel] = fs
	}
	return want
}

// ignoredTop are names at the top of a slave that are not the replica's: the
// georep slave's own state and its slave nodes' directory lock file, GlusterFS's
// trash directory.
var ignoredTop = map[string]bool{".georep": true, ".georep.lock": true, ".trashcan": true}

// namesDiff compares the names under root (files and directories, from
// readdir only) with want and returns the first difference ("" when none).
func namesDiff(root string, want tree) string {
	expect := map[string]bool{} // rel → is a directory
	for rel := range want {
		expect[rel] = false
		for d := filepath.Dir(rel); d != "."; d = filepath.Dir(d) {
			expect[d] = true
		}
	}
	seen := 0
	var walk func(rel string) string
	walk = func(rel string) string {
		ents, err := os.ReadDir(filepath.Join(root, rel))
		if err != nil {
			return err.Error()
		}
		for _, e := range ents {
			if rel == "" && ignoredTop[e.Name()] {
				continue
			}
			p := filepath.Join(rel, e.Name())
			isDir, ok := expect[p]
			if !ok {
				return "unexpected " + p
			}
			seen++
			if isDir != e.IsDir() {
				return fmt.Sprintf("%s: directory %v, want %v", p, e.IsDir(), isDir)
			}
			if isDir {
				if d := walk(p); d != "" {
					return d
				}
			}
		}
		return ""
	}
	if d := walk(""); d != "" {
		return d
	}
	if seen != len(expect) {
		for p := range expect {
			if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
				return "missing " + p
			}
		}
		return fmt.Sprintf("%d names, want %d", seen, len(expect))
	}
	return ""
}

// checkFiles reads the files rels under root (4 at a time) and returns those
// whose size or content differs from want, each with the reason.
func checkFiles(root string, want tree, rels []string) map[string]string {
	bad := map[string]string{}
	var mu sync.Mutex
	work := make(chan string)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rel := range work {
				if why := checkFile(filepath.Join(root, rel), want[rel]); why != "" {
					mu.Lock()
					bad[rel] = why
					mu.Unlock()
				}
			}
		}()
	}
	for _, rel := range rels {
		work <- rel
	}
	close(work)
	wg.Wait()
	return bad
}

func checkFile(p string, w fileSum) string {
	f, err := os.Open(p)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err.Error()
	}
	if !fi.Mode().IsRegular() {
		return "not a regular file: " + fi.Mode().String()
	}
	if fi.Size() != w.size {
		return fmt.Sprintf("size %d, want %d", fi.Size(), w.size)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err.Error()
	}
	if !bytes.Equal(h.Sum(nil), w.sum[:]) {
		return "content differs"
	}
	return ""
}

// result is one measurement of one tool.
type result struct {
	took  time.Duration
	err   string // why there is no figure: not converged, wrong replica, not run
	ran   bool
	wrong bool // the names were all there but contents wrong at the deadline
}

func (r result) ok() bool { return r.ran && r.err == "" }

// waitConverged waits until the slave view root holds want, name for name
// and byte for byte, or deadline. pre, when not nil, is a cheaper check that
// must pass first. The time reported is from start to the moment the names
// (and pre) first matched when every file's content was then right; if not,
// to the end of the check after which no file was wrong any more.
func waitConverged(root string, want tree, start, deadline time.Time, pre func() string, diag func() string) result {
	pending := slices.Sorted(func(yield func(string) bool) {
		for rel := range want {
			if !yield(rel) {
				return
			}
		}
	})
	var last string
	first, wrong := true, false
	for {
		last = ""
		if pre != nil {
			last = pre()
		}
		if last == "" && func() bool { last = namesDiff(root, want); wrong = wrong && last == ""; return last == "" }() {
			matched := time.Since(start)
			bad := checkFiles(root, want, pending)
			if len(bad) == 0 {
				if first {
					return result{ran: true, took: matched}
				}
				return result{ran: true, took: time.Since(start)}
			}
			first = false
			pending = pending[:0]
			for rel := range bad {
				pending = append(pending, rel)
			}
			slices.Sort(pending)
			last, wrong = describeBad(bad, len(want)), true
		} else {
			wrong = false
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("not converged after %s: %s", time.Since(start).Round(time.Second), last)
			if diag != nil {
				if d := diag(); d != "" {
					msg += "\n" + d
				}
			}
			return result{ran: true, err: msg, wrong: wrong}
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func describeBad(bad map[string]string, total int) string {
	rels := slices.Sorted(func(yield func(string) bool) {
		for rel := range bad {
			if !yield(rel) {
				return
			}
		}
	})
	var eg []string
	for _, rel := range rels[:min(3, len(rels))] {
		eg = append(eg, rel+": "+bad[rel])
	}
	return fmt.Sprintf("%d of %d files wrong on the slave (e.g. %s)", len(bad), total, strings.Join(eg, "; "))
}

// mixedOps applies each renames, deletes and overwrites (with new bytes) to
// distinct files of the small-file tree under root in a seeded order, updates
// want, and returns a check that the slave view shows their effect: "" when
// it does, else the first operation it does not show.
func mixedOps(tb testing.TB, root string, want tree, files, each int, seed uint64) func(slave string) string {
	tb.Helper()
	rng := rand.New(rand.NewPCG(seed, seed))
	dirs := (files + perDir - 1) / perDir
	type op struct {
		kind     byte // 'r'ename, 'd'elete, 'o'verwrite
		from, to string
		content  []byte
	}
	perm := rng.Perm(files)
	ops := make([]op, 0, 3*each)
	for _, i := range perm[:each] {
		ops = append(ops, op{kind: 'r', from: smallPath(i), to: filepath.Join(fmt.Sprintf("d%03d", rng.IntN(dirs)), fmt.Sprintf("r%05d", i))})
	}
	for _, i := range perm[each : 2*each] {
		ops = append(ops, op{kind: 'd', from: smallPath(i)})
	}
	for _, i := range perm[2*each : 3*each] {
		c := make([]byte, 4<<10)
		randBytes(rng, c)
		ops = append(ops, op{kind: 'o', from: smallPath(i), content: c})
	}
	rng.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
	for _, o := range ops {
		var err error
		switch o.kind {
		case 'r':
			err = os.Rename(filepath.Join(root, o.from), filepath.Join(root, o.to))
			want[o.to] = want[o.from]
			delete(want, o.from)
		case 'd':
			err = os.Remove(filepath.Join(root, o.from))
			delete(want, o.from)
		case 'o':
			err = os.WriteFile(filepath.Join(root, o.from), o.content, 0o644)
			want[o.from] = fileSum{size: int64(len(o.content)), sum: sha256.Sum256(o.content)}
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
	return func(slave string) string {
		n := 0
		first := ""
		for _, o := range ops {
			why := ""
			switch o.kind {
			case 'r', 'd':
				if _, err := os.Lstat(filepath.Join(slave, o.from)); !errors.Is(err, fs.ErrNotExist) {
					why = o.from + " still there"
				} else if o.kind == 'r' {
					if w := checkFile(filepath.Join(slave, o.to), want[o.to]); w != "" {
						why = o.to + ": " + w
					}
				}
			case 'o':
				if got, err := os.ReadFile(filepath.Join(slave, o.from)); err != nil || !bytes.Equal(got, o.content) {
					why = o.from + ": not overwritten"
				}
			}
			if why != "" {
				n++
				if first == "" {
					first = why
				}
			}
		}
		if n == 0 {
			return ""
		}
		return fmt.Sprintf("%d of %d operations not on the slave (e.g. %s)", n, len(ops), first)
	}
}

// latencies writes n new 4 KiB files one at a time on the master mount,
// after a random pause below a second each, and measures how long each takes
// to be on the slave view with the right content (polled every 5 ms). It
// stops at the first file not there within perWrite.
func latencies(master, slave string, n int, perWrite time.Duration, seed uint64, diag func() string) ([]time.Duration, string) {
	rng := rand.New(rand.NewPCG(seed, seed))
	var out []time.Duration
	for i := range n {
		time.Sleep(time.Duration(rng.IntN(1000)) * time.Millisecond)
		rel := filepath.Join("d000", fmt.Sprintf("latency-%03d", i))
		content := make([]byte, 4<<10)
		randBytes(rng, content)
		start := time.Now()
		if err := os.WriteFile(filepath.Join(master, rel), content, 0o644); err != nil {
			return out, err.Error()
		}
		for {
			if got, err := os.ReadFile(filepath.Join(slave, rel)); err == nil && bytes.Equal(got, content) {
				out = append(out, time.Since(start))
				break
			}
			if time.Since(start) > perWrite {
				msg := fmt.Sprintf("write %d (%s) not on the slave with its content after %s", i, rel, perWrite)
				if fi, err := os.Lstat(filepath.Join(slave, rel)); err == nil {
					msg += fmt.Sprintf(" (it is there with %d bytes)", fi.Size())
				}
				if diag != nil {
					msg += "\n" + diag()
				}
				return out, msg
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return out, ""
}
