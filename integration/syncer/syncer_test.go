package syncer_test

// End-to-end: the real rsync on both sides, the test binary itself as the -e
// tunnel command (see TestMain), and slave.ServeRsync behind a real gRPC
// server. Moved from master/syncer: it imports both master and slave
// packages, which only integration/ does.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	slavev1 "github.com/georep/georep/gen/georep/slave/v1"
	"github.com/georep/georep/master/slaveclient/tunnel"
	"github.com/georep/georep/master/syncer"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/slave"
)

// tunnelMode as the first argument makes the test binary act as
// "georep-master rsync-tunnel": <exe> tunnelMode <addr> <rsync's args...>.
const tunnelMode = "georep-test-rsync-tunnel"

const testSession = "test-session"

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == tunnelMode {
		os.Exit(runTunnel(os.Args[2], os.Args[3:]))
	}
	os.Exit(m.Run())
}

func runTunnel(addr string, argv []string) int {
	args, err := tunnel.RemoteArgs(argv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return tunnel.ExitFailure
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return tunnel.ExitFailure
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "georep-session", testSession)
	code, err := tunnel.Run(ctx, slavev1.NewSlaveServiceClient(cc), args, os.Stdin, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rsync tunnel:", err)
	}
	return code
}

type testSlave struct {
	slavev1.UnimplementedSlaveServiceServer
	dataDir string
	log     *slog.Logger
}

func (s *testSlave) Rsync(stream slavev1.SlaveService_RsyncServer) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	if got := md.Get("georep-session"); len(got) != 1 || got[0] != testSession {
		return status.Errorf(codes.Unauthenticated, "session %q", got)
	}
	return slave.ServeRsync(stream, s.dataDir, "rsync", s.log)
}

type env struct {
	dataDir string // the slave's .georep/gfid
	srcDir  string
	addr    string
	tunnel  []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Skip("rsync not installed")
	}
	root := t.TempDir()
	e := &env{
		dataDir: filepath.Join(root, "replica", ".georep", "gfid"),
		srcDir:  filepath.Join(root, "src"),
	}
	for _, d := range []string{e.dataDir, e.srcDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = lis.Addr().String()
	gs := grpc.NewServer(grpc.WaitForHandlers(true))
	slavev1.RegisterSlaveServiceServer(gs, &testSlave{dataDir: e.dataDir, log: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	served := make(chan struct{})
	go func() { defer close(served); _ = gs.Serve(lis) }()
	t.Cleanup(func() { gs.Stop(); <-served })

	// The tunnel command lives under a name with a space and quotes, to
	// check that the -e string survives rsync's splitting.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	odd := filepath.Join(root, "bin dir", `it's "tunnel"`)
	if err := os.MkdirAll(filepath.Dir(odd), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(exe, odd); err != nil {
		t.Fatal(err)
	}
	e.tunnel = []string{odd, tunnelMode, e.addr}
	return e
}

// testWriter sends the slave's log to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// target is where the slave's rsync writes gfid g.
func (e *env) target(g gfid.GFID) string {
	return filepath.Join(e.dataDir, g.Shard(), g.String())
}

// create mimics the entry op CREATE: an empty file at the gfid's index entry.
func (e *env) create(t *testing.T, g gfid.GFID) {
	t.Helper()
	p := e.target(g)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
}

// source writes a source file and returns its item.
func (e *env) source(t *testing.T, name string, data []byte, mode fs.FileMode, mtime time.Time) syncer.Item {
	t.Helper()
	p := filepath.Join(e.srcDir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	return syncer.Item{GFID: gfid.New(), Path: p}
}

func (e *env) newSyncer(t *testing.T, ctx context.Context, cfg syncer.Config) *syncer.Syncer {
	t.Helper()
	cfg.Tunnel = e.tunnel
	if cfg.StageDir == "" {
		cfg.StageDir = filepath.Join(t.TempDir(), "stage")
	}
	s, err := syncer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
		if ents, _ := os.ReadDir(cfg.StageDir); len(ents) != 0 {
			t.Errorf("stage directory not empty: %v", ents)
		}
	})
	return s
}

func checkFile(t *testing.T, path string, data []byte, mode fs.FileMode, mtime time.Time) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("%s: content %q, want %q", path, trim(got), trim(data))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != mode {
		t.Errorf("%s: mode %v, want %v", path, fi.Mode(), mode)
	}
	if !fi.ModTime().Equal(mtime) {
		t.Errorf("%s: mtime %v, want %v", path, fi.ModTime(), mtime)
	}
}

func trim(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestSyncEndToEnd(t *testing.T) {
	ctx := testCtx(t)
	e := newEnv(t)
	s := e.newSyncer(t, ctx, syncer.Config{Jobs: 2})

	mtime := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	a := e.source(t, "a", []byte("alpha\n"), 0o640, mtime)
	b := e.source(t, "b", big, 0o755, mtime.Add(time.Hour))
	empty := e.source(t, "empty", nil, 0o600, mtime)
	for _, it := range []syncer.Item{a, b, empty} {
		e.create(t, it.GFID)
	}
	// A hardlink elsewhere in the replica must see the data: --inplace
	// writes the shared inode.
	link := filepath.Join(filepath.Dir(e.dataDir), "..", "a-link")
	if err := os.Link(e.target(a.GFID), link); err != nil {
		t.Fatal(err)
	}
	// Not created by entry ops: --existing must not create it.
	unknown := e.source(t, "unknown", []byte("nope"), 0o644, mtime)
	// Gone from the source: fails on its own.
	gone := syncer.Item{GFID: gfid.New(), Path: filepath.Join(e.srcDir, "gone")}

	// The same gfid twice in one call: shipped once, resolved.
	items := []syncer.Item{a, b, empty, unknown, gone, a}
	fails := s.Sync(ctx, items)
	if len(fails) != 1 || !errors.Is(fails[gone.GFID], fs.ErrNotExist) {
		t.Fatalf("fails = %v, want only %s with ENOENT", fails, gone.GFID)
	}
	checkFile(t, e.target(a.GFID), []byte("alpha\n"), 0o640, mtime)
	checkFile(t, link, []byte("alpha\n"), 0o640, mtime)
	checkFile(t, e.target(b.GFID), big, 0o755, mtime.Add(time.Hour))
	checkFile(t, e.target(empty.GFID), nil, 0o600, mtime)
	if _, err := os.Lstat(e.target(unknown.GFID)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("unknown gfid created on the slave: %v", err)
	}
	if st := s.Stats(); st.Runs != 1 || st.Files != 4 || st.Bytes != int64(len(big)+6+4) {
		t.Errorf("stats = %+v", st)
	}

	// Same size, same mtime, different bytes: --ignore-times ships it.
	if err := os.WriteFile(a.Path, []byte("ALPHA\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(a.Path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	big[12345] = 'X'
	if err := os.WriteFile(b.Path, big, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(b.Path, mtime.Add(time.Hour), mtime.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if fails := s.Sync(ctx, []syncer.Item{a, b}); len(fails) != 0 {
		t.Fatalf("fails = %v", fails)
	}
	checkFile(t, link, []byte("ALPHA\n"), 0o640, mtime)
	checkFile(t, e.target(b.GFID), big, 0o755, mtime.Add(time.Hour))
}

// The replica's own xattrs survive a sync with SyncXattrs and SyncACLs
// (rsync -X would remove trusted.georep.gfid), and ACLs ship.
func TestSyncKeepsReplicaXattrs(t *testing.T) {
	ctx := testCtx(t)
	e := newEnv(t)
	it := e.source(t, "x", []byte("x"), 0o644, time.Unix(1e9, 0))
	e.create(t, it.GFID)
	name := "trusted.georep.gfid"
	if err := setxattr(e.target(it.GFID), name, string(it.GFID[:])); err != nil {
		name = "user.georep.gfid"
		if err := setxattr(e.target(it.GFID), name, string(it.GFID[:])); err != nil {
			t.Skipf("no xattrs here: %v", err)
		}
	}
	// An ACL entry for uid 65534, read -r: user::rw- user:65534:r-- group::r-- mask::r-- other::r--.
	acl := []byte{2, 0, 0, 0, 1, 0, 6, 0, 255, 255, 255, 255, 2, 0, 4, 0, 254, 255, 0, 0,
		4, 0, 4, 0, 255, 255, 255, 255, 16, 0, 4, 0, 255, 255, 255, 255, 32, 0, 4, 0, 255, 255, 255, 255}
	haveACL := unix.Setxattr(it.Path, "system.posix_acl_access", acl, 0) == nil
	s := e.newSyncer(t, ctx, syncer.Config{SyncXattrs: true, SyncACLs: true})
	if fails := s.Sync(ctx, []syncer.Item{it}); len(fails) != 0 {
		t.Fatalf("fails = %v", fails)
	}
	if v, err := getxattr(e.target(it.GFID), name); err != nil || v != string(it.GFID[:]) {
		t.Errorf("%s = %q, %v: the replica's gfid xattr was lost", name, v, err)
	}
	if haveACL {
		if v, err := getxattr(e.target(it.GFID), "system.posix_acl_access"); err != nil || v != string(acl) {
			t.Errorf("ACL = %v, %v, want %v", []byte(v), err, acl)
		}
	}
}

// Many Sync calls against 3 jobs: everything ships, in far fewer rsync runs
// than calls (the staged queue batches what waits).
func TestSyncManyItems(t *testing.T) {
	ctx := testCtx(t)
	e := newEnv(t)
	s := e.newSyncer(t, ctx, syncer.Config{Jobs: 3})
	const n, callers = 2000, 40
	mtime := time.Unix(1.7e9, 0)
	items := make([]syncer.Item, n)
	for i := range items {
		items[i] = e.source(t, fmt.Sprintf("f%04d", i), []byte(fmt.Sprintf("file %d\n", i)), 0o644, mtime)
		e.create(t, items[i].GFID)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	fails := make(map[gfid.GFID]error)
	for c := range callers {
		wg.Go(func() {
			var mine []syncer.Item
			for i := c; i < n; i += callers {
				mine = append(mine, items[i])
			}
			f := s.Sync(ctx, mine)
			mu.Lock()
			for g, err := range f {
				fails[g] = err
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(fails) != 0 {
		t.Fatalf("%d failures, e.g. %v", len(fails), fails)
	}
	for i, it := range items {
		checkFile(t, e.target(it.GFID), []byte(fmt.Sprintf("file %d\n", i)), 0o644, mtime)
	}
	st := s.Stats()
	if st.Files != n || st.Runs >= callers {
		t.Errorf("stats = %+v: want %d files in fewer than %d runs", st, n, callers)
	}
	t.Logf("stats: %+v", st)
}

// Options the slave refuses make the whole run fail, with rsync's code and
// the slave's reason; nothing is written.
func TestSyncRefusedOptions(t *testing.T) {
	for _, opt := range []string{"--delete", "--links", "--hard-links", "--keep-dirlinks", "--backup", "--xattrs"} {
		t.Run(opt, func(t *testing.T) {
			ctx := testCtx(t)
			e := newEnv(t)
			s := e.newSyncer(t, ctx, syncer.Config{RsyncOptions: []string{opt}})
			it := e.source(t, "f", []byte("data"), 0o644, time.Unix(1e9, 0))
			e.create(t, it.GFID)
			fails := s.Sync(ctx, []syncer.Item{it})
			var re *syncer.RsyncError
			if !errors.As(fails[it.GFID], &re) || re.Code == 0 {
				t.Fatalf("fails = %v, want an RsyncError", fails)
			}
			if !strings.Contains(re.Stderr, "InvalidArgument") {
				t.Errorf("stderr does not carry the refusal: %q", re.Stderr)
			}
			if data, _ := os.ReadFile(e.target(it.GFID)); len(data) != 0 {
				t.Errorf("target written: %q", data)
			}
		})
	}
}

// Hostile remote commands, sent straight to the server, are refused before
// anything runs.
func TestServerRefusesHostileArgs(t *testing.T) {
	e := newEnv(t)
	cc, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := slavev1.NewSlaveServiceClient(cc)
	ctx := metadata.AppendToOutgoingContext(testCtx(t), "georep-session", testSession)
	for _, args := range [][]string{
		{"rsync", "--server", "--sender", "-logDtpre.iLsfxCIvu", ".", "/etc/"},
		{"rsync", "--server", "-logDtpre.iLsfxCIvu", "--delete", ".", "/"},
		{"rsync", "--server", "-tpe.LsfxCIvu", "--rsync-path=sh -c 'id>/tmp/pwned'", ".", "."},
		{"rsync", "--server", "-tpe.LsfxCIvu", "--log-file=/etc/passwd", ".", "."},
		{"rsync", "--server", "-tpe.LsfxCIvu", "--temp-dir=/tmp", ".", "."},
		{"rsync", "--server", "-tpe.LsfxCIvu", ".", "a", "b"},
		{"sh", "-c", "id"},
	} {
		var stdout, stderr bytes.Buffer
		code, err := tunnel.Run(ctx, client, args, strings.NewReader(""), &stdout, &stderr)
		if status.Code(err) != codes.InvalidArgument || code != tunnel.ExitFailure {
			t.Errorf("%q: code %d err %v, want InvalidArgument", args, code, err)
		}
	}
}

func setxattr(path, name, value string) error {
	return unix.Lsetxattr(path, name, []byte(value), 0)
}

func getxattr(path, name string) (string, error) {
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(path, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}
