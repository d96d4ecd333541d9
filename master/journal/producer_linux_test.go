package journal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// waitFor bounds every wait of these tests.
const waitFor = 5 * time.Second

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// start starts a producer for the test, skipping it where fanotify cannot be
// used, and closes it at the end of the test.
func start(t *testing.T, ctx context.Context, cfg Config) *Producer {
	t.Helper()
	if cfg.Log == nil {
		cfg.Log = testLogger(t)
	}
	p, err := Start(ctx, cfg)
	if errors.Is(err, ErrUnsupported) {
		if errors.Is(err, unix.EPERM) {
			t.Skip("fanotify journal needs root (CAP_SYS_ADMIN): ", err)
		}
		t.Skip("fanotify journal unsupported here: ", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

func mkdirs(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func touch(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.WriteFile(p, []byte("data"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// tail follows a producer's journal, describing each record when it is
// read as "<kind> <dir relative to the source> <name or .>".
type tail struct {
	t    *testing.T
	p    *Producer
	dir  string
	src  string
	res  *Resolver
	cur  Cursor
	recs []Record
	desc []string
}

func newTail(t *testing.T, p *Producer, dir, src string) *tail {
	t.Helper()
	r, err := NewResolver(src)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return &tail{t: t, p: p, dir: dir, src: r.Source(), res: r, cur: Cursor{Gen: p.Generation()}}
}

// describe resolves rec's directory and checks that the descriptor Resolver
// returns is the directory at the relative path it returns.
func (tl *tail) describe(rec Record) string {
	if rec.Kind == Overflow {
		return "O"
	}
	name := rec.Name
	if name == "" {
		name = "."
	}
	fd, rel, err := tl.res.Open(rec.Dir)
	switch {
	case errors.Is(err, ErrStale):
		rel = "<stale>"
	case errors.Is(err, ErrOutside):
		rel = "<outside>"
	case err != nil:
		rel = "<" + err.Error() + ">"
	default:
		var got, want unix.Stat_t
		if err := unix.Fstat(fd, &got); err != nil {
			tl.t.Errorf("fstat %s: %v", rel, err)
		}
		if err := unix.Lstat(filepath.Join(tl.src, rel), &want); err == nil && (got.Ino != want.Ino || got.Dev != want.Dev) {
			rel = "<wrong " + rel + ">"
		}
		unix.Close(fd)
	}
	return fmt.Sprintf("%c %s %s", rec.Kind, rel, name)
}

// poll reads what the journal has now.
func (tl *tail) poll() {
	tl.t.Helper()
	recs, next, err := Read(tl.dir, tl.cur, 0)
	if err != nil {
		tl.t.Fatalf("Read(%+v): %v", tl.cur, err)
	}
	tl.cur = next
	for _, r := range recs {
		tl.recs = append(tl.recs, r)
		tl.desc = append(tl.desc, tl.describe(r))
	}
}

// until reads the journal until it holds every one of want.
func (tl *tail) until(want ...string) {
	tl.t.Helper()
	deadline := time.After(waitFor)
	for {
		tl.poll()
		var missing []string
		for _, w := range want {
			if !slices.Contains(tl.desc, w) {
				missing = append(missing, w)
			}
		}
		if len(missing) == 0 {
			return
		}
		select {
		case <-tl.p.Notify():
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			tl.t.Fatalf("journal lacks %q after %v; it has %q (producer err %v)", missing, waitFor, tl.desc, tl.p.Err())
		}
	}
}

func TestProducerEvents(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	sib := filepath.Join(base, "src-sib") // same filesystem, and src is a prefix of its name
	work := filepath.Join(src, ".work")
	jdir := filepath.Join(work, "journal")
	mkdirs(t, src, sib, work, filepath.Join(src, "keep"), filepath.Join(src, "m"), filepath.Join(src, "rd"),
		filepath.Join(src, "outdir"), filepath.Join(sib, "indir"))
	touch(t, filepath.Join(src, "keep", "out"), filepath.Join(src, "keep", "unl"), filepath.Join(src, "keep", "hl"),
		filepath.Join(sib, "in"))

	p := start(t, t.Context(), Config{Source: src, Dir: jdir, Rollover: time.Minute, Exclude: []string{work}})
	tl := newTail(t, p, jdir, src)
	j := func(elem ...string) string { return filepath.Join(append([]string{src}, elem...)...) }

	touch(t, j("f"))                                                // E . f, D . f
	must(t, os.Chmod(j("f"), 0o600))                                // M . f
	mkdirs(t, j("d"))                                               // E . d
	must(t, os.Chmod(j("d"), 0o700))                                // M d .
	touch(t, j("d", "g"))                                           // E d g, D d g
	must(t, os.Rename(j("f"), j("d", "f2")))                        // E . f, E d f2
	must(t, os.Rename(filepath.Join(sib, "in"), j("keep", "in")))   // E keep in
	must(t, os.Rename(j("keep", "out"), filepath.Join(sib, "out"))) // E keep out
	must(t, os.Remove(j("keep", "unl")))                            // E keep unl
	must(t, os.Remove(j("rd")))                                     // E . rd
	must(t, os.Link(j("keep", "hl"), j("d", "hl2")))                // E d hl2
	must(t, os.Symlink("target", j("d", "sl")))                     // E d sl
	must(t, os.Chmod(src, 0o711))                                   // M . .
	must(t, os.Rename(j("m"), j("m2")))                             // E . m, E . m2
	touch(t, j("m2", "k"))                                          // E m2 k
	must(t, os.Rename(filepath.Join(sib, "indir"), j("indir")))     // E . indir
	touch(t, j("indir", "z"))                                       // E indir z
	// Not recorded: outside the source, or excluded.
	touch(t, filepath.Join(sib, "outside-file"), filepath.Join(work, "excluded-file"))
	mkdirs(t, filepath.Join(sib, "outside-dir"))
	touch(t, filepath.Join(sib, "outside-dir", "outside-nested"))
	touch(t, j("marker1"))
	tl.until("E . f", "D . f", "M . f", "E . d", "M d .", "E d g", "D d g", "E d f2",
		"E keep in", "E keep out", "E keep unl", "E . rd", "E d hl2", "E d sl", "M . .",
		"E . m", "E . m2", "E m2 k", "E . indir", "E indir z", "E . marker1")

	// A directory moved out: its later events are dropped, although its
	// in/out decision was cached while it was inside.
	touch(t, j("outdir", "before"))
	tl.until("E outdir before")
	must(t, os.Rename(j("outdir"), filepath.Join(sib, "outdir")))
	touch(t, filepath.Join(sib, "outdir", "after-move"))
	touch(t, j("marker2"))
	tl.until("E . outdir", "E . marker2")

	t.Logf("records: %q", tl.desc)
	for i, d := range tl.desc {
		name := tl.recs[i].Name
		if strings.HasPrefix(name, "outside") || strings.HasPrefix(name, "excluded") || name == "after-move" ||
			strings.Contains(d, "<outside>") && name != "before" || strings.HasPrefix(d, "O") {
			t.Errorf("unexpected record %q", d)
		}
		if strings.HasPrefix(name, "JOURNAL.") || strings.HasPrefix(name, "HTIME.") {
			t.Errorf("the journal recorded itself: %q", d)
		}
	}
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
}

func readIndexLines(t *testing.T, dir string, gen int64) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, indexName(gen)))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func TestProducerRollover(t *testing.T) {
	base := t.TempDir()
	src, jdir := filepath.Join(base, "src"), filepath.Join(base, "journal")
	mkdirs(t, src)
	p := start(t, t.Context(), Config{Source: src, Dir: jdir, Rollover: MinRollover})
	tl := newTail(t, p, jdir, src)
	const files = 4
	for i := range files {
		name := "r" + strconv.Itoa(i)
		touch(t, filepath.Join(src, name))
		tl.until("E . " + name)
		// Wait for the file holding it to be indexed.
		deadline := time.Now().Add(waitFor)
		for {
			x, err := readIndex(jdir, p.Generation())
			must(t, err)
			if len(x.files) > i {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("file %d not indexed after %v", i+1, waitFor)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if tl.cur.Seq < files {
		t.Errorf("tail cursor %+v: did not cross into later files", tl.cur)
	}
	// Every indexed file exists with as many records as the index says.
	x, err := readIndex(jdir, p.Generation())
	must(t, err)
	for _, e := range x.files {
		recs, _, _, err := readFile(filepath.Join(jdir, journalName(p.Generation(), e.Seq)), Cursor{Gen: p.Generation(), Seq: e.Seq}, 0)
		must(t, err)
		if int64(len(recs)) != e.Records || e.Records == 0 || e.End < e.Start {
			t.Errorf("index %+v, file has %d records", e, len(recs))
		}
	}
	// One record at a time, from the start, across the files.
	var got []string
	cur := Cursor{Gen: p.Generation()}
	for range 1000 {
		recs, next, err := Read(jdir, cur, 1)
		must(t, err)
		if len(recs) == 0 {
			break
		}
		cur = next
		if recs[0].Kind == Entry && recs[0].Name != "" { // "": the directory itself, which the kernel may report too
			got = append(got, recs[0].Name)
		}
	}
	if want := []string{"r0", "r1", "r2", "r3"}; !slices.Equal(slices.Compact(got), want) {
		t.Errorf("entries %q, want %q", got, want)
	}
	// An empty file is not rolled over.
	n := len(x.files)
	time.Sleep(3 * MinRollover)
	x, err = readIndex(jdir, p.Generation())
	must(t, err)
	if len(x.files) != n {
		t.Errorf("index grew from %d to %d files without records", n, len(x.files))
	}
	// Close indexes the empty current file and ends the index.
	must(t, p.Close())
	lines := readIndexLines(t, jdir, p.Generation())
	if len(lines) != n+2 || !strings.HasPrefix(lines[n], strconv.Itoa(n+1)+" ") || !strings.HasSuffix(lines[n], " 0") ||
		!strings.HasPrefix(lines[n+1], "end ") {
		t.Errorf("index after Close: %q", lines)
	}
}

func TestProducerClose(t *testing.T) {
	base := t.TempDir()
	src, jdir := filepath.Join(base, "src"), filepath.Join(base, "journal")
	mkdirs(t, src)
	p := start(t, t.Context(), Config{Source: src, Dir: jdir, Rollover: time.Minute})
	touch(t, filepath.Join(src, "last"))
	// Close reads what is still queued.
	must(t, p.Close())
	must(t, p.Close())
	select {
	case <-p.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	recs, _, err := Read(jdir, Cursor{Gen: p.Generation()}, 0)
	must(t, err)
	if !slices.ContainsFunc(recs, func(r Record) bool { return r.Kind == Entry && r.Name == "last" }) {
		t.Errorf("records %+v lack the entry written just before Close", recs)
	}
	lines := readIndexLines(t, jdir, p.Generation())
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "1 ") || strings.HasSuffix(lines[0], " 0") || !strings.HasPrefix(lines[1], "end ") {
		t.Errorf("index after Close: %q", lines)
	}
}

func TestProducerContextCancel(t *testing.T) {
	base := t.TempDir()
	src, jdir := filepath.Join(base, "src"), filepath.Join(base, "journal")
	mkdirs(t, src)
	ctx, cancel := context.WithCancel(t.Context())
	p := start(t, ctx, Config{Source: src, Dir: jdir})
	cancel()
	select {
	case <-p.Done():
	case <-time.After(waitFor):
		t.Fatal("producer still running after its context was cancelled")
	}
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
	x, err := readIndex(jdir, p.Generation())
	must(t, err)
	if !x.ended || len(x.files) != 1 {
		t.Errorf("index %+v, want one file and end", x)
	}
	// A second producer in the same dir gets a later generation.
	p2 := start(t, t.Context(), Config{Source: src, Dir: jdir})
	if p2.Generation() <= p.Generation() {
		t.Errorf("generation %d after %d", p2.Generation(), p.Generation())
	}
}

func TestProducerOverflow(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/fs/fanotify/max_queued_events")
	if err != nil {
		t.Skip("no fanotify queue limit to overflow: ", err)
	}
	limit, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || limit > 100000 {
		t.Skipf("fanotify queue limit %q too large to overflow in a test", b)
	}
	base := t.TempDir()
	src, jdir := filepath.Join(base, "src"), filepath.Join(base, "journal")
	mkdirs(t, src)
	hold := make(chan struct{})
	p := start(t, t.Context(), Config{Source: src, Dir: jdir, Rollover: time.Minute, hold: hold})
	for i := range limit + 256 {
		fd, err := unix.Open(filepath.Join(src, "o"+strconv.Itoa(i)), unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
	}
	close(hold)
	tl := newTail(t, p, jdir, src)
	tl.until("O")
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestStartConfig(t *testing.T) {
	dir := t.TempDir()
	mkdirs(t, filepath.Join(dir, "j", "src"))
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no source", Config{Dir: dir}},
		{"no dir", Config{Source: dir}},
		{"rollover too short", Config{Source: dir, Dir: filepath.Join(dir, "j"), Rollover: time.Millisecond}},
		{"missing source", Config{Source: filepath.Join(dir, "missing"), Dir: filepath.Join(dir, "j")}},
		{"source not a directory", Config{Source: "/proc/self/exe", Dir: filepath.Join(dir, "j")}},
		{"journal dir is the source", Config{Source: dir, Dir: dir}},
		{"journal dir holds the source", Config{Source: filepath.Join(dir, "j", "src"), Dir: filepath.Join(dir, "j")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Start(t.Context(), tt.cfg)
			if err == nil {
				p.Close()
				t.Fatal("Start: no error")
			}
			if errors.Is(err, ErrUnsupported) {
				t.Fatalf("Start: %v, not a configuration error", err)
			}
		})
	}
}

func TestCoalesce(t *testing.T) {
	a, b := Handle{1, []byte{1}}, Handle{1, []byte{2}}
	in := []Record{
		{Kind: Entry, Dir: a, Name: "x"}, {Kind: Entry, Dir: a, Name: "x"}, {Kind: Data, Dir: a, Name: "x"},
		{Kind: Data, Dir: a, Name: "x"}, {Kind: Data, Dir: b, Name: "x"}, {Kind: Data, Dir: a, Name: "x"},
		{Kind: Overflow}, {Kind: Overflow}, {Kind: Meta, Dir: a}, {Kind: Meta, Dir: a, Name: "x"},
	}
	want := []Record{
		{Kind: Entry, Dir: a, Name: "x"}, {Kind: Data, Dir: a, Name: "x"}, {Kind: Data, Dir: b, Name: "x"},
		{Kind: Data, Dir: a, Name: "x"}, {Kind: Overflow}, {Kind: Meta, Dir: a}, {Kind: Meta, Dir: a, Name: "x"},
	}
	var p Producer
	for _, r := range in {
		p.add(r)
	}
	if !reflect.DeepEqual(p.recs, want) {
		t.Errorf("coalesced to %+v, want %+v", p.recs, want)
	}
}

func TestResolver(t *testing.T) {
	base := t.TempDir()
	src, out := filepath.Join(base, "src"), filepath.Join(base, "out")
	mkdirs(t, filepath.Join(src, "a", "b"), filepath.Join(src, "gone"), filepath.Join(src, "x (deleted)"), out)
	must(t, os.Symlink(src, filepath.Join(base, "link")))
	r, err := NewResolver(filepath.Join(base, "link"))
	must(t, err)
	defer r.Close()

	handle := func(path string) Handle {
		t.Helper()
		fh, _, err := unix.NameToHandleAt(unix.AT_FDCWD, path, 0)
		if err != nil {
			t.Skip("no file handles here: ", err)
		}
		return Handle{Type: fh.Type(), Bytes: fh.Bytes()}
	}
	hSrc, hB, hGone, hDel := handle(src), handle(filepath.Join(src, "a", "b")), handle(filepath.Join(src, "gone")), handle(filepath.Join(src, "x (deleted)"))
	hOut := handle(out)
	must(t, os.Remove(filepath.Join(src, "gone")))

	tests := []struct {
		name    string
		h       Handle
		rel     string
		wantErr error
	}{
		{"source", hSrc, ".", nil},
		{"nested", hB, "a/b", nil},
		{"name ending in (deleted)", hDel, "x (deleted)", nil},
		{"removed", hGone, "", ErrStale},
		{"outside", hOut, "", ErrOutside},
		{"garbage handle", Handle{Type: hSrc.Type, Bytes: []byte{1, 2, 3}}, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fd, rel, err := r.Open(tt.h)
			if errors.Is(err, unix.EPERM) {
				t.Skip("open_by_handle_at needs CAP_DAC_READ_SEARCH: ", err)
			}
			if tt.rel == "" {
				if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
					t.Fatalf("Open: %q %v, want error %v", rel, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			if rel != tt.rel {
				t.Errorf("rel %q, want %q", rel, tt.rel)
			}
			// The descriptor is a readable directory.
			if _, err := unix.Getdents(fd, make([]byte, 4096)); err != nil {
				t.Errorf("getdents: %v", err)
			}
		})
	}
	// A directory moved out of the source.
	must(t, os.Rename(filepath.Join(src, "a"), filepath.Join(out, "a")))
	if _, _, err := r.Open(hB); !errors.Is(err, ErrOutside) {
		t.Errorf("Open of a directory moved out: %v, want ErrOutside", err)
	}
}
