package slave

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	slavev1 "github.com/georep/georep/gen/georep/slave/v1"
	"github.com/georep/georep/rpc"
	"github.com/georep/georep/rpc/gfid"
)

// Hostile requests over a real gRPC connection: each checks a clear error,
// the replica untouched where the request was refused, and nothing outside
// the replica changed.

// assertHealthy checks that the server still answers: health is SERVING and
// a legitimate mutating call works.
func (fx *fixture) assertHealthy(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(fx.conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health after the attack: %v %v", resp, err)
	}
	g := gfid.New().String()
	name := "legit-" + g[:8]
	fx.mustEntries(t, &slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_CREATE, Gfid: g, Pargfid: rootG, Name: []byte(name), Mode: unix.S_IFREG | 0o644})
	if _, err := os.Lstat(filepath.Join(fx.root, name)); err != nil {
		t.Fatalf("a legitimate create after the attack: %v", err)
	}
	fx.mustEntries(t, &slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_UNLINK, Gfid: g, Pargfid: rootG, Name: []byte(name)})
}

// TestHostileSymlinkSwapBetweenCalls: the replica directory d is swapped for
// a symlink to a directory outside between two EntryOps calls: every entry
// naming d as its parent fails with ESTALE (the gfid index no longer leads
// to a directory), meta ops on d too, nothing is listed from outside, and
// nothing outside changes.
func TestHostileSymlinkSwapBetweenCalls(t *testing.T) {
	fx := newFixture(t, nil)
	outside := filepath.Join(fx.dir, "outside")
	before := state(t, outside)
	if err := os.Rename(filepath.Join(fx.root, "d"), filepath.Join(fx.root, "d.real")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../outside", filepath.Join(fx.root, "d")); err != nil {
		t.Fatal(err)
	}
	x := gfid.New().String()
	for _, e := range []*slavev1.Entry{
		{Op: slavev1.EntryOp_ENTRY_OP_CREATE, Gfid: x, Pargfid: fx.D, Name: []byte("x"), Mode: unix.S_IFREG | 0o644},
		{Op: slavev1.EntryOp_ENTRY_OP_MKDIR, Gfid: x, Pargfid: fx.D, Name: []byte("x"), Mode: unix.S_IFDIR | 0o755},
		{Op: slavev1.EntryOp_ENTRY_OP_SYMLINK, Gfid: x, Pargfid: fx.D, Name: []byte("x"), LinkTarget: []byte("/etc/shadow")},
		{Op: slavev1.EntryOp_ENTRY_OP_MKNOD, Gfid: x, Pargfid: fx.D, Name: []byte("x"), Mode: unix.S_IFIFO | 0o600},
		{Op: slavev1.EntryOp_ENTRY_OP_LINK, Gfid: fx.F, Pargfid: fx.D, Name: []byte("x")},
		{Op: slavev1.EntryOp_ENTRY_OP_RENAME, Gfid: fx.F, Pargfid: rootG, Name: []byte("f"), NewPargfid: fx.D, NewName: []byte("sentinel")},
		{Op: slavev1.EntryOp_ENTRY_OP_RENAME, Gfid: fx.D, Pargfid: rootG, Name: []byte("d"), NewPargfid: rootG, NewName: []byte("d2")},
	} {
		fails := fx.entries(t, e)
		if len(fails) != 1 || syscall.Errno(fails[0].GetErrno()) != syscall.ESTALE || !strings.Contains(fails[0].GetMessage(), "stale") {
			t.Errorf("%s %q into the swapped directory: %v, want one ESTALE failure", e.GetOp(), e.GetName(), fails)
		}
	}
	// A file renamed out of the swapped directory is found by its gfid, as
	// any rename whose old name does not hold the gfid: it gets the new name
	// (a link of its inode in d.real), inside the replica.
	fx.mustEntries(t, &slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_RENAME, Gfid: fx.G, Pargfid: fx.D, Name: []byte("g"), NewPargfid: rootG, NewName: []byte("g")})
	var moved, real unix.Stat_t
	if unix.Lstat(filepath.Join(fx.root, "g"), &moved) != nil || unix.Lstat(filepath.Join(fx.root, "d.real", "g"), &real) != nil || moved.Ino != real.Ino {
		t.Errorf("RENAME of g out of the swapped directory did not give the same inode a name in the root")
	}
	resp, err := fx.client.MetaOps(fx.ctx(t), &slavev1.MetaOpsRequest{Metas: []*slavev1.Meta{
		{Gfid: fx.D, SetMode: true, Mode: 0o777},
		{Gfid: fx.D, SetXattrs: true, Xattrs: []*slavev1.Xattr{{Name: "user.evil", Value: []byte("1")}}},
	}})
	if err != nil || len(resp.GetFailures()) != 2 {
		t.Errorf("MetaOps of the swapped directory: %v %v, want 2 failures", resp.GetFailures(), err)
	}
	if ents, err := fx.client.Entries(t.Context(), &slavev1.EntriesRequest{Gfid: fx.D}); err == nil {
		for _, e := range ents.GetEntries() {
			if string(e.GetName()) == "sentinel" {
				t.Errorf("Entries of the swapped directory lists the outside's sentinel")
			}
		}
	} else {
		t.Logf("Entries of the swapped directory: %v", err)
	}
	if _, err := fx.client.Purge(fx.ctx(t), &slavev1.PurgeRequest{Pargfid: fx.D, Name: []byte("sentinel")}); err == nil {
		t.Logf("Purge in the swapped directory: no error")
	}
	assertUnchanged(t, before, state(t, outside))
	// Back in place, d works again.
	os.Remove(filepath.Join(fx.root, "d"))
	if err := os.Rename(filepath.Join(fx.root, "d.real"), filepath.Join(fx.root, "d")); err != nil {
		t.Fatal(err)
	}
	fx.mustEntries(t, &slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_CREATE, Gfid: x, Pargfid: fx.D, Name: []byte("x"), Mode: unix.S_IFREG | 0o644})
	fx.assertHealthy(t)
}

// TestHostileSymlinkSwapRace: while a goroutine keeps exchanging the
// replica directory d with a symlink to outside (renameat2
// RENAME_EXCHANGE, atomic), the master's calls keep naming d: creates,
// renames in and out, unlinks, meta ops, small-file writes, listings. For
// 3 s; afterwards nothing outside changed and the server is healthy.
func TestHostileSymlinkSwapRace(t *testing.T) {
	fx := newFixture(t, nil)
	outside := filepath.Join(fx.dir, "outside")
	before := state(t, outside)
	d, swap := filepath.Join(fx.root, "d"), filepath.Join(fx.root, "swap")
	if err := os.Symlink("../outside", swap); err != nil {
		t.Fatal(err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, d, unix.AT_FDCWD, swap, unix.RENAME_EXCHANGE); err != nil {
		t.Skipf("renameat2 RENAME_EXCHANGE: %v", err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, d, unix.AT_FDCWD, swap, unix.RENAME_EXCHANGE); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var swaps atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := unix.Renameat2(unix.AT_FDCWD, d, unix.AT_FDCWD, swap, unix.RENAME_EXCHANGE); err == nil {
				swaps.Add(1)
			}
		}
	}()
	deadline := time.Now().Add(3 * time.Second)
	var calls, failed int
	for i := 0; time.Now().Before(deadline); i++ {
		x, y := gfid.New().String(), gfid.New().String()
		name := []byte("r" + x[:8])
		fails := fx.entries(t,
			&slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_CREATE, Gfid: x, Pargfid: fx.D, Name: name, Mode: unix.S_IFREG | 0o644},
			&slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_MKDIR, Gfid: y, Pargfid: fx.D, Name: append(name, 'd'), Mode: unix.S_IFDIR | 0o755},
			&slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_SYMLINK, Gfid: gfid.New().String(), Pargfid: fx.D, Name: append(name, 's'), LinkTarget: []byte("sentinel")},
			&slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_RENAME, Gfid: fx.G, Pargfid: fx.D, Name: []byte("g"), NewPargfid: rootG, NewName: []byte("g")},
			&slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_RENAME, Gfid: fx.G, Pargfid: rootG, Name: []byte("g"), NewPargfid: fx.D, NewName: []byte("sentinel")},
			&slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_RENAME, Gfid: fx.G, Pargfid: fx.D, Name: []byte("sentinel"), NewPargfid: fx.D, NewName: []byte("g")},
			&slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_UNLINK, Gfid: x, Pargfid: fx.D, Name: name},
			&slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_UNLINK, Gfid: gfid.New().String(), Pargfid: fx.D, Name: []byte("sentinel")},
		)
		calls++
		failed += len(fails)
		for _, f := range fails {
			if f.GetErrno() == 0 || f.GetMessage() == "" {
				t.Fatalf("failure without errno or message: %v", f)
			}
		}
		if _, err := fx.client.MetaOps(fx.ctx(t), &slavev1.MetaOpsRequest{Metas: []*slavev1.Meta{
			{Gfid: fx.D, SetMode: true, Mode: 0o700 + uint32(i%2)*0o55},
			{Gfid: fx.G, SetXattrs: true, Xattrs: []*slavev1.Xattr{{Name: "user.k", Value: []byte("v")}}},
		}}); err != nil {
			t.Fatal(err)
		}
		if _, err := fx.client.WriteFiles(fx.ctx(t), &slavev1.WriteFilesRequest{Files: []*slavev1.FileData{
			{Gfid: fx.G, Data: []byte("overwrite"), Mode: 0o644, Uid: uint32(os.Geteuid()), Gid: uint32(os.Getegid())},
		}}); err != nil {
			t.Fatal(err)
		}
		if ents, err := fx.client.Entries(t.Context(), &slavev1.EntriesRequest{Gfid: fx.D}); err == nil {
			for _, e := range ents.GetEntries() {
				if string(e.GetName()) == "sentinel" && e.GetGfid() != fx.G {
					t.Fatalf("Entries of d listed the outside's sentinel: %v", e)
				}
			}
		}
		_, _ = fx.client.Purge(fx.ctx(t), &slavev1.PurgeRequest{Pargfid: fx.D, Name: []byte("sentinel"), Gfid: gfid.New().String()})
	}
	close(stop)
	wg.Wait()
	t.Logf("%d calls of 8 entries, %d entry failures, %d swaps", calls, failed, swaps.Load())
	if fi, err := os.Lstat(d); err != nil || !fi.IsDir() {
		if err := unix.Renameat2(unix.AT_FDCWD, d, unix.AT_FDCWD, swap, unix.RENAME_EXCHANGE); err != nil {
			t.Fatal(err)
		}
	}
	assertUnchanged(t, before, state(t, outside))
	if top, err := os.ReadDir(fx.dir); err != nil || len(top) != 2 {
		t.Fatalf("scratch dir holds %v, %v: want only root and outside", top, err)
	}
	fx.assertHealthy(t)
}

// TestHostileRsyncTunnel: rsync tunnel requests that try to pass their own
// rsync arguments, paths or protocol messages, over the slave's real
// service (session and all). Each is refused with InvalidArgument naming
// what was wrong, rsync is never started for them, and an accepted request
// runs rsync in the data directory with the path replaced.
func TestHostileRsyncTunnel(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	fake := fakeRsync(t, `printf '%s\n' "$PWD" "$@" >> `+marker+`; cat >/dev/null`)
	fx := newFixture(t, func(c *Config) { c.RsyncPath = fake })
	fx.svc.rsync = fake
	outside := filepath.Join(fx.dir, "outside")
	before := state(t, outside)
	opts := []string{"-ogtpIRSe.LsfxCIvu", "--numeric-ids", "--existing", "--inplace"}
	withOpt := func(extra ...string) []string {
		return append(append(append([]string{"rsync", "--server"}, opts...), extra...), ".", ".")
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"sender mode", withOpt("--sender"), "only receives"},
		{"not rsync", []string{"sh", "-c", "id", ".", "."}, "is not \"rsync --server"},
		{"rsync without --server", []string{"rsync", "-av", "/etc", "/tmp"}, "is not \"rsync --server"},
		{"rsync-path", withOpt("--rsync-path=/bin/sh"), "not allowed"},
		{"remote shell", withOpt("-e", "sh"), "not an option"},
		{"log file", withOpt("--log-file=/tmp/x"), "not allowed"},
		{"files-from", withOpt("--files-from=/etc/passwd"), "not allowed"},
		{"temp-dir", withOpt("--temp-dir=" + outside), "not allowed"},
		{"partial-dir", withOpt("--partial-dir=../../outside"), "not allowed"},
		{"backup-dir", withOpt("--backup", "--backup-dir="+outside), "not allowed"},
		{"link-dest", withOpt("--link-dest=/"), "not allowed"},
		{"delete", withOpt("--delete"), "not allowed"},
		{"remove-source-files", withOpt("--remove-source-files"), "not allowed"},
		{"secluded args", withOpt("-s"), "-s not allowed"},
		{"symlinks", withOpt("-l"), "-l not allowed"},
		{"copy-links", withOpt("-L"), "-L not allowed"},
		{"keep-dirlinks", withOpt("-K"), "-K not allowed"},
		{"hard links", withOpt("-H"), "-H not allowed"},
		{"devices", withOpt("-D"), "-D not allowed"},
		{"recursive", withOpt("-r"), "-r not allowed"},
		{"xattrs", withOpt("-X"), "-X not allowed"},
		{"fake-super", withOpt("--fake-super"), "not allowed"},
		{"value with a shell", withOpt("--timeout=1;rm -rf /"), "bad value"},
		{"capabilities with a path", []string{"rsync", "--server", "-e.LsfxC/../../x", ".", "."}, "capability"},
		{"NUL in an option", withOpt("--inplace\x00--delete"), "NUL"},
		{"option after the dot", []string{"rsync", "--server", "-t", ".", "--delete"}, "options must come before"},
		{"two destinations", []string{"rsync", "--server", "-t", ".", "a", "/etc"}, "exactly one destination"},
		{"no destination", []string{"rsync", "--server", "-t", "."}, "no destination"},
		{"no dot", []string{"rsync", "--server", "-t", "/etc"}, "not an option"},
		{"empty destination", []string{"rsync", "--server", "-t", ".", ""}, "empty"},
		{"no arguments", nil, "is not \"rsync --server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream, err := fx.client.Rsync(fx.ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.Send(startMsg(tt.args)); err != nil {
				t.Fatal(err)
			}
			r := readAll(stream)
			assertStatus(t, r.err, codes.InvalidArgument, tt.want)
			if _, err := os.Stat(marker); err == nil {
				b, _ := os.ReadFile(marker)
				t.Fatalf("rsync was started for a refused request:\n%s", b)
			}
		})
	}
	protocol := []struct {
		name string
		msgs []*slavev1.RsyncRequest
		want string
	}{
		{"stdin before Start", []*slavev1.RsyncRequest{{Msg: &slavev1.RsyncRequest_Stdin{Stdin: []byte("x")}}}, "first rsync message must be Start"},
		{"empty message first", []*slavev1.RsyncRequest{{}}, "first rsync message must be Start"},
		{"second Start smuggling arguments", []*slavev1.RsyncRequest{startMsg(withOpt()), startMsg([]string{"rsync", "--server", "--delete", ".", "/"})}, "second rsync Start"},
		{"stdin after close", []*slavev1.RsyncRequest{startMsg(withOpt()), {Msg: &slavev1.RsyncRequest_CloseStdin{CloseStdin: true}}, {Msg: &slavev1.RsyncRequest_Stdin{Stdin: []byte("late")}}}, ""},
	}
	for _, tt := range protocol {
		t.Run(tt.name, func(t *testing.T) {
			stream, err := fx.client.Rsync(fx.ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range tt.msgs {
				_ = stream.Send(m)
			}
			_ = stream.CloseSend()
			r := readAll(stream)
			if tt.want == "" {
				// rsync already ran on its closed stdin; what came after is
				// refused or dropped, never passed to it.
				if r.err == nil && r.exit == nil {
					t.Fatal("no exit and no error")
				}
				return
			}
			assertStatus(t, r.err, codes.InvalidArgument, tt.want)
		})
	}
	os.Remove(marker)
	// The path a master names is ignored: rsync runs in the data directory,
	// told to write into it, whatever the request said.
	t.Run("path replaced", func(t *testing.T) {
		stream, err := fx.client.Rsync(fx.ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(startMsg([]string{"rsync", "--server", "-tpe.LsfxCIvu", ".", "../../outside"})); err != nil {
			t.Fatal(err)
		}
		_ = stream.CloseSend()
		r := readAll(stream)
		if r.err != nil || r.exit.GetCode() != 0 {
			t.Fatalf("valid request: %v exit %v", r.err, r.exit)
		}
		b, err := os.ReadFile(marker)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		data := fx.svc.replica.DataDir()
		if lines[0] != data || lines[len(lines)-1] != data+"/" || strings.Contains(string(b), "outside") {
			t.Fatalf("rsync ran as:\n%s\nwant in and into %s, and no trace of the requested path", b, data)
		}
		for _, forced := range rsyncForced {
			if !strings.Contains(string(b), "\n"+forced+"\n") {
				t.Errorf("rsync ran without %s:\n%s", forced, b)
			}
		}
	})
	assertUnchanged(t, before, state(t, outside))
	fx.assertHealthy(t)
}

// TestHostileOverLimits: batches over max-batch are refused whole
// (TestBatchLimit); here, messages over the gRPC maximum and oversized
// fields inside an accepted message.
func TestHostileOverLimits(t *testing.T) {
	fx := newFixture(t, nil)
	outside := filepath.Join(fx.dir, "outside")
	outsideBefore := state(t, outside)
	before := state(t, fx.dir)
	// A client that sends more than the server accepts.
	big, err := grpc.NewClient(fx.conn.Target(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(rpc.MaxMessageSize*2)))
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close()
	bc := slavev1.NewSlaveServiceClient(big)
	huge := make([]byte, rpc.MaxMessageSize+1024)
	t.Run("WriteFiles over the message limit", func(t *testing.T) {
		_, err := bc.WriteFiles(fx.ctx(t), &slavev1.WriteFilesRequest{Files: []*slavev1.FileData{{Gfid: fx.F, Data: huge, Mode: 0o644}}})
		assertStatus(t, err, codes.ResourceExhausted, "larger than max")
	})
	t.Run("EntryOps over the message limit", func(t *testing.T) {
		_, err := bc.EntryOps(fx.ctx(t), &slavev1.EntryOpsRequest{Entries: []*slavev1.Entry{
			{Op: slavev1.EntryOp_ENTRY_OP_SYMLINK, Gfid: gfid.New().String(), Pargfid: rootG, Name: []byte("big"), LinkTarget: huge},
		}})
		assertStatus(t, err, codes.ResourceExhausted, "larger than max")
	})
	t.Run("rsync stdin over the message limit", func(t *testing.T) {
		stream, err := bc.Rsync(fx.ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		_ = stream.Send(startMsg([]string{"rsync", "--server", "-tpe.LsfxCIvu", ".", "."}))
		_ = stream.Send(&slavev1.RsyncRequest{Msg: &slavev1.RsyncRequest_Stdin{Stdin: huge}})
		r := readAll(stream)
		if status.Code(r.err) != codes.ResourceExhausted {
			t.Fatalf("stdin chunk over the limit: %v, want ResourceExhausted", r.err)
		}
	})
	t.Run("the client refuses to send over the limit", func(t *testing.T) {
		_, err := fx.client.WriteFiles(fx.ctx(t), &slavev1.WriteFilesRequest{Files: []*slavev1.FileData{{Gfid: fx.F, Data: huge, Mode: 0o644}}})
		assertStatus(t, err, codes.ResourceExhausted, "larger than max")
	})
	assertUnchanged(t, before, state(t, fx.dir))
	// Oversized fields within the limit: per-entry failures.
	x := gfid.New().String()
	fails := fx.entries(t,
		&slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_SYMLINK, Gfid: x, Pargfid: rootG, Name: []byte("long-target"), LinkTarget: []byte(strings.Repeat("a/", 4096))},
		&slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_CREATE, Gfid: x, Pargfid: rootG, Name: []byte(strings.Repeat("n", 1<<20)), Mode: unix.S_IFREG | 0o644},
	)
	if len(fails) != 2 || fails[0].GetErrno() == 0 || fails[1].GetErrno() != int32(syscall.EINVAL) {
		t.Errorf("8 KiB symlink target, 1 MiB name: %v, want two failures", fails)
	}
	resp, err := fx.client.MetaOps(fx.ctx(t), &slavev1.MetaOpsRequest{Metas: []*slavev1.Meta{
		{Gfid: fx.F, SetXattrs: true, Xattrs: []*slavev1.Xattr{{Name: "user.big", Value: make([]byte, 1<<20)}}},
		{Gfid: fx.F, SetXattrs: true, Xattrs: []*slavev1.Xattr{{Name: "user." + strings.Repeat("k", 300), Value: []byte("v")}}},
	}})
	if err != nil || len(resp.GetFailures()) != 2 {
		t.Errorf("1 MiB xattr value, 305-byte xattr name: %v %v, want two failures", resp.GetFailures(), err)
	}
	st, err := fx.client.Stat(t.Context(), &slavev1.StatRequest{Gfids: []string{strings.Repeat("z", 1<<20)}})
	if err != nil || len(st.GetResults()) != 1 || st.GetResults()[0].GetErrno() != int32(syscall.EINVAL) {
		t.Errorf("Stat of a 1 MiB gfid: %v %v, want EINVAL", st, err)
	}
	assertUnchanged(t, outsideBefore, state(t, outside))
	fx.assertHealthy(t)
}

// TestHostileFlood: 200 rsync streams at once over 4 connections, for at
// most 10 s, against max-rsync-streams 16: at most 16 run (the others get
// ResourceExhausted saying why), every rsync ends with its stream, and the
// server stays healthy. Then 200 concurrent unary calls.
func TestHostileFlood(t *testing.T) {
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Skip("rsync not installed")
	}
	const limit, streams, conns = 16, 200, 4
	fx := newFixture(t, nil)
	fx.svc.rsyncSlots = make(chan struct{}, limit)
	ctx, cancel := context.WithTimeout(fx.ctx(t), 10*time.Second)
	defer cancel()
	clients := []slavev1.SlaveServiceClient{fx.client}
	for range conns - 1 {
		cc, err := rpc.NewClient(rpc.ClientConfig{Address: fx.conn.Target(), Insecure: true})
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		clients = append(clients, slavev1.NewSlaveServiceClient(cc))
	}
	var (
		wg                      sync.WaitGroup
		running, refused, other atomic.Int64
		release                 = make(chan struct{})
		firstOther              atomic.Value
	)
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, scancel := context.WithCancel(ctx)
			defer scancel()
			stream, err := clients[i%conns].Rsync(sctx)
			if err == nil {
				err = stream.Send(startMsg([]string{"rsync", "--server", "-tpe.LsfxCIvu", "--existing", ".", "."}))
			}
			if err != nil {
				other.Add(1)
				return
			}
			// A running rsync greets (its protocol version on stdout) and
			// waits for its stdin: the stream stays open until released; a
			// refused one ends at once.
			got, greeted := make(chan error, 1), make(chan struct{})
			go func() {
				first := true
				for {
					_, err := stream.Recv()
					if err != nil {
						got <- err
						return
					}
					if first {
						close(greeted)
						first = false
					}
				}
			}()
			select {
			case err := <-got:
				if status.Code(err) == codes.ResourceExhausted && strings.Contains(status.Convert(err).Message(), "max-rsync-streams") {
					refused.Add(1)
				} else {
					other.Add(1)
					firstOther.CompareAndSwap(nil, fmt.Sprint(err))
				}
				return
			case <-greeted:
				running.Add(1)
			case <-time.After(5 * time.Second):
				other.Add(1)
				firstOther.CompareAndSwap(nil, "neither refused nor greeted by rsync within 5 s")
			}
			<-release
			scancel()
			<-got
		}()
	}
	time.Sleep(3 * time.Second)
	t.Logf("running %d, refused %d, other %d", running.Load(), refused.Load(), other.Load())
	if n := running.Load(); n > limit {
		t.Errorf("%d rsync streams running at once, the limit is %d", n, limit)
	}
	if refused.Load() < streams-limit-other.Load() {
		t.Errorf("only %d streams refused with ResourceExhausted", refused.Load())
	}
	if v := firstOther.Load(); v != nil {
		t.Errorf("unexpected stream error: %v", v)
	}
	close(release)
	wg.Wait()
	// Every rsync ended with its stream, and its handler gave its slot back
	// (after the client saw the stream end: wait for both).
	deadline := time.Now().Add(10 * time.Second)
	for (len(procsInDir(fx.svc.replica.DataDir())) > 0 || len(fx.svc.rsyncSlots) > 0) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if left := procsInDir(fx.svc.replica.DataDir()); len(left) > 0 {
		t.Errorf("rsync processes left after their streams ended: %v", left)
	}
	if len(fx.svc.rsyncSlots) != 0 {
		t.Errorf("%d rsync slots still taken", len(fx.svc.rsyncSlots))
	}

	// 200 concurrent unary calls, mutating and not, over the same 4 connections.
	var bad atomic.Int64
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := clients[i%conns]
			var err error
			switch i % 4 {
			case 0:
				_, err = c.Stat(ctx, &slavev1.StatRequest{Gfids: []string{fx.F, fx.D, rootG}})
			case 1:
				_, err = c.Entries(ctx, &slavev1.EntriesRequest{Gfid: rootG})
			case 2:
				_, err = c.EntryOps(fx.ctx(t), &slavev1.EntryOpsRequest{Entries: []*slavev1.Entry{{Op: slavev1.EntryOp_ENTRY_OP_CREATE, Gfid: gfid.New().String(), Pargfid: fx.D, Name: []byte(gfid.New().String()), Mode: unix.S_IFREG | 0o644}}})
			case 3:
				_, err = c.Handshake(ctx, &slavev1.HandshakeRequest{ProtocolVersion: ProtocolVersion, MasterVolumeId: volB, MasterNode: "flood"})
				if status.Code(err) == codes.Aborted {
					err = nil // another master volume: refused while A holds the session
				}
			}
			if err != nil {
				bad.Add(1)
				t.Logf("call %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if bad.Load() > 0 {
		t.Errorf("%d of %d concurrent calls failed", bad.Load(), streams)
	}
	// A's session survived the flood of B's handshakes.
	if _, err := fx.client.KeepAlive(fx.ctx(t), &slavev1.KeepAliveRequest{}); err != nil {
		t.Errorf("A's session after the flood: %v", err)
	}
	fx.assertHealthy(t)
}

// procsInDir lists the pids of processes whose working directory is dir.
func procsInDir(dir string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd")); err == nil && cwd == dir {
			pids = append(pids, pid)
		}
	}
	return pids
}
