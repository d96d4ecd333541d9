package master

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/georep/georep/master/catalog"
	"github.com/georep/georep/master/crawl"
	"github.com/georep/georep/master/slavefake"
	"github.com/georep/georep/master/syncer"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// fakeSlave is the in-memory slave of master/slavefake (the one the
// replica conformance suite checks) with the hooks the master's tests
// need: an entry op failed once, the ops applied, the names purged, the
// files written and a delay per EntryOps call. It implements slaveAPI in
// the ops types, as the gRPC client does; a test damages or inspects the
// namespace behind the master's back with the helpers of slavefake
// (Lookup, Put, Remove, Entries, Paths).
type fakeSlave struct {
	*slavefake.Slave
	log     []string
	failOne map[string]ops.Failure // op and name "CREATE a" → failure to return once
	purged  []string
	data    *fakeData     // where WriteFiles records what it wrote
	delay   time.Duration // per EntryOps call
	noWalk  bool          // a slave without Walk: verify lists one directory at a time
	walks   int           // Walk calls
	// walkSkip holds directories Walk does not list where they are (as a
	// slave that met their gfid first under a copy elsewhere).
	walkSkip map[gfid.GFID]bool
	noACL    bool // a slave without write-files-acl (WriteFiles cannot clear an ACL)
}

var _ slaveAPI = (*fakeSlave)(nil)

func (f *fakeSlave) writesACL() bool { return !f.noACL }

func newFakeSlave() *fakeSlave {
	return &fakeSlave{Slave: slavefake.New(gfid.New()), failOne: map[string]ops.Failure{}}
}

// EntryOps fails the entries named in failOne once and applies the others
// one by one, in order, logging each.
func (f *fakeSlave) EntryOps(ctx context.Context, entries []ops.Entry) ([]ops.Failure, error) {
	time.Sleep(f.delay)
	var fails []ops.Failure
	for i, e := range entries {
		key := fmt.Sprintf("%s %s", e.Op, e.Name)
		if fl, ok := f.failOne[key]; ok {
			delete(f.failOne, key)
			fl.Index = i
			fails = append(fails, fl)
			continue
		}
		more, err := f.Slave.EntryOps(ctx, []ops.Entry{e})
		if err != nil {
			return nil, err
		}
		for _, fl := range more {
			fl.Index = i
			fails = append(fails, fl)
		}
		f.log = append(f.log, key)
	}
	return fails, nil
}

// walk is the slave's Walk (slave/server.go) over the fake's listings:
// depth first, the first subdirectory next, each gfid once.
func (f *fakeSlave) walk(ctx context.Context, dir gfid.GFID, fn func(gfid.GFID, []ops.DirEntry, error) error) (bool, error) {
	if f.noWalk {
		return false, nil
	}
	f.walks++
	seen := map[gfid.GFID]bool{dir: true}
	stack := []gfid.GFID{dir}
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		ents, err := f.Entries(ctx, d)
		for i := len(ents) - 1; i >= 0; i-- {
			if e := ents[i]; e.Type == ops.TypeDir && !e.GFID.IsZero() && !seen[e.GFID] && !f.walkSkip[e.GFID] {
				seen[e.GFID] = true
				stack = append(stack, e.GFID)
			}
		}
		if err := fn(d, ents, err); err != nil {
			return true, err
		}
	}
	return true, nil
}

// Purge records the name and purges it.
func (f *fakeSlave) Purge(ctx context.Context, parent gfid.GFID, name string, only gfid.GFID) (uint64, error) {
	f.purged = append(f.purged, name)
	return f.Slave.Purge(ctx, parent, name, only)
}

// WriteFiles records the files in the fake data store, honouring its
// failures, and writes the others to the slave, as the real slave writes
// where rsync would.
func (f *fakeSlave) WriteFiles(ctx context.Context, files []ops.FileData) ([]ops.Failure, error) {
	d := f.data
	d.mu.Lock()
	defer d.mu.Unlock()
	d.writeCalls++
	d.maxWrite = max(d.maxWrite, len(files))
	var fails []ops.Failure
	var pass []ops.FileData
	var index []int
	for i, fd := range files {
		g := fd.GFID
		if err, ok := d.fail[g]; ok {
			fails = append(fails, ops.Failure{Index: i, Errno: syscall.EIO, Message: err.Error()})
			continue
		}
		d.shipped = append(d.shipped, g)
		d.written = append(d.written, fd)
		pass, index = append(pass, fd), append(index, i)
	}
	more, err := f.Slave.WriteFiles(ctx, pass)
	for i := range more {
		more[i].Index = index[more[i].Index]
	}
	return append(fails, more...), err
}

// paths renders the slave's namespace as sorted paths.
func (f *fakeSlave) paths() []string { return f.Paths() }

// put makes the slave's name parent/name hold g behind the master's back
// (slavefake's Put).
func (f *fakeSlave) put(t *testing.T, parent gfid.GFID, name string, g gfid.GFID) {
	t.Helper()
	if err := f.Put(parent, name, g); err != nil {
		t.Fatal(err)
	}
}

// entries lists the slave's directory dir (slavefake's Entries).
func (f *fakeSlave) entries(t *testing.T, dir gfid.GFID) []ops.DirEntry {
	t.Helper()
	es, err := f.Entries(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

type fakeData struct {
	mu      sync.Mutex  // Sync runs concurrently, as the real syncer's does
	shipped []gfid.GFID // by either path
	fail    map[gfid.GFID]error
	// synced are the items given to the data syncer (rsync); written the
	// files sent in writeCalls WriteFiles calls (the small-file path).
	synced     []syncer.Item
	written    []ops.FileData
	writeCalls int
	maxWrite   int // most files in one WriteFiles call
}

func (d *fakeData) Sync(ctx context.Context, items []syncer.Item) map[gfid.GFID]error {
	d.mu.Lock()
	defer d.mu.Unlock()
	failed := map[gfid.GFID]error{}
	for _, it := range items {
		if err, ok := d.fail[it.GFID]; ok {
			failed[it.GFID] = err
			continue
		}
		d.shipped = append(d.shipped, it.GFID)
		d.synced = append(d.synced, it)
	}
	return failed
}

type testWorker struct {
	*worker
	noVerify bool // skip the comparison with the slave after each pass
	src      string
	slave    *fakeSlave
	data     *fakeData
}

func newTestWorker(t *testing.T) *testWorker {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.Mkdir(src, 0o755)
	wd, err := openWorkDir(filepath.Join(dir, "work"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wd.close() })
	cat, err := catalog.Open(wd.path("catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	fs, fd := newFakeSlave(), &fakeData{fail: map[gfid.GFID]error{}}
	fs.data = fd
	cfg := DefaultConfig()
	cfg.Source = src
	w := &worker{cfg: cfg, log: slog.New(slog.DiscardHandler), wd: wd, cat: cat, slave: fs, data: fd, batch: 3}
	return &testWorker{worker: w, src: src, slave: fs, data: fd}
}

// crawlAndProcess runs one crawl and processes its changelog like pass does,
// without the session parts.
func (tw *testWorker) crawlAndProcess(t *testing.T) *outcome {
	t.Helper()
	res, err := crawl.Hybrid(t.Context(), crawl.Config{Source: tw.src, ChangelogDir: tw.wd.path("xsync")}, tw.cat, tw.log)
	if err != nil {
		t.Fatal(err)
	}
	out := &outcome{failed: map[gfid.GFID]string{}, dataFailed: map[gfid.GFID]bool{}}
	if res.Changelog != "" {
		if out, err = tw.processChangelog(t.Context(), res.Changelog, res.Snapshot, nil); err != nil {
			t.Fatal(err)
		}
	}
	failed := map[gfid.GFID]bool{}
	for g := range out.failed {
		failed[g] = true
	}
	if err := res.Commit(tw.cat, failed, out.dataFailed); err != nil {
		t.Fatal(err)
	}
	if tw.noVerify {
		return out
	}
	tw.verified = false
	if _, err := tw.verifyOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	return out
}

func (tw *testWorker) write(t *testing.T, rel, data string) {
	t.Helper()
	p := filepath.Join(tw.src, rel)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func assertPaths(t *testing.T, got []string, want ...string) {
	t.Helper()
	sort.Strings(want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("slave namespace = %q, want %q", got, want)
	}
}

func TestProcessBatchesInOrderAndRenames(t *testing.T) {
	tw := newTestWorker(t)
	tw.write(t, "a/b/f1", "1")
	tw.write(t, "a/f2", "2")
	tw.write(t, "g", "3")
	out := tw.crawlAndProcess(t) // batch of 3 entries per call: several calls, order kept
	if len(out.failed) > 0 {
		t.Fatal(out.failed)
	}
	assertPaths(t, tw.slave.paths(), "a", "a/b", "a/b/f1", "a/f2", "g")
	if len(tw.data.shipped) != 3 {
		t.Fatalf("shipped %d files, want 3", len(tw.data.shipped))
	}
	if err := os.Rename(filepath.Join(tw.src, "a"), filepath.Join(tw.src, "z")); err != nil {
		t.Fatal(err)
	}
	tw.data.shipped = nil
	tw.crawlAndProcess(t)
	assertPaths(t, tw.slave.paths(), "g", "z", "z/b", "z/b/f1", "z/f2")
	if len(tw.data.shipped) != 0 {
		t.Fatalf("a rename shipped data again: %d files", len(tw.data.shipped))
	}
}

func TestEntryConflictIsPurgedAndRetried(t *testing.T) {
	tw := newTestWorker(t)
	tw.write(t, "f", "x")
	other := gfid.New()
	tw.slave.put(t, gfid.Root, "f", other) // the slave holds another inode at that name
	tw.slave.failOne["CREATE f"] = ops.Failure{Errno: syscall.EEXIST, Message: "exists", Existing: other}
	out := tw.crawlAndProcess(t)
	if len(out.failed) > 0 {
		t.Fatalf("conflict not resolved: %v", out.failed)
	}
	if g, _ := tw.slave.Lookup(gfid.Root, "f"); len(tw.slave.purged) == 0 || g == other {
		t.Fatalf("conflicting name not purged: purged %q", tw.slave.purged)
	}
}

func TestVerifyRepairsSlave(t *testing.T) {
	for _, walk := range []bool{true, false} {
		t.Run(fmt.Sprintf("walk=%v", walk), func(t *testing.T) {
			tw := newTestWorker(t)
			tw.slave.noWalk = !walk
			tw.write(t, "d/keep", "1")
			tw.write(t, "d/lost", "2")
			tw.crawlAndProcess(t)
			// Damage the slave behind the catalog's back.
			d, _ := tw.slave.Lookup(gfid.Root, "d")
			tw.slave.Remove(d, "lost")
			tw.slave.put(t, d, "stray", gfid.New())
			tw.crawlAndProcess(t) // nothing changed on the source; verify finds both
			tw.crawlAndProcess(t) // the next pass recreates what was lost
			assertPaths(t, tw.slave.paths(), "d", "d/keep", "d/lost")
			if walk != (tw.slave.walks > 0) {
				t.Errorf("walk %v: the slave was walked %d times", walk, tw.slave.walks)
			}
		})
	}
}

// TestVerifyManyDirectories damages a tree of more directories than
// verify lists at once, at every depth: the walk and the listings one
// directory at a time find the same differences, and a directory the walk
// does not list where the catalog has it (a slave that met its gfid first
// under a copy made behind georep's back) is still compared there.
func TestVerifyManyDirectories(t *testing.T) {
	for _, walk := range []bool{true, false} {
		t.Run(fmt.Sprintf("walk=%v", walk), func(t *testing.T) {
			tw := newTestWorker(t)
			tw.slave.noWalk = !walk
			tw.noVerify = true
			var want []string
			for i := range verifyInFlight + 30 {
				rel := fmt.Sprintf("a%02d/b/c%d/f", i%40, i)
				tw.write(t, rel, "x")
			}
			tw.crawlAndProcess(t)
			want = tw.slave.paths()
			// Behind the catalog's back: a stray name deep down, a lost file,
			// a lost directory, and a lost file in a directory the walk skips.
			c := func(path ...string) gfid.GFID {
				g := gfid.Root
				for _, n := range path {
					g, _ = tw.slave.Lookup(g, n)
				}
				return g
			}
			tw.slave.put(t, c("a07", "b", "c7"), "stray", gfid.New())
			tw.slave.Remove(c("a33", "b", "c33"), "f")
			tw.slave.Remove(c("a12", "b"), "c52")
			tw.slave.walkSkip = map[gfid.GFID]bool{c("a01"): true}
			tw.slave.Remove(c("a01", "b", "c41"), "f")
			tw.verified = false
			found, err := tw.verifyOnce(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			// stray, f of c33, c52 (with its f), f of c41.
			if found != 4 {
				t.Errorf("verify found %d differences, want 4", found)
			}
			tw.crawlAndProcess(t)
			if got := tw.slave.paths(); !slices.Equal(got, want) {
				t.Errorf("after the repairing pass the slave holds %d paths, want %d: %q", len(got), len(want), got)
			}
		})
	}
}

func TestDataFailureKeepsGFIDPending(t *testing.T) {
	tw := newTestWorker(t)
	tw.write(t, "f", "x")
	res, err := crawl.Hybrid(t.Context(), crawl.Config{Source: tw.src, ChangelogDir: tw.wd.path("xsync")}, tw.cat, tw.log)
	if err != nil {
		t.Fatal(err)
	}
	var fg gfid.GFID
	for _, g := range res.Snapshot.GFIDs() {
		if n, _ := res.Snapshot.Lookup(g); n.Type == catalog.TypeReg {
			fg = g
		}
	}
	tw.data.fail[fg] = fmt.Errorf("rsync exit 23")
	out, err := tw.processChangelog(t.Context(), res.Changelog, res.Snapshot, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !out.dataFailed[fg] {
		t.Fatalf("data failure not reported: %v", out.dataFailed)
	}
	if err := res.Commit(tw.cat, nil, out.dataFailed); err != nil {
		t.Fatal(err)
	}
	delete(tw.data.fail, fg)
	tw.crawlAndProcess(t)
	if len(tw.data.shipped) != 1 || tw.data.shipped[0] != fg {
		t.Fatalf("the file whose data failed was not shipped on the next pass: %v", tw.data.shipped)
	}
}

// TestDataFailureAfterRenameThenDelete: a file renamed over another whose
// data then fails to ship, and which is deleted before the next pass, must
// not stay on the slave under its new name.
func TestDataFailureAfterRenameThenDelete(t *testing.T) {
	tw := newTestWorker(t)
	tw.noVerify = true // the catalog alone must get this right
	tw.write(t, "a", "1")
	tw.write(t, "b", "2")
	tw.crawlAndProcess(t)
	if err := os.Rename(filepath.Join(tw.src, "a"), filepath.Join(tw.src, "b")); err != nil {
		t.Fatal(err)
	}
	ga, _ := tw.slave.Lookup(gfid.Root, "a")
	tw.data.fail[ga] = fmt.Errorf("rsync: file vanished")
	tw.crawlAndProcess(t)
	assertPaths(t, tw.slave.paths(), "b")
	os.Remove(filepath.Join(tw.src, "b"))
	delete(tw.data.fail, ga)
	tw.crawlAndProcess(t)
	assertPaths(t, tw.slave.paths())
}

// TestSmallFilesGoThroughWriteFiles: files up to small-file-size are written
// whole through WriteFiles, with the bytes and attributes of the master's
// file as read; larger ones, files that grew past the threshold since the
// crawl and sparse ones go through the data syncer; a file that vanished or
// stopped being a regular file fails its data.
func TestSmallFilesGoThroughWriteFiles(t *testing.T) {
	tw := newTestWorker(t)
	tw.cfg.SmallFileSize = 1000
	tw.noVerify = true
	for i := range 7 {
		tw.write(t, fmt.Sprintf("s%d", i), strings.Repeat("x", 300+i)) // 7 small files: batches of 3 files (and ≤ 4 MiB)
	}
	tw.write(t, "empty", "")
	tw.write(t, "large", strings.Repeat("L", 1001))
	tw.write(t, "grows", "small now")
	tw.write(t, "gone", "vanishes")
	tw.write(t, "tolink", "becomes a symlink")
	if err := syscall.Chmod(filepath.Join(tw.src, "s0"), 0o4751); err != nil {
		t.Fatal(err)
	}
	mt := time.Date(2010, 1, 2, 3, 4, 5, 6000, time.UTC)
	if err := os.Chtimes(filepath.Join(tw.src, "s0"), mt, mt); err != nil {
		t.Fatal(err)
	}
	sparse, err := os.Create(filepath.Join(tw.src, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	sparse.Truncate(800) // all hole
	sparse.Close()

	res, err := crawl.Hybrid(t.Context(), crawl.Config{Source: tw.src, ChangelogDir: tw.wd.path("xsync")}, tw.cat, tw.log)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]gfid.GFID{}
	for _, g := range res.Snapshot.GFIDs() {
		if p, ok := res.Snapshot.Path(g); ok {
			byName[filepath.Base(p)] = g
		}
	}
	// Changes between the crawl and the shipping.
	tw.write(t, "grows", strings.Repeat("G", 5000))
	os.Remove(filepath.Join(tw.src, "gone"))
	os.Remove(filepath.Join(tw.src, "tolink"))
	os.Symlink("s1", filepath.Join(tw.src, "tolink"))

	out, err := tw.processChangelog(t.Context(), res.Changelog, res.Snapshot, nil)
	if err != nil {
		t.Fatal(err)
	}
	written := map[gfid.GFID]*ops.FileData{}
	for i, fd := range tw.data.written {
		written[fd.GFID] = &tw.data.written[i]
	}
	for i := range 7 {
		fd := written[byName[fmt.Sprintf("s%d", i)]]
		if fd == nil || string(fd.Data) != strings.Repeat("x", 300+i) {
			t.Errorf("s%d not written whole through WriteFiles: %v", i, fd)
		}
	}
	if fd := written[byName["empty"]]; fd == nil || len(fd.Data) != 0 {
		t.Errorf("empty file not written through WriteFiles: %v", fd)
	}
	s0 := written[byName["s0"]]
	if s0.Mode != 0o4751 || s0.UID != uint32(os.Geteuid()) || s0.GID != uint32(os.Getegid()) ||
		s0.Mtime.Unix() != mt.Unix() || s0.Mtime.Nanosecond() != mt.Nanosecond() {
		t.Errorf("s0 attributes %v, want mode 4751, owner %d:%d, mtime %v", s0, os.Geteuid(), os.Getegid(), mt)
	}
	if tw.data.maxWrite != 3 || tw.data.writeCalls < 3 { // 8 files (7 + empty) in batches of up to 3 (entry-batch)
		t.Errorf("%d WriteFiles calls of up to %d files, want at least 3 of up to 3", tw.data.writeCalls, tw.data.maxWrite)
	}
	synced := map[gfid.GFID]bool{}
	for _, it := range tw.data.synced {
		synced[it.GFID] = true
	}
	for _, name := range []string{"large", "grows", "sparse"} {
		if !synced[byName[name]] || written[byName[name]] != nil {
			t.Errorf("%s: synced %v, written %v; want the data syncer only", name, synced[byName[name]], written[byName[name]] != nil)
		}
	}
	if len(synced) != 3 {
		t.Errorf("data syncer got %d files, want 3", len(synced))
	}
	for _, name := range []string{"gone", "tolink"} {
		if !out.dataFailed[byName[name]] {
			t.Errorf("%s: data failure not reported: %v", name, out.dataFailed)
		}
	}
	if len(out.dataFailed) != 2 {
		t.Errorf("data failures %v, want gone and tolink", out.dataFailed)
	}
}

func TestSmallFilesDisabled(t *testing.T) {
	for name, edit := range map[string]func(*testWorker){
		"small-file-size 0": func(tw *testWorker) { tw.cfg.SmallFileSize = 0 },
		// A slave that cannot clear an ACL: rsync -A ships every file (see
		// TestSmallFilesWithACLs for one that can).
		"sync-acls, slave without write-files-acl": func(tw *testWorker) { tw.cfg.SyncACLs, tw.slave.noACL = true, true },
	} {
		t.Run(name, func(t *testing.T) {
			tw := newTestWorker(t)
			edit(tw)
			tw.write(t, "a", "1")
			tw.write(t, "b", "")
			tw.crawlAndProcess(t)
			if tw.data.writeCalls != 0 || len(tw.data.synced) != 2 {
				t.Fatalf("WriteFiles calls %d, synced %d; want 0 and 2", tw.data.writeCalls, len(tw.data.synced))
			}
		})
	}
}

func TestSmallBatcher(t *testing.T) {
	var b smallBatcher
	sizes := []int64{1, 2 << 20, 2 << 20, 1, 4 << 20, 5 << 20, 1, 1, 1, 1}
	for _, s := range sizes {
		b.add(syncer.Item{GFID: gfid.New()}, s, 3)
	}
	var got []int
	for _, batch := range b.done() {
		got = append(got, len(batch))
	}
	// [1, 2M] [2M, 1] [4M] [5M] [1 1 1] [1]: ≤ 4 MiB unless one file alone, ≤ 3 files
	if fmt.Sprint(got) != "[2 2 1 1 3 1]" {
		t.Fatalf("batch sizes %v", got)
	}
}

// TestProgressLogged: a long changelog reports its progress.
func TestProgressLogged(t *testing.T) {
	old := progressEvery
	progressEvery = 5 * time.Millisecond
	defer func() { progressEvery = old }()
	tw := newTestWorker(t)
	var logs strings.Builder
	tw.log = slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))
	for i := range 10 {
		tw.write(t, fmt.Sprintf("f%d", i), "x")
	}
	tw.slave.delay = 20 * time.Millisecond // batches of 3: four slow calls
	tw.crawlAndProcess(t)
	if !strings.Contains(logs.String(), "msg=progress") || !strings.Contains(logs.String(), "entries=10") {
		t.Fatalf("no progress logged:\n%s", logs.String())
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// A slave that lost a directory (and what was in it) behind the catalog's
// back: a CREATE inside it finds no parent, the rounds recreate the parent
// chain from the master's snapshot and retry.
func TestEntryFailureRoundsCreateMissingParents(t *testing.T) {
	tw := newTestWorker(t)
	tw.noVerify = true
	tw.write(t, "a/b/old", "1")
	tw.crawlAndProcess(t)
	// The slave loses a and a/b.
	tw.slave.Remove(gfid.Root, "a")
	tw.write(t, "a/b/new", "2")
	past := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	for _, d := range []string{"a/b", "a"} {
		if err := os.Chtimes(filepath.Join(tw.src, d), past, past); err != nil {
			t.Fatal(err)
		}
	}
	out := tw.crawlAndProcess(t)
	if len(out.failed) > 0 {
		t.Fatalf("not resolved: %v", out.failed)
	}
	paths := tw.slave.paths()
	for _, want := range []string{"a", "a/b", "a/b/new"} {
		if !slices.Contains(paths, want) {
			t.Fatalf("slave namespace %q lacks %q", paths, want)
		}
	}
	// The metas went behind the entry ops, before the rounds recreated the
	// directories: they are set again after them.
	a, _ := tw.slave.Lookup(gfid.Root, "a")
	b, _ := tw.slave.Lookup(a, "b")
	for name, g := range map[string]gfid.GFID{"a": a, "a/b": b} {
		if attr, err := tw.slave.Stat(t.Context(), g); err != nil || !attr.Mtime.Equal(past) {
			t.Errorf("%s on the slave: mtime %v (%v), want %v", name, attr.Mtime, err, past)
		}
	}
}

// A file the slave lost: its RENAME finds no gfid; the rounds create it at
// the new name and leave its data to the failure queue.
func TestEntryFailureRoundsRecreateMissingFile(t *testing.T) {
	tw := newTestWorker(t)
	tw.noVerify = true
	tw.write(t, "f", "1")
	tw.crawlAndProcess(t)
	tw.slave.Remove(gfid.Root, "f")
	if err := os.Rename(filepath.Join(tw.src, "f"), filepath.Join(tw.src, "g")); err != nil {
		t.Fatal(err)
	}
	out := tw.crawlAndProcess(t)
	if len(out.failed) > 0 {
		t.Fatalf("not resolved: %v", out.failed)
	}
	if paths := tw.slave.paths(); !slices.Contains(paths, "g") || slices.Contains(paths, "f") {
		t.Fatalf("slave namespace %q, want g and no f", paths)
	}
	if len(out.dataFailed) != 1 {
		t.Fatalf("data of the recreated file not left to the failure queue: %v", out.dataFailed)
	}
}

// A failure the master cannot resolve stops after a round without
// progress and is reported.
func TestEntryFailureRoundsStopWithoutProgress(t *testing.T) {
	tw := newTestWorker(t)
	tw.noVerify = true
	tw.write(t, "f", "1")
	tw.slave.failOne["CREATE f"] = ops.Failure{Errno: syscall.EACCES, Message: "permission denied"}
	out := tw.crawlAndProcess(t)
	if len(out.failed) != 1 {
		t.Fatalf("failed = %v, want the CREATE of f", out.failed)
	}
}

func TestFailureQueue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "failures")
	q, err := loadFailures(path)
	if err != nil {
		t.Fatal(err)
	}
	a, b := gfid.New(), gfid.New()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := q.update([]*failure{{GFID: a, Dir: "d", Name: "x", Reason: "EACCES"}}, true, t0); err != nil {
		t.Fatal(err)
	}
	// A pass that did not retry the queue keeps a; a new failure b joins.
	if err := q.update([]*failure{{GFID: b, Dir: ".", Name: "y", Data: true, Reason: "rsync"}}, false, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	// A retrying pass where a fails again: attempts grow, since stays; b is resolved.
	if err := q.update([]*failure{{GFID: a, Dir: "d", Name: "x", Reason: "EACCES"}}, true, t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	q2, err := loadFailures(path) // durable
	if err != nil {
		t.Fatal(err)
	}
	l := q2.list()
	if len(l) != 1 || l[0].GFID != a || l[0].Attempts != 2 || !l[0].Since.Equal(t0) || !l[0].Last.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("queue = %+v", l[0])
	}
	if err := os.WriteFile(path, []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadFailures(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("damaged queue: err = %v, want one naming the file", err)
	}
}

// A directory removed on the master that the slave holds more in: purged.
func TestEntryFailureRoundsPurgeNonEmptyDir(t *testing.T) {
	tw := newTestWorker(t)
	tw.noVerify = true
	tw.write(t, "d/f", "1")
	tw.crawlAndProcess(t)
	dg, _ := tw.slave.Lookup(gfid.Root, "d")
	tw.slave.put(t, dg, "stray", gfid.New())
	if err := os.RemoveAll(filepath.Join(tw.src, "d")); err != nil {
		t.Fatal(err)
	}
	out := tw.crawlAndProcess(t)
	if len(out.failed) > 0 {
		t.Fatalf("not resolved: %v", out.failed)
	}
	if _, ok := tw.slave.Lookup(gfid.Root, "d"); ok || !slices.Contains(tw.slave.purged, "d") {
		t.Fatalf("d not purged: purged %q", tw.slave.purged)
	}
}

// A name holding an inode without a gfid (a slave killed mid-create)
// answers EEXIST without a gfid: purged, and the create retried.
func TestEntryFailureRoundsPurgeUnmarkedName(t *testing.T) {
	tw := newTestWorker(t)
	tw.noVerify = true
	tw.write(t, "f", "1")
	tw.slave.failOne["CREATE f"] = ops.Failure{Errno: syscall.EEXIST, Message: "name exists and holds an inode without a gfid"}
	out := tw.crawlAndProcess(t)
	if len(out.failed) > 0 {
		t.Fatalf("not resolved: %v", out.failed)
	}
	if !slices.Contains(tw.slave.purged, "f") || !slices.Contains(tw.slave.paths(), "f") {
		t.Fatalf("purged %q, slave %q", tw.slave.purged, tw.slave.paths())
	}
}

// TestRmdirParentGoneOnSlave: an RMDIR refused ENOTEMPTY whose parent is
// gone on the slave by the time it is purged (another brick's worker
// removed the rest of the tree meanwhile) is retried, and the slave takes
// the missing parent for the directory removed: nothing is left failing,
// no failure without a place (which would cost a hybrid crawl).
func TestRmdirParentGoneOnSlave(t *testing.T) {
	tw := newTestWorker(t)
	tw.write(t, "a/b/f", "x")
	tw.crawlAndProcess(t)
	a, _ := tw.slave.Lookup(gfid.Root, "a")
	if err := os.RemoveAll(filepath.Join(tw.src, "a")); err != nil {
		t.Fatal(err)
	}
	// The RMDIR of b meets entries another worker has not removed yet;
	// by the purge, that worker has removed a with all in it.
	tw.slave.failOne["RMDIR b"] = ops.Failure{Errno: syscall.ENOTEMPTY, Message: "directory not empty"}
	tw.slave.Remove(gfid.Root, "a")
	tw.noVerify = true
	out := tw.crawlAndProcess(t)
	if len(out.failed) > 0 {
		t.Fatalf("RMDIR whose parent is gone on the slave failed: %v", out.failed)
	}
	if n, ok, _ := tw.cat.Node(a); ok {
		t.Fatalf("the catalog still has a: %+v", n)
	}
	assertPaths(t, tw.slave.paths())
}
