package syncer

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/georep/georep/rpc/gfid"
)

// checkNoLeak fails the test if goroutines started during it are still
// running at its end.
func checkNoLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("goroutines leaked: %d > %d\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// fakeShip records batches and can hold them until released.
type fakeShip struct {
	mu      sync.Mutex
	batches [][]gfid.GFID
	started chan struct{} // gets a value when a batch starts
	gate    chan struct{} // a batch waits for a value (or close) here
	err     error
}

func (f *fakeShip) ship(ctx context.Context, j *job) error {
	var ids []gfid.GFID
	for id := range j.byID {
		ids = append(ids, id)
	}
	f.mu.Lock()
	f.batches = append(f.batches, ids)
	f.mu.Unlock()
	f.started <- struct{}{}
	select {
	case <-f.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	j.ran = true
	return f.err
}

// newTestSyncer runs a Syncer with f as its rsync; stop cancels Run and
// returns its result.
func newTestSyncer(t *testing.T, jobs int, f *fakeShip) (s *Syncer, stop func() error) {
	t.Helper()
	s, err := New(Config{Jobs: jobs, Tunnel: []string{"/bin/false"}, StageDir: filepath.Join(t.TempDir(), "stage")})
	if err != nil {
		t.Fatal(err)
	}
	s.ship = f.ship
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stop = sync.OnceValue(func() error { cancel(); return <-done })
	t.Cleanup(func() { _ = stop() })
	return s, stop
}

func items(n int) []Item {
	its := make([]Item, n)
	for i := range its {
		its[i] = Item{GFID: gfid.New(), Path: "/src/" + string(rune('a'+i%26))}
	}
	return its
}

func TestStagedQueueTakesEverything(t *testing.T) {
	checkNoLeak(t)
	f := &fakeShip{started: make(chan struct{}, 10), gate: make(chan struct{})}
	s, _ := newTestSyncer(t, 1, f)
	ctx := t.Context()

	first := items(1)
	var wg sync.WaitGroup
	results := make([]map[gfid.GFID]error, 4)
	wg.Go(func() { results[0] = s.Sync(ctx, first) })
	<-f.started // the only job is busy with the first call

	later := [][]Item{items(3), items(5), items(7)}
	dup := later[0][1] // queued twice: shipped once, both resolved
	later[2] = append(later[2], dup)
	for i, its := range later {
		wg.Go(func() { results[i+1] = s.Sync(ctx, its) })
	}
	// Wait until all three are queued.
	for {
		s.mu.Lock()
		n := len(s.queue)
		s.mu.Unlock()
		if n == 3 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(f.gate)
	wg.Wait()

	for i, r := range results {
		if len(r) != 0 {
			t.Errorf("call %d failed: %v", i, r)
		}
	}
	if len(f.batches) != 2 || len(f.batches[0]) != 1 || len(f.batches[1]) != 3+5+7 {
		t.Errorf("batch sizes %v, want [1 15]", batchSizes(f.batches))
	}
	if !slices.Contains(f.batches[1], dup.GFID) {
		t.Error("duplicate not shipped")
	}
	if st := s.Stats(); st.Runs != 2 {
		t.Errorf("stats %+v, want 2 runs", st)
	}
}

func batchSizes(b [][]gfid.GFID) []int {
	var n []int
	for _, x := range b {
		n = append(n, len(x))
	}
	return n
}

func TestRunFailureFailsTheWholeBatch(t *testing.T) {
	checkNoLeak(t)
	rerr := &RsyncError{Code: 23, Stderr: "x\na\nb\nrsync error: some files/attrs were not transferred (code 23)\n"}
	f := &fakeShip{started: make(chan struct{}, 10), gate: make(chan struct{}), err: rerr}
	close(f.gate)
	s, _ := newTestSyncer(t, 2, f)
	its := items(4)
	bad := Item{GFID: gfid.New(), Path: "relative/path"}
	zero := Item{Path: "/src/z"}
	fails := s.Sync(t.Context(), append(its, bad, zero))
	for _, it := range its {
		var re *RsyncError
		if !errors.As(fails[it.GFID], &re) || re.Code != 23 {
			t.Errorf("%s: %v, want the RsyncError", it.GFID, fails[it.GFID])
		}
	}
	if err := fails[bad.GFID]; err == nil || !strings.Contains(err.Error(), "not absolute") {
		t.Errorf("relative path: %v", err)
	}
	if err := fails[zero.GFID]; err == nil || !strings.Contains(err.Error(), "zero gfid") {
		t.Errorf("zero gfid: %v", err)
	}
	if got := rerr.Error(); !strings.Contains(got, "code 23") || !strings.Contains(got, "not transferred") || strings.Contains(got, "x;") {
		t.Errorf("RsyncError.Error() = %q", got)
	}
}

func TestSyncBeforeRunAndAfterStop(t *testing.T) {
	checkNoLeak(t)
	s, err := New(Config{Tunnel: []string{"/bin/false"}, StageDir: filepath.Join(t.TempDir(), "stage")})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeShip{started: make(chan struct{}, 10), gate: make(chan struct{})}
	close(f.gate)
	s.ship = f.ship

	// Queued before Run: waits for it.
	its := items(2)
	res := make(chan map[gfid.GFID]error, 1)
	go func() { res <- s.Sync(t.Context(), its) }()
	time.Sleep(20 * time.Millisecond)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	if r := <-res; len(r) != 0 {
		t.Fatalf("Sync before Run: %v", r)
	}
	if err := s.Run(ctx); err == nil {
		t.Error("second Run did not fail")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v", err)
	}
	r := s.Sync(t.Context(), its)
	if len(r) != 2 || !errors.Is(r[its[0].GFID], ErrStopped) {
		t.Errorf("Sync after Run: %v", r)
	}
}

func TestStopFailsWaitingItems(t *testing.T) {
	checkNoLeak(t)
	f := &fakeShip{started: make(chan struct{}, 10), gate: make(chan struct{})}
	s, stop := newTestSyncer(t, 1, f)
	inFlight, queued := items(2), items(3)
	r1 := make(chan map[gfid.GFID]error, 1)
	r2 := make(chan map[gfid.GFID]error, 1)
	go func() { r1 <- s.Sync(context.Background(), inFlight) }()
	<-f.started
	go func() { r2 <- s.Sync(context.Background(), queued) }()
	for {
		s.mu.Lock()
		n := len(s.queue)
		s.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v", err)
	}
	if r := <-r1; len(r) != 2 || !errors.Is(r[inFlight[0].GFID], context.Canceled) {
		t.Errorf("in flight: %v", r)
	}
	if r := <-r2; len(r) != 3 || !errors.Is(r[queued[0].GFID], ErrStopped) {
		t.Errorf("queued: %v", r)
	}
}

func TestSyncContextEnds(t *testing.T) {
	checkNoLeak(t)
	f := &fakeShip{started: make(chan struct{}, 10), gate: make(chan struct{})}
	s, _ := newTestSyncer(t, 1, f)
	ctx, cancel := context.WithCancel(t.Context())
	its := items(3)
	res := make(chan map[gfid.GFID]error, 1)
	go func() { res <- s.Sync(ctx, its) }()
	<-f.started
	cancel()
	if r := <-res; len(r) != 3 || !errors.Is(r[its[2].GFID], context.Canceled) {
		t.Errorf("Sync = %v", r)
	}
	close(f.gate)
}

func TestNewValidates(t *testing.T) {
	stage := filepath.Join(t.TempDir(), "stage")
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no rsync", Config{RsyncPath: "/nonexistent/rsync", Tunnel: []string{"t"}, StageDir: stage}, "install the Debian package rsync"},
		{"no rsync in PATH", Config{RsyncPath: "georep-no-such-rsync", Tunnel: []string{"t"}, StageDir: stage}, "install the Debian package rsync"},
		{"no tunnel", Config{StageDir: stage}, "tunnel"},
		{"nul in tunnel", Config{Tunnel: []string{"t", "a\x00b"}, StageDir: stage}, "NUL"},
		{"relative stage", Config{Tunnel: []string{"t"}, StageDir: "stage"}, "absolute"},
		{"negative jobs", Config{Jobs: -1, Tunnel: []string{"t"}, StageDir: stage}, "positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestRsyncOptions(t *testing.T) {
	cfg := Config{Tunnel: []string{"/bin/georep-master", "rsync-tunnel", "--slave", "h:1"}, SyncXattrs: true, SyncACLs: true, RsyncOptions: []string{"--bwlimit=1000"}}
	got := rsyncOptions(cfg, true)
	for _, want := range []string{"--copy-links", "--relative", "--files-from=-", "--from0", "--no-implied-dirs", "--inplace",
		"--ignore-times", "--existing", "--numeric-ids", "--perms", "--times", "--owner", "--group", "--sparse", "--acls"} {
		if !slices.Contains(got, want) {
			t.Errorf("%s missing from %q", want, got)
		}
	}
	for _, bad := range []string{"--xattrs", "-X", "--links", "-l", "--recursive", "-a", "--devices"} {
		if slices.Contains(got, bad) {
			t.Errorf("%s in %q", bad, got)
		}
	}
	if got[0] != "-e" || got[1] != "/bin/georep-master rsync-tunnel --slave h:1" || got[len(got)-1] != "--bwlimit=1000" {
		t.Errorf("got %q", got)
	}
	if slices.Contains(rsyncOptions(cfg, false), "--sparse") {
		t.Error("--sparse without support")
	}
}

// shellJoin is checked against rsync itself: the -e command logs the
// arguments it gets.
func TestShellJoinWithRsync(t *testing.T) {
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Skip("rsync not installed")
	}
	dir := t.TempDir()
	logf := filepath.Join(dir, "argv")
	script := filepath.Join(dir, "a dir", "it's a \"shell\"")
	if err := os.MkdirAll(filepath.Dir(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script, []byte("#!/bin/sh\nfor a; do printf '%s\\0' \"$a\"; done > "+logf+"\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	argv := []string{script, "plain", "with space", "it's", `"dq"`, "", "''", `a"b'c`, "tab\there", "x=y;z"}
	src := filepath.Join(dir, "f")
	if err := os.WriteFile(src, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_ = exec.CommandContext(t.Context(), "rsync", "-e", shellJoin(argv), src, "georep:.").Run()
	b, err := os.ReadFile(logf)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	if len(got) < len(argv)-1 || !slices.Equal(got[:len(argv)-1], argv[1:]) {
		t.Errorf("rsync passed %q, want %q first", got, argv[1:])
	}
}

func TestSparseWithInplace(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		out  string
		want bool
	}{
		{"rsync  version 3.1.2  protocol version 31", false},
		{"rsync  version 3.1.3  protocol version 31", true},
		{"rsync  version v3.2.7  protocol version 31", true},
		{"rsync  version 3.0.9  protocol version 30", false},
		{"openrsync: protocol version 29", false},
	} {
		p := filepath.Join(dir, "rsync")
		if err := os.WriteFile(p, []byte("#!/bin/sh\necho '"+tt.out+"'\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		if got := sparseWithInplace(p); got != tt.want {
			t.Errorf("%q: %v, want %v", tt.out, got, tt.want)
		}
		os.Remove(p)
	}
}
