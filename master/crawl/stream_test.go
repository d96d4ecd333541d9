package crawl

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// streamCrawl runs Stream with segments of segSize gfids, replays every
// Result on the simulated slave (each record valid where it stands) and
// commits it; then a Hybrid crawl must find nothing left to do and the
// slave must match the tree. It returns Stream's totals in a Result whose
// Snapshot is that Hybrid crawl's.
func (e *env) streamCrawl(segSize int) *Result {
	e.t.Helper()
	var all []string
	segs := 0
	st, err := Stream(e.t.Context(), StreamConfig{Config: e.cfg, Segment: segSize}, e.cat, e.log, func(res *Result) error {
		segs++
		for i, r := range res.Records {
			if err := e.sim.apply(r); err != nil {
				return fmt.Errorf("segment %d record %d %q is invalid: %v\n%s", segs, i, e.describe(res, r), err, strings.Join(append(all, e.lines(res)...), "\n"))
			}
		}
		all = append(all, fmt.Sprintf("-- segment %d", segs))
		all = append(all, e.lines(res)...)
		os.Remove(res.Changelog)
		return res.Commit(e.cat, nil, nil)
	})
	if err != nil {
		e.t.Fatalf("Stream: %v", err)
	}
	check, err := Hybrid(e.t.Context(), e.cfg, e.cat, e.log)
	if err != nil {
		e.t.Fatalf("Hybrid: %v", err)
	}
	if len(check.Records) > 0 {
		e.t.Fatalf("after Stream, a hybrid crawl still finds:\n%s\nStream emitted:\n%s", strings.Join(e.lines(check), "\n"), strings.Join(all, "\n"))
	}
	if d := e.sim.diffNames(check.Snapshot, e.cfg.IgnoreDeletes); d != "" {
		e.t.Fatalf("slave differs from the tree after Stream:\n%s\nStream emitted:\n%s", d, strings.Join(all, "\n"))
	}
	e.old, e.prev = e.prev, check.Snapshot
	return &Result{Stats: st, Snapshot: check.Snapshot}
}

// TestStreamRandomMutations is TestRandomMutations through Stream, with
// segments small enough that every directory spans several.
func TestStreamRandomMutations(t *testing.T) {
	seeds := []uint64{*propSeed}
	if *propSeed == 0 {
		seeds = []uint64{rand.Uint64(), rand.Uint64(), rand.Uint64(), rand.Uint64(), rand.Uint64(), rand.Uint64()}
	}
	for _, seed := range seeds {
		for _, seg := range []int{1, 3, DefaultSegment, -2} {
			name := fmt.Sprintf("%d/segment%d", seed, seg)
			chunk, big := listChunk, bigDir
			if seg < 0 {
				// Directories listed 2 names at a time, and all big:
				// the catalog's names looked up one by one.
				name = fmt.Sprintf("%d/chunked", seed)
				listChunk, bigDir, seg = 2, 0, 3
			}
			t.Run(name, func(t *testing.T) {
				defer func() {
					if t.Failed() {
						t.Logf("reproduce with: go test ./master/crawl -run 'TestStreamRandomMutations/%s' -crawl.seed=%d", name, seed)
					}
				}()
				r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
				e := newEnv(t)
				m := &mutator{t: t, r: r, root: e.src}
				for i := 0; i < 15; i++ {
					m.step()
				}
				e.streamCrawl(seg)
				for round := 0; round < *propRounds; round++ {
					n := 1 + r.IntN(12)
					for i := 0; i < n; i++ {
						m.step()
					}
					e.streamCrawl(seg)
				}
			})
			listChunk, bigDir = chunk, big
		}
	}
}

// TestStreamSegments checks that a first pass of a wide tree is emitted in
// segments no larger than asked, parents before children, and that a
// second pass emits nothing.
func TestStreamSegments(t *testing.T) {
	e := newEnv(t)
	for d := 0; d < 5; d++ {
		dir := filepath.Join(e.src, fmt.Sprintf("d%d", d))
		must(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o755))
		for f := 0; f < 40; f++ {
			write(t, filepath.Join(dir, fmt.Sprintf("f%02d", f)), "x")
		}
	}
	must(t, os.Link(filepath.Join(e.src, "d0", "f00"), filepath.Join(e.src, "d4", "sub", "hard")))
	var sizes []int
	_, err := Stream(t.Context(), StreamConfig{Config: e.cfg, Segment: 16}, e.cat, e.log, func(res *Result) error {
		sizes = append(sizes, len(res.changed))
		for _, r := range res.Records {
			if err := e.sim.apply(r); err != nil {
				return fmt.Errorf("%s: %v", e.describe(res, r), err)
			}
		}
		return res.Commit(e.cat, nil, nil)
	})
	must(t, err)
	total := 0
	for _, n := range sizes {
		if n > 16 {
			t.Errorf("a segment of %d gfids, asked for at most 16", n)
		}
		total += n
	}
	if want := 1 + 5*2 + 5*40; total != want || len(sizes) < want/16 {
		t.Errorf("%d gfids in %d segments, want %d in at least %d", total, len(sizes), want, want/16)
	}
	emitted := 0
	_, err = Stream(t.Context(), StreamConfig{Config: e.cfg, Segment: 16}, e.cat, e.log, func(res *Result) error { emitted++; return nil })
	must(t, err)
	if emitted != 0 {
		t.Errorf("a second pass with nothing changed emitted %d segments", emitted)
	}
}

// TestStreamHoldsSegmentsForTheDeleteGuard checks that no segment is
// emitted while the deletes the pass can still make are refused: a refused
// pass applies nothing and leaves nothing behind, an accepted one emits the
// held segments in order.
func TestStreamHoldsSegmentsForTheDeleteGuard(t *testing.T) {
	e := newEnv(t)
	must(t, os.Mkdir(e.p("d"), 0o755))
	for i := 0; i < 30; i++ {
		write(t, e.p(fmt.Sprintf("d/f%02d", i)), "x")
	}
	e.streamCrawl(DefaultSegment)
	for i := 0; i < 20; i++ {
		must(t, os.Remove(e.p(fmt.Sprintf("d/f%02d", i))))
	}
	must(t, os.Mkdir(e.p("a"), 0o755)) // walked before d: its segments come first
	for i := 0; i < 5; i++ {
		write(t, e.p(fmt.Sprintf("a/n%d", i)), "y")
	}
	errRefused := errors.New("refused")
	var asked []int64
	emitted := 0
	_, err := Stream(t.Context(), StreamConfig{Config: e.cfg, Segment: 2, CheckDeletes: func(n int64) error {
		asked = append(asked, n)
		if n > 10 {
			return errRefused
		}
		return nil
	}}, e.cat, e.log, func(res *Result) error { emitted++; return nil })
	if !errors.Is(err, errRefused) {
		t.Fatalf("Stream: %v, want the guard's refusal", err)
	}
	if emitted != 0 {
		t.Errorf("%d segments emitted by a refused pass", emitted)
	}
	if left, _ := os.ReadDir(e.cfg.ChangelogDir); len(left) != 0 {
		t.Errorf("a refused pass left %d files in the changelog dir", len(left))
	}
	if last := asked[len(asked)-1]; last != 20 {
		t.Errorf("the guard was last asked about %d deletes, want 20 (asked %v)", last, asked)
	}
	e.streamCrawl(2) // accepted: every record valid in order, nothing left
}
