package slave

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	slavev1 "github.com/georep/georep/gen/georep/slave/v1"
	"github.com/georep/georep/rpc"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
	"github.com/georep/georep/rpc/wire"
)

var (
	rootG = gfid.Root.String()
	parkG = gfid.Park.String()
	zeroG = "00000000-0000-0000-0000-000000000000"
	volA  = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
	volB  = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
)

// fixture is a served slave with a handshaken session of master volume A and
// a small tree: d/ (D) holding sub/ (Sub) and file g (G), and file f (F) in
// the root.
type fixture struct {
	dir, root string
	clock     *testClock
	svc       *service
	client    slavev1.SlaveServiceClient
	conn      *grpc.ClientConn
	session   string
	D, Sub    string
	F, G      string
}

func testConfig(root string) Config {
	cfg := DefaultConfig()
	cfg.Root, cfg.Listen, cfg.Insecure = root, "127.0.0.1:0", true
	cfg.MaxBatch = 16
	cfg.Lease = 30 * time.Second
	return cfg
}

func newFixture(t *testing.T, edit func(*Config)) *fixture {
	t.Helper()
	dir, root := scratchDirs(t)
	cfg := testConfig(root)
	if edit != nil {
		edit(&cfg)
	}
	fx := &fixture{dir: dir, root: root, clock: &testClock{now: time.Unix(1_700_000_000, 0)}}
	fx.svc = newService(t, cfg, fx.clock.Now, testLog(t))
	fx.client, fx.conn = serve(t, fx.svc)
	fx.session = fx.handshake(t, volA)
	fx.D, fx.Sub, fx.F, fx.G = gfid.New().String(), gfid.New().String(), gfid.New().String(), gfid.New().String()
	fx.mustEntries(t,
		&slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_MKDIR, Gfid: fx.D, Pargfid: rootG, Name: []byte("d"), Mode: unix.S_IFDIR | 0o755},
		&slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_MKDIR, Gfid: fx.Sub, Pargfid: fx.D, Name: []byte("sub"), Mode: unix.S_IFDIR | 0o755},
		&slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_CREATE, Gfid: fx.F, Pargfid: rootG, Name: []byte("f"), Mode: unix.S_IFREG | 0o644},
		&slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_CREATE, Gfid: fx.G, Pargfid: fx.D, Name: []byte("g"), Mode: unix.S_IFREG | 0o644},
	)
	return fx
}

func (fx *fixture) handshake(t *testing.T, vol string) string {
	t.Helper()
	resp, err := fx.client.Handshake(t.Context(), &slavev1.HandshakeRequest{ProtocolVersion: ProtocolVersion, MasterVolumeId: vol, MasterNode: "test:1"})
	if err != nil {
		t.Fatalf("Handshake(%s): %v", vol, err)
	}
	return resp.GetSessionId()
}

// ctx carries the fixture's session.
func (fx *fixture) ctx(t *testing.T) context.Context {
	return withSession(t.Context(), fx.session)
}

func withSession(ctx context.Context, id string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, sessionKey, id)
}

func (fx *fixture) entries(t *testing.T, es ...*slavev1.Entry) []*slavev1.EntryFailure {
	t.Helper()
	resp, err := fx.client.EntryOps(fx.ctx(t), &slavev1.EntryOpsRequest{Entries: es})
	if err != nil {
		t.Fatalf("EntryOps: %v", err)
	}
	return resp.GetFailures()
}

func (fx *fixture) mustEntries(t *testing.T, es ...*slavev1.Entry) {
	t.Helper()
	for _, f := range fx.entries(t, es...) {
		t.Errorf("entry %d: errno %d: %s", f.GetIndex(), f.GetErrno(), f.GetMessage())
	}
	if t.Failed() {
		t.FailNow()
	}
}

// state describes every name beneath dir (the replica root and the sentinel
// directory beside it): type, mode, owner, size, content digest, symlink
// target, link count and extended attributes.
func state(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		desc := fmt.Sprintf("mode=%o uid=%d gid=%d", st.Mode, st.Uid, st.Gid)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			desc += fmt.Sprintf(" nlink=%d sha=%s", st.Nlink, hex.EncodeToString(sum[:6]))
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" nlink=%d -> %s", st.Nlink, target)
		case unix.S_IFDIR:
		default:
			desc += fmt.Sprintf(" nlink=%d rdev=%d", st.Nlink, st.Rdev)
		}
		buf := make([]byte, 8192)
		if n, err := unix.Llistxattr(p, buf); err == nil {
			var xs []string
			for _, name := range strings.Split(string(buf[:n]), "\x00") {
				if name == "" {
					continue
				}
				v := make([]byte, 8192)
				m, err := unix.Lgetxattr(p, name, v)
				if err != nil {
					return err
				}
				xs = append(xs, name+"="+hex.EncodeToString(v[:m]))
			}
			sort.Strings(xs)
			desc += " xattrs=" + strings.Join(xs, ",")
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return out
}

func assertUnchanged(t testing.TB, before, after map[string]string) {
	t.Helper()
	var d []string
	for k, v := range before {
		if w, ok := after[k]; !ok {
			d = append(d, "- "+k+" "+v)
		} else if w != v {
			d = append(d, "~ "+k+" "+v+" => "+w)
		}
	}
	for k, v := range after {
		if _, ok := before[k]; !ok {
			d = append(d, "+ "+k+" "+v)
		}
	}
	if len(d) > 0 {
		sort.Strings(d)
		t.Fatalf("tree changed:\n%s", strings.Join(d, "\n"))
	}
}

// assertStatus checks a call's gRPC code and that its message contains want.
func assertStatus(t testing.TB, err error, code codes.Code, want string) {
	t.Helper()
	st := status.Convert(err)
	if err == nil || st.Code() != code || !strings.Contains(st.Message(), want) {
		t.Fatalf("got %v (code %v), want code %v with a message containing %q", err, st.Code(), code, want)
	}
}

func TestEntryOpsRefused(t *testing.T) {
	fx := newFixture(t, nil)
	const (
		mkdirOp   = slavev1.EntryOp_ENTRY_OP_MKDIR
		createOp  = slavev1.EntryOp_ENTRY_OP_CREATE
		renameOp  = slavev1.EntryOp_ENTRY_OP_RENAME
		linkOp    = slavev1.EntryOp_ENTRY_OP_LINK
		unlinkOp  = slavev1.EntryOp_ENTRY_OP_UNLINK
		rmdirOp   = slavev1.EntryOp_ENTRY_OP_RMDIR
		symlinkOp = slavev1.EntryOp_ENTRY_OP_SYMLINK
		mknodOp   = slavev1.EntryOp_ENTRY_OP_MKNOD
	)
	newG := gfid.New().String()
	mk := func(name string) *slavev1.Entry {
		return &slavev1.Entry{Op: mkdirOp, Gfid: newG, Pargfid: rootG, Name: []byte(name), Mode: unix.S_IFDIR | 0o755}
	}
	withGFID := func(g, parent string) *slavev1.Entry {
		return &slavev1.Entry{Op: createOp, Gfid: g, Pargfid: parent, Name: []byte("x"), Mode: unix.S_IFREG | 0o644}
	}
	tests := []struct {
		name  string
		entry *slavev1.Entry
		errno syscall.Errno
		msg   string // must appear in the failure message
		// existing, when set, must be the failure's existing gfid.
		existing string
	}{
		{"name with slash", mk("a/b"), syscall.EINVAL, "contains '/'", ""},
		{"name dotdot", mk(".."), syscall.EINVAL, `"." and ".." are not names`, ""},
		{"name dot", mk("."), syscall.EINVAL, `"." and ".." are not names`, ""},
		{"name with NUL", mk("a\x00b"), syscall.EINVAL, "NUL", ""},
		{"empty name", mk(""), syscall.EINVAL, "empty", ""},
		{"256-byte name", mk(strings.Repeat("n", 256)), syscall.EINVAL, "256 bytes, longer than 255", ""},
		{"slash-only name", mk("/"), syscall.EINVAL, "contains '/'", ""},
		{"escape name", mk("../outside"), syscall.EINVAL, "contains '/'", ""},
		{"reserved .georep in root", mk(".georep"), syscall.EPERM, "reserved name", ""},
		{"rename to dotdot", &slavev1.Entry{Op: renameOp, Gfid: fx.F, Pargfid: rootG, Name: []byte("f"), NewPargfid: rootG, NewName: []byte("..")}, syscall.EINVAL, `".."`, ""},
		{"rename to .georep", &slavev1.Entry{Op: renameOp, Gfid: fx.F, Pargfid: rootG, Name: []byte("f"), NewPargfid: rootG, NewName: []byte(".georep")}, syscall.EPERM, "reserved name", ""},

		{"empty gfid", withGFID("", rootG), syscall.EINVAL, "gfid", ""},
		{"garbage gfid", withGFID("zzz", rootG), syscall.EINVAL, "malformed gfid", ""},
		{"gfid without dashes", withGFID(strings.ReplaceAll(newG, "-", ""), rootG), syscall.EINVAL, "malformed gfid", ""},
		{"gfid in braces", withGFID("{"+newG[1:35]+"}", rootG), syscall.EINVAL, "malformed gfid", ""},
		{"gfid with non-hex", withGFID("g"+newG[1:], rootG), syscall.EINVAL, "malformed gfid", ""},
		{"zero gfid", withGFID(zeroG, rootG), syscall.EINVAL, "zero gfid", ""},
		{"empty pargfid", withGFID(newG, ""), syscall.EINVAL, "pargfid", ""},
		{"garbage pargfid", withGFID(newG, "zzz"), syscall.EINVAL, "pargfid", ""},
		{"zero pargfid", withGFID(newG, zeroG), syscall.EINVAL, "pargfid: malformed gfid: zero gfid", ""},
		{"garbage new pargfid", &slavev1.Entry{Op: renameOp, Gfid: fx.F, Pargfid: rootG, Name: []byte("f"), NewPargfid: "zzz", NewName: []byte("f2")}, syscall.EINVAL, "new pargfid", ""},
		{"unknown op", &slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_UNSPECIFIED, Gfid: newG, Pargfid: rootG, Name: []byte("x")}, syscall.EINVAL, "unknown entry op", ""},
		{"out of range op", &slavev1.Entry{Op: 99, Gfid: newG, Pargfid: rootG, Name: []byte("x")}, syscall.EINVAL, "unknown entry op", ""},

		{"unknown parent", withGFID(newG, gfid.New().String()), syscall.ENOENT, "not found", ""},
		{"parent is a file", withGFID(newG, fx.F), syscall.ENOTDIR, "not a directory", ""},
		{"rename unknown gfid", &slavev1.Entry{Op: renameOp, Gfid: newG, Pargfid: rootG, Name: []byte("nope"), NewPargfid: rootG, NewName: []byte("x")}, syscall.ENOENT, "not found", ""},
		{"rename dir into its child", &slavev1.Entry{Op: renameOp, Gfid: fx.D, Pargfid: rootG, Name: []byte("d"), NewPargfid: fx.Sub, NewName: []byte("d")}, syscall.EINVAL, "own subtree", ""},
		{"rename dir into itself", &slavev1.Entry{Op: renameOp, Gfid: fx.D, Pargfid: rootG, Name: []byte("d"), NewPargfid: fx.D, NewName: []byte("d")}, syscall.EINVAL, "own subtree", ""},
		{"link to a directory", &slavev1.Entry{Op: linkOp, Gfid: fx.D, Pargfid: rootG, Name: []byte("dlink")}, syscall.EPERM, "LINK to a directory", ""},
		{"link to unknown gfid", &slavev1.Entry{Op: linkOp, Gfid: newG, Pargfid: rootG, Name: []byte("x")}, syscall.ENOENT, "not found", ""},
		{"name holds another gfid", withGFIDName(newG, rootG, "f"), syscall.EEXIST, "holds gfid " + fx.F, fx.F},
		{"mkdir of a file's gfid", &slavev1.Entry{Op: mkdirOp, Gfid: fx.F, Pargfid: rootG, Name: []byte("fdir"), Mode: unix.S_IFDIR | 0o755}, syscall.EEXIST, "another name", ""},
		{"create with directory mode", &slavev1.Entry{Op: createOp, Gfid: newG, Pargfid: rootG, Name: []byte("x"), Mode: unix.S_IFDIR | 0o755}, syscall.EINVAL, "not a regular file", ""},
		{"mknod of a symlink mode", &slavev1.Entry{Op: mknodOp, Gfid: newG, Pargfid: rootG, Name: []byte("x"), Mode: unix.S_IFLNK | 0o777}, syscall.EINVAL, "MKNOD", ""},
		{"symlink without target", &slavev1.Entry{Op: symlinkOp, Gfid: newG, Pargfid: rootG, Name: []byte("x")}, syscall.EINVAL, "empty symlink target", ""},
		{"symlink target with NUL", &slavev1.Entry{Op: symlinkOp, Gfid: newG, Pargfid: rootG, Name: []byte("x"), LinkTarget: []byte("a\x00b")}, syscall.EINVAL, "NUL", ""},
		{"unlink a directory", &slavev1.Entry{Op: unlinkOp, Gfid: fx.D, Pargfid: rootG, Name: []byte("d")}, syscall.EISDIR, "RMDIR", ""},
		{"rmdir a file", &slavev1.Entry{Op: rmdirOp, Gfid: fx.F, Pargfid: rootG, Name: []byte("f")}, syscall.ENOTDIR, "not a directory", ""},
		{"rmdir non-empty", &slavev1.Entry{Op: rmdirOp, Gfid: fx.D, Pargfid: rootG, Name: []byte("d")}, syscall.ENOTEMPTY, "rmdir", ""},

		{"mkdir with the root gfid", &slavev1.Entry{Op: mkdirOp, Gfid: rootG, Pargfid: fx.D, Name: []byte("r"), Mode: unix.S_IFDIR | 0o755}, syscall.EPERM, "reserved", ""},
		{"create with the park gfid", withGFID(parkG, rootG), syscall.EPERM, "reserved", ""},
		{"rename the root", &slavev1.Entry{Op: renameOp, Gfid: rootG, Pargfid: rootG, Name: []byte("d"), NewPargfid: fx.D, NewName: []byte("r")}, syscall.EPERM, "reserved", ""},
		{"rmdir the park", &slavev1.Entry{Op: rmdirOp, Gfid: parkG, Pargfid: rootG, Name: []byte(".georep")}, syscall.EPERM, "reserved", ""},
		{"unlink the root", &slavev1.Entry{Op: unlinkOp, Gfid: rootG, Pargfid: parkG, Name: []byte("x")}, syscall.EPERM, "reserved", ""},
		{"link to the root", &slavev1.Entry{Op: linkOp, Gfid: rootG, Pargfid: fx.D, Name: []byte("r")}, syscall.EPERM, "reserved", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := state(t, fx.dir)
			fails := fx.entries(t, tt.entry)
			if len(fails) != 1 {
				t.Fatalf("got %d failures %v, want 1", len(fails), fails)
			}
			f := fails[0]
			t.Logf("errno %d: %s", f.GetErrno(), f.GetMessage())
			if f.GetIndex() != 0 || syscall.Errno(f.GetErrno()) != tt.errno || !strings.Contains(f.GetMessage(), tt.msg) {
				t.Errorf("failure index %d errno %v %q; want index 0, errno %v, message containing %q",
					f.GetIndex(), syscall.Errno(f.GetErrno()), f.GetMessage(), tt.errno, tt.msg)
			}
			if f.GetExistingGfid() != tt.existing {
				t.Errorf("existing gfid %q, want %q", f.GetExistingGfid(), tt.existing)
			}
			assertUnchanged(t, before, state(t, fx.dir))
		})
	}
	// Failures are per entry: the valid entries of a mixed batch are applied,
	// and each failure carries its own index.
	t.Run("mixed batch", func(t *testing.T) {
		ok := gfid.New().String()
		fails := fx.entries(t,
			mk("a/b"),
			&slavev1.Entry{Op: createOp, Gfid: ok, Pargfid: fx.D, Name: []byte("ok"), Mode: unix.S_IFREG | 0o644},
			withGFID(newG, gfid.New().String()),
		)
		got := map[uint32]int32{}
		for _, f := range fails {
			got[f.GetIndex()] = f.GetErrno()
		}
		if len(fails) != 2 || got[0] != int32(syscall.EINVAL) || got[2] != int32(syscall.ENOENT) {
			t.Errorf("failures %v, want index 0 EINVAL and index 2 ENOENT", fails)
		}
		if _, err := os.Lstat(filepath.Join(fx.root, "d", "ok")); err != nil {
			t.Errorf("the valid entry of the batch was not applied: %v", err)
		}
	})
}

func withGFIDName(g, parent, name string) *slavev1.Entry {
	return &slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_CREATE, Gfid: g, Pargfid: parent, Name: []byte(name), Mode: unix.S_IFREG | 0o644}
}

func TestEntryOpsApplied(t *testing.T) {
	fx := newFixture(t, nil)
	long := strings.Repeat("L", 255)
	e, s, fifo, up := gfid.New().String(), gfid.New().String(), gfid.New().String(), gfid.New()
	batch := []*slavev1.Entry{
		{Op: slavev1.EntryOp_ENTRY_OP_MKDIR, Gfid: e, Pargfid: rootG, Name: []byte("e"), Mode: unix.S_IFDIR | 0o750},
		// Uppercase gfids are accepted; the replica knows them by their canonical form.
		{Op: slavev1.EntryOp_ENTRY_OP_CREATE, Gfid: strings.ToUpper(up.String()), Pargfid: strings.ToUpper(e), Name: []byte(long), Mode: unix.S_IFREG | 0o600},
		{Op: slavev1.EntryOp_ENTRY_OP_SYMLINK, Gfid: s, Pargfid: e, Name: []byte("s"), LinkTarget: []byte("/etc/passwd")},
		{Op: slavev1.EntryOp_ENTRY_OP_MKNOD, Gfid: fifo, Pargfid: e, Name: []byte("p"), Mode: unix.S_IFIFO | 0o640},
		{Op: slavev1.EntryOp_ENTRY_OP_LINK, Gfid: fx.F, Pargfid: e, Name: []byte("f-again")},
		{Op: slavev1.EntryOp_ENTRY_OP_RENAME, Gfid: fx.G, Pargfid: fx.D, Name: []byte("g"), NewPargfid: e, NewName: []byte("g-moved")},
		{Op: slavev1.EntryOp_ENTRY_OP_RENAME, Gfid: fx.Sub, Pargfid: fx.D, Name: []byte("sub"), NewPargfid: e, NewName: []byte("sub")},
		{Op: slavev1.EntryOp_ENTRY_OP_UNLINK, Gfid: fx.F, Pargfid: rootG, Name: []byte("f")},
		{Op: slavev1.EntryOp_ENTRY_OP_RMDIR, Gfid: fx.D, Pargfid: rootG, Name: []byte("d")},
	}
	fx.mustEntries(t, batch...)
	// A replay converges without failures and without changes.
	before := state(t, fx.dir)
	fx.mustEntries(t, batch...)
	assertUnchanged(t, before, state(t, fx.dir))

	ents, err := fx.client.Entries(t.Context(), &slavev1.EntriesRequest{Gfid: e})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, de := range ents.GetEntries() {
		got = append(got, fmt.Sprintf("%s:%s:%s", truncate(string(de.GetName())), de.GetGfid(), de.GetType()))
	}
	want := []string{
		truncate(long) + ":" + up.String() + ":FILE_TYPE_REGULAR",
		"f-again:" + fx.F + ":FILE_TYPE_REGULAR",
		"g-moved:" + fx.G + ":FILE_TYPE_REGULAR",
		"p:" + fifo + ":FILE_TYPE_FIFO",
		"s:" + s + ":FILE_TYPE_SYMLINK",
		"sub:" + fx.Sub + ":FILE_TYPE_DIRECTORY",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Entries(e):\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := os.Lstat(filepath.Join(fx.root, "d")); !os.IsNotExist(err) {
		t.Errorf("d still exists: %v", err)
	}
}

func truncate(s string) string {
	if len(s) > 20 {
		return s[:20] + "..."
	}
	return s
}

func TestMetaOps(t *testing.T) {
	fx := newFixture(t, nil)
	mtime := &slavev1.Timespec{Sec: 1_600_000_000, Nsec: 5}
	resp, err := fx.client.MetaOps(fx.ctx(t), &slavev1.MetaOpsRequest{Metas: []*slavev1.Meta{
		{Gfid: fx.F, SetMode: true, Mode: 0o600, Mtime: mtime, SetXattrs: true, Xattrs: []*slavev1.Xattr{{Name: "user.k", Value: []byte("v")}}},
		{Gfid: parkG, SetMode: true, Mode: 0o777},
		{Gfid: "zzz", SetMode: true, Mode: 0o777},
		{Gfid: gfid.New().String(), SetMode: true, Mode: 0o777},
		{Gfid: fx.D, SetXattrs: true, Xattrs: []*slavev1.Xattr{{Name: "trusted.georep.gfid", Value: []byte("x")}}},
		{Gfid: zeroG, SetMode: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint32]syscall.Errno{1: syscall.EPERM, 2: syscall.EINVAL, 3: syscall.ENOENT, 4: syscall.EINVAL, 5: syscall.EINVAL}
	if len(resp.GetFailures()) != len(want) {
		t.Errorf("failures %v, want %v", resp.GetFailures(), want)
	}
	for _, f := range resp.GetFailures() {
		if w, ok := want[f.GetIndex()]; !ok || syscall.Errno(f.GetErrno()) != w || f.GetMessage() == "" {
			t.Errorf("failure %d: errno %v %q, want %v", f.GetIndex(), syscall.Errno(f.GetErrno()), f.GetMessage(), w)
		}
	}
	st, err := fx.client.Stat(t.Context(), &slavev1.StatRequest{Gfids: []string{fx.F}})
	if err != nil {
		t.Fatal(err)
	}
	a := st.GetResults()[0].GetAttr()
	if a.GetMode()&0o7777 != 0o600 || a.GetMtime().GetSec() != mtime.Sec || a.GetMtime().GetNsec() != mtime.Nsec {
		t.Errorf("after MetaOps: %v", a)
	}
	if v, err := unix.Getxattr(filepath.Join(fx.root, "f"), "user.k", make([]byte, 8)); err != nil || v != 1 {
		t.Errorf("user.k: %d, %v", v, err)
	}
}

func TestWriteFiles(t *testing.T) {
	fx := newFixture(t, nil)
	mtime := &slavev1.Timespec{Sec: 1_600_000_000, Nsec: 7}
	uid, gid := uint32(os.Geteuid()), uint32(os.Getegid())
	fx.mustEntries(t, &slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_LINK, Gfid: fx.F, Pargfid: fx.D, Name: []byte("f2")})
	resp, err := fx.client.WriteFiles(fx.ctx(t), &slavev1.WriteFilesRequest{Files: []*slavev1.FileData{
		{Gfid: fx.F, Data: []byte("new content"), Mode: 0o100600, Uid: uid, Gid: gid, Mtime: mtime},
		{Gfid: "zzz", Data: []byte("x")},
		{Gfid: fx.D, Data: []byte("x")},
		{Gfid: gfid.New().String(), Data: []byte("x")},
		{Gfid: zeroG, Data: []byte("x")},
		{Gfid: parkG, Data: []byte("x")},
		{Gfid: fx.G, Data: []byte("g"), Mode: 0o640, Uid: uid, Gid: gid, Mtime: mtime},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint32]syscall.Errno{1: syscall.EINVAL, 2: syscall.ENOENT, 3: syscall.ENOENT, 4: syscall.EINVAL, 5: syscall.EINVAL}
	if len(resp.GetFailures()) != len(want) {
		t.Errorf("failures %v, want %v", resp.GetFailures(), want)
	}
	for _, f := range resp.GetFailures() {
		if w, ok := want[f.GetIndex()]; !ok || syscall.Errno(f.GetErrno()) != w || f.GetMessage() == "" {
			t.Errorf("failure %d: errno %v %q, want %v", f.GetIndex(), syscall.Errno(f.GetErrno()), f.GetMessage(), w)
		}
	}
	for name, want := range map[string]string{"f": "new content", "d/f2": "new content", "d/g": "g"} {
		if b, err := os.ReadFile(filepath.Join(fx.root, name)); err != nil || string(b) != want {
			t.Errorf("%s = %q (%v), want %q", name, b, err, want)
		}
	}
	st, err := fx.client.Stat(t.Context(), &slavev1.StatRequest{Gfids: []string{fx.F}})
	if err != nil {
		t.Fatal(err)
	}
	a := st.GetResults()[0].GetAttr()
	if a.GetMode()&0o7777 != 0o600 || a.GetMtime().GetSec() != mtime.Sec || a.GetMtime().GetNsec() != mtime.Nsec || a.GetSize() != 11 {
		t.Errorf("after WriteFiles: %v", a)
	}
	// Nothing was created for the failed ones.
	if ents, err := fx.client.Entries(t.Context(), &slavev1.EntriesRequest{Gfid: rootG}); err != nil || len(ents.GetEntries()) != 2 {
		t.Errorf("root entries %v (%v), want d and f", ents.GetEntries(), err)
	}
}

func TestBatchLimit(t *testing.T) {
	fx := newFixture(t, func(c *Config) { c.MaxBatch = 4 })
	before := state(t, fx.dir)
	mk := func(n int) []*slavev1.Entry {
		var es []*slavev1.Entry
		for i := range n {
			es = append(es, &slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_MKDIR, Gfid: gfid.New().String(), Pargfid: rootG, Name: fmt.Appendf(nil, "b%d", i), Mode: unix.S_IFDIR | 0o755})
		}
		return es
	}
	metas := func(n int) []*slavev1.Meta {
		var ms []*slavev1.Meta
		for range n {
			ms = append(ms, &slavev1.Meta{Gfid: fx.F, SetMode: true, Mode: 0o777})
		}
		return ms
	}
	gfids := func(n int) []string {
		var gs []string
		for range n {
			gs = append(gs, fx.F)
		}
		return gs
	}
	tests := []struct {
		name string
		call func() error
		msg  string
	}{
		{"entry ops", func() error {
			_, err := fx.client.EntryOps(fx.ctx(t), &slavev1.EntryOpsRequest{Entries: mk(5)})
			return err
		}, "batch of 5 entries exceeds the limit of 4"},
		{"meta ops", func() error {
			_, err := fx.client.MetaOps(fx.ctx(t), &slavev1.MetaOpsRequest{Metas: metas(5)})
			return err
		}, "batch of 5 metas exceeds the limit of 4"},
		{"stat", func() error {
			_, err := fx.client.Stat(t.Context(), &slavev1.StatRequest{Gfids: gfids(5)})
			return err
		}, "stat of 5 gfids exceeds the limit of 4"},
		{"write files", func() error {
			var fs []*slavev1.FileData
			for range 5 {
				fs = append(fs, &slavev1.FileData{Gfid: fx.F, Data: []byte("x"), Mode: 0o777})
			}
			_, err := fx.client.WriteFiles(fx.ctx(t), &slavev1.WriteFilesRequest{Files: fs})
			return err
		}, "batch of 5 files exceeds the limit of 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertStatus(t, tt.call(), codes.InvalidArgument, tt.msg)
			assertUnchanged(t, before, state(t, fx.dir))
		})
	}
	// Exactly the limit is accepted.
	fx.mustEntries(t, mk(4)...)
	if _, err := fx.client.Stat(t.Context(), &slavev1.StatRequest{Gfids: gfids(4)}); err != nil {
		t.Errorf("Stat of max-batch gfids: %v", err)
	}
}

func TestSessionRequired(t *testing.T) {
	fx := newFixture(t, nil)
	before := state(t, fx.dir)
	entry := &slavev1.EntryOpsRequest{Entries: []*slavev1.Entry{{Op: slavev1.EntryOp_ENTRY_OP_MKDIR, Gfid: gfid.New().String(), Pargfid: rootG, Name: []byte("x"), Mode: unix.S_IFDIR | 0o755}}}
	calls := map[string]func(ctx context.Context) error{
		"EntryOps": func(ctx context.Context) error { _, err := fx.client.EntryOps(ctx, entry); return err },
		"MetaOps": func(ctx context.Context) error {
			_, err := fx.client.MetaOps(ctx, &slavev1.MetaOpsRequest{Metas: []*slavev1.Meta{{Gfid: fx.F, SetMode: true, Mode: 0o777}}})
			return err
		},
		"SetXtime": func(ctx context.Context) error {
			_, err := fx.client.SetXtime(ctx, &slavev1.SetXtimeRequest{Gfid: rootG, VolumeId: volA, Xtime: &slavev1.Timespec{Sec: 1}})
			return err
		},
		"Purge": func(ctx context.Context) error {
			_, err := fx.client.Purge(ctx, &slavev1.PurgeRequest{Pargfid: rootG, Name: []byte("d")})
			return err
		},
		"WriteFiles": func(ctx context.Context) error {
			_, err := fx.client.WriteFiles(ctx, &slavev1.WriteFilesRequest{Files: []*slavev1.FileData{{Gfid: fx.F, Data: []byte("x"), Mode: 0o777}}})
			return err
		},
		"KeepAlive": func(ctx context.Context) error {
			_, err := fx.client.KeepAlive(ctx, &slavev1.KeepAliveRequest{})
			return err
		},
		"Apply": func(ctx context.Context) error {
			stream, err := fx.client.Apply(ctx)
			if err != nil {
				return err
			}
			_ = stream.Send(&slavev1.ApplyRequest{Batch: &slavev1.ApplyRequest_Entries{Entries: entry}})
			_, err = stream.Recv()
			return err
		},
		"Rsync": func(ctx context.Context) error {
			stream, err := fx.client.Rsync(ctx)
			if err != nil {
				return err
			}
			_ = stream.Send(&slavev1.RsyncRequest{Msg: &slavev1.RsyncRequest_Start{Start: &slavev1.RsyncStart{Args: []string{"rsync", "--server", "-tpe.LsfxCIvu", ".", "."}}}})
			for {
				if _, err := stream.Recv(); err != nil {
					if err == io.EOF {
						return nil
					}
					return err
				}
			}
		},
	}
	sessions := []struct {
		name string
		ctx  func() context.Context
		msg  string
	}{
		{"no metadata", func() context.Context { return t.Context() }, "no session: call Handshake"},
		{"empty session id", func() context.Context { return withSession(t.Context(), "") }, "no session"},
		{"stale session id", func() context.Context { return withSession(t.Context(), "0123456789abcdef0123456789abcdef") }, "is not the current session"},
		{"session id of another key", func() context.Context {
			return metadata.AppendToOutgoingContext(t.Context(), "georep-sessionx", fx.session)
		}, "no session"},
	}
	for _, s := range sessions {
		for name, call := range calls {
			t.Run(s.name+"/"+name, func(t *testing.T) {
				assertStatus(t, call(s.ctx()), codes.FailedPrecondition, s.msg)
				assertUnchanged(t, before, state(t, fx.dir))
			})
		}
	}
	// Read-only calls need no session.
	if _, err := fx.client.Stat(t.Context(), &slavev1.StatRequest{Gfids: []string{rootG}}); err != nil {
		t.Errorf("Stat without a session: %v", err)
	}
	if _, err := fx.client.Entries(t.Context(), &slavev1.EntriesRequest{Gfid: rootG}); err != nil {
		t.Errorf("Entries without a session: %v", err)
	}
	if _, err := fx.client.Xtime(t.Context(), &slavev1.XtimeRequest{Gfid: rootG, VolumeId: volA}); err != nil {
		t.Errorf("Xtime without a session: %v", err)
	}
	// An expired session is refused for every mutating call, KeepAlive too:
	// it gave its replica set's lease up, which another worker may hold by
	// now; the master opens a new session.
	fx.clock.Advance(31 * time.Second)
	_, err := fx.client.EntryOps(fx.ctx(t), entry)
	assertStatus(t, err, codes.FailedPrecondition, "expired")
	_, err = fx.client.KeepAlive(fx.ctx(t), &slavev1.KeepAliveRequest{})
	assertStatus(t, err, codes.FailedPrecondition, "not the current session")
}

func TestHandshake(t *testing.T) {
	t.Run("response", func(t *testing.T) {
		fx := newFixture(t, nil)
		resp, err := fx.client.Handshake(t.Context(), &slavev1.HandshakeRequest{ProtocolVersion: ProtocolVersion, MasterVolumeId: volA, LeaseSeconds: 3600})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := gfid.Parse(resp.GetSlaveVolumeId()); err != nil {
			t.Errorf("slave volume id %q: %v", resp.GetSlaveVolumeId(), err)
		}
		if resp.GetProtocolVersion() != ProtocolVersion || resp.GetSessionId() == "" || resp.GetLeaseSeconds() != 30 || resp.GetMaxBatch() != 16 {
			t.Errorf("Handshake = %v (the lease asked for is capped at the slave's 30 s)", resp)
		}
		caps := strings.Join(resp.GetCapabilities(), ",")
		if !strings.Contains(caps, "xattrs") || !strings.Contains(caps, "mknod") || (fx.svc.rsync != "") != strings.Contains(caps, "rsync") {
			t.Errorf("capabilities %q (rsync %q)", caps, fx.svc.rsync)
		}
		// A short lease asked for is granted.
		resp, err = fx.client.Handshake(t.Context(), &slavev1.HandshakeRequest{ProtocolVersion: ProtocolVersion, MasterVolumeId: volA, LeaseSeconds: 5})
		if err != nil || resp.GetLeaseSeconds() != 5 {
			t.Errorf("Handshake with a 5 s lease = %v, %v", resp, err)
		}
	})

	t.Run("refused requests", func(t *testing.T) {
		fx := newFixture(t, nil)
		before := state(t, fx.dir)
		tests := []struct {
			name string
			req  *slavev1.HandshakeRequest
			code codes.Code
			msg  string
		}{
			{"protocol version too new", &slavev1.HandshakeRequest{ProtocolVersion: ProtocolVersion + 1, MasterVolumeId: volA}, codes.FailedPrecondition, "protocol version 2 not supported"},
			{"protocol version zero", &slavev1.HandshakeRequest{MasterVolumeId: volA}, codes.FailedPrecondition, "protocol version 0 not supported"},
			{"malformed master volume", &slavev1.HandshakeRequest{ProtocolVersion: ProtocolVersion, MasterVolumeId: "vol-a"}, codes.InvalidArgument, "master volume id"},
			{"empty master volume", &slavev1.HandshakeRequest{ProtocolVersion: ProtocolVersion}, codes.InvalidArgument, "master volume id"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := fx.client.Handshake(t.Context(), tt.req)
				assertStatus(t, err, tt.code, tt.msg)
				assertUnchanged(t, before, state(t, fx.dir))
			})
		}
		// The session of A is intact.
		if _, err := fx.client.KeepAlive(fx.ctx(t), &slavev1.KeepAliveRequest{}); err != nil {
			t.Errorf("KeepAlive of A after refused handshakes: %v", err)
		}
	})

	t.Run("same master volume takes over", func(t *testing.T) {
		fx := newFixture(t, nil)
		old := fx.session
		fx.session = fx.handshake(t, volA)
		if fx.session == old {
			t.Fatal("take-over returned the same session id")
		}
		before := state(t, fx.dir)
		_, err := fx.client.Purge(withSession(t.Context(), old), &slavev1.PurgeRequest{Pargfid: rootG, Name: []byte("d")})
		assertStatus(t, err, codes.FailedPrecondition, "is not the current session")
		_, err = fx.client.KeepAlive(withSession(t.Context(), old), &slavev1.KeepAliveRequest{})
		assertStatus(t, err, codes.FailedPrecondition, "is not the current session")
		assertUnchanged(t, before, state(t, fx.dir))
		if _, err := fx.client.KeepAlive(fx.ctx(t), &slavev1.KeepAliveRequest{}); err != nil {
			t.Errorf("KeepAlive with the new session: %v", err)
		}
	})

	t.Run("second master volume while the lease is held", func(t *testing.T) {
		// With --accept-new-master the binding does not stop B: the lease does.
		fx := newFixture(t, func(c *Config) { c.AcceptNewMaster = true })
		before := state(t, fx.dir)
		_, err := fx.client.Handshake(t.Context(), &slavev1.HandshakeRequest{ProtocolVersion: ProtocolVersion, MasterVolumeId: volB, MasterNode: "intruder:2"})
		assertStatus(t, err, codes.Aborted, "held by master volume "+volA)
		// A refused handshake changes nothing: the replica stays bound to A.
		assertUnchanged(t, before, state(t, fx.dir))
		if _, err := fx.client.KeepAlive(fx.ctx(t), &slavev1.KeepAliveRequest{}); err != nil {
			t.Errorf("A lost its session to a refused B: %v", err)
		}
	})

	t.Run("second master volume with the replica bound", func(t *testing.T) {
		fx := newFixture(t, nil)
		before := state(t, fx.dir)
		_, err := fx.client.Handshake(t.Context(), &slavev1.HandshakeRequest{ProtocolVersion: ProtocolVersion, MasterVolumeId: volB})
		// While A holds the lease, that is what B is told.
		assertStatus(t, err, codes.Aborted, "held by master volume "+volA)
		// After A's lease expired, the binding refuses B.
		fx.clock.Advance(time.Hour)
		_, err = fx.client.Handshake(t.Context(), &slavev1.HandshakeRequest{ProtocolVersion: ProtocolVersion, MasterVolumeId: volB})
		assertStatus(t, err, codes.FailedPrecondition, "was synced from master volume "+volA+", not "+volB)
		assertStatus(t, err, codes.FailedPrecondition, "--accept-new-master")
		assertUnchanged(t, before, state(t, fx.dir))
		if b, err := os.ReadFile(filepath.Join(fx.root, ".georep", "master-volume-id")); err != nil || strings.TrimSpace(string(b)) != volA {
			t.Errorf("binding %q, %v; want %s", b, err, volA)
		}

		// The operator restarts the slave with --accept-new-master: B takes
		// the replica over once A's lease has expired.
		cfg := testConfig(fx.root)
		cfg.AcceptNewMaster = true
		clock := &testClock{now: fx.clock.Now()}
		client, _ := serve(t, newService(t, cfg, clock.Now, testLog(t)))
		resp, err := client.Handshake(t.Context(), &slavev1.HandshakeRequest{ProtocolVersion: ProtocolVersion, MasterVolumeId: volB})
		if err != nil {
			t.Fatalf("B with --accept-new-master: %v", err)
		}
		if b, err := os.ReadFile(filepath.Join(fx.root, ".georep", "master-volume-id")); err != nil || strings.TrimSpace(string(b)) != volB {
			t.Errorf("binding %q, %v; want %s", b, err, volB)
		}
		if _, err := client.KeepAlive(withSession(t.Context(), resp.GetSessionId()), &slavev1.KeepAliveRequest{}); err != nil {
			t.Errorf("KeepAlive of B: %v", err)
		}
		// Now A is the second master.
		_, err = client.Handshake(t.Context(), &slavev1.HandshakeRequest{ProtocolVersion: ProtocolVersion, MasterVolumeId: volA})
		assertStatus(t, err, codes.Aborted, "held by master volume "+volB)
	})
}

func TestQueries(t *testing.T) {
	fx := newFixture(t, nil)
	unknown := gfid.New().String()

	t.Run("entries", func(t *testing.T) {
		resp, err := fx.client.Entries(t.Context(), &slavev1.EntriesRequest{Gfid: rootG})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range resp.GetEntries() {
			names = append(names, string(e.GetName())+"="+e.GetGfid())
		}
		if want := "d=" + fx.D + ",f=" + fx.F; strings.Join(names, ",") != want {
			t.Errorf("Entries(root) = %v, want %s (never .georep)", names, want)
		}
		tests := []struct {
			name string
			g    string
			code codes.Code
			msg  string
		}{
			{"unknown gfid", unknown, codes.NotFound, "not found"},
			{"malformed gfid", "zzz", codes.InvalidArgument, "gfid"},
			{"empty gfid", "", codes.InvalidArgument, "gfid"},
			{"zero gfid", zeroG, codes.InvalidArgument, "zero gfid"},
			{"a regular file", fx.F, codes.FailedPrecondition, "is not a directory"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := fx.client.Entries(t.Context(), &slavev1.EntriesRequest{Gfid: tt.g})
				assertStatus(t, err, tt.code, tt.msg)
			})
		}
	})

	t.Run("stat", func(t *testing.T) {
		resp, err := fx.client.Stat(t.Context(), &slavev1.StatRequest{Gfids: []string{fx.D, fx.F, unknown, "zzz", zeroG, rootG, parkG, strings.ToUpper(fx.F)}})
		if err != nil {
			t.Fatal(err)
		}
		want := []struct {
			errno syscall.Errno
			typ   slavev1.FileType
		}{
			{0, slavev1.FileType_FILE_TYPE_DIRECTORY}, {0, slavev1.FileType_FILE_TYPE_REGULAR},
			{syscall.ENOENT, 0}, {syscall.EINVAL, 0}, {syscall.EINVAL, 0},
			{0, slavev1.FileType_FILE_TYPE_DIRECTORY}, {0, slavev1.FileType_FILE_TYPE_DIRECTORY},
			{0, slavev1.FileType_FILE_TYPE_REGULAR},
		}
		for i, r := range resp.GetResults() {
			if syscall.Errno(r.GetErrno()) != want[i].errno || r.GetAttr().GetType() != want[i].typ {
				t.Errorf("result %d (%s): errno %v type %v, want %v %v", i, r.GetGfid(), syscall.Errno(r.GetErrno()), r.GetAttr().GetType(), want[i].errno, want[i].typ)
			}
		}
		if a := resp.GetResults()[1].GetAttr(); a.GetNlink() != 1 || a.GetMode()&0o777 != 0o644 {
			t.Errorf("Stat(f) = %v, want nlink 1 (the index link not counted), mode 644", a)
		}
	})

	t.Run("xtime", func(t *testing.T) {
		resp, err := fx.client.Xtime(t.Context(), &slavev1.XtimeRequest{Gfid: fx.D, VolumeId: volA})
		if err != nil || resp.GetXtime() != nil {
			t.Fatalf("Xtime before any mark = %v, %v; want unset", resp, err)
		}
		for _, g := range []string{rootG, fx.D, fx.F} {
			if _, err := fx.client.SetXtime(fx.ctx(t), &slavev1.SetXtimeRequest{Gfid: g, VolumeId: volA, Xtime: &slavev1.Timespec{Sec: 1_700_000_123, Nsec: 456}}); err != nil {
				t.Fatalf("SetXtime(%s): %v", g, err)
			}
			resp, err := fx.client.Xtime(t.Context(), &slavev1.XtimeRequest{Gfid: g, VolumeId: volA})
			if err != nil || resp.GetXtime().GetSec() != 1_700_000_123 || resp.GetXtime().GetNsec() != 456 {
				t.Errorf("Xtime(%s) = %v, %v", g, resp, err)
			}
		}
		if resp, err := fx.client.Xtime(t.Context(), &slavev1.XtimeRequest{Gfid: fx.D, VolumeId: volB}); err != nil || resp.GetXtime() != nil {
			t.Errorf("Xtime of another volume = %v, %v; want unset", resp, err)
		}
		before := state(t, fx.dir)
		tests := []struct {
			name string
			req  *slavev1.SetXtimeRequest
			code codes.Code
			msg  string
		}{
			{"malformed gfid", &slavev1.SetXtimeRequest{Gfid: "zzz", VolumeId: volA}, codes.InvalidArgument, "gfid"},
			{"zero gfid", &slavev1.SetXtimeRequest{Gfid: zeroG, VolumeId: volA}, codes.InvalidArgument, "zero gfid"},
			{"malformed volume", &slavev1.SetXtimeRequest{Gfid: fx.D, VolumeId: "../../x"}, codes.InvalidArgument, "volume id"},
			{"unknown gfid", &slavev1.SetXtimeRequest{Gfid: unknown, VolumeId: volA}, codes.NotFound, "not found"},
			{"nanoseconds out of range", &slavev1.SetXtimeRequest{Gfid: fx.D, VolumeId: volA, Xtime: &slavev1.Timespec{Nsec: 1e9}}, codes.InvalidArgument, "out of range"},
			{"negative nanoseconds", &slavev1.SetXtimeRequest{Gfid: fx.D, VolumeId: volA, Xtime: &slavev1.Timespec{Nsec: -1}}, codes.InvalidArgument, "out of range"},
		}
		for _, tt := range tests {
			t.Run("set "+tt.name, func(t *testing.T) {
				_, err := fx.client.SetXtime(fx.ctx(t), tt.req)
				assertStatus(t, err, tt.code, tt.msg)
				assertUnchanged(t, before, state(t, fx.dir))
			})
			t.Run("get "+tt.name, func(t *testing.T) {
				if tt.req.GetXtime() != nil {
					t.Skip("no Xtime counterpart")
				}
				_, err := fx.client.Xtime(t.Context(), &slavev1.XtimeRequest{Gfid: tt.req.GetGfid(), VolumeId: tt.req.GetVolumeId()})
				assertStatus(t, err, tt.code, tt.msg)
			})
		}
	})

	t.Run("purge", func(t *testing.T) {
		before := state(t, fx.dir)
		tests := []struct {
			name string
			req  *slavev1.PurgeRequest
			code codes.Code
			msg  string
		}{
			{"malformed pargfid", &slavev1.PurgeRequest{Pargfid: "zzz", Name: []byte("d")}, codes.InvalidArgument, "pargfid"},
			{"malformed only gfid", &slavev1.PurgeRequest{Pargfid: rootG, Name: []byte("d"), Gfid: "zzz"}, codes.InvalidArgument, "gfid"},
			{"name with slash", &slavev1.PurgeRequest{Pargfid: rootG, Name: []byte("d/sub")}, codes.InvalidArgument, "contains '/'"},
			{"name dotdot", &slavev1.PurgeRequest{Pargfid: fx.D, Name: []byte("..")}, codes.InvalidArgument, "are not names"},
			{"empty name", &slavev1.PurgeRequest{Pargfid: rootG}, codes.InvalidArgument, "empty"},
			{"256-byte name", &slavev1.PurgeRequest{Pargfid: rootG, Name: []byte(strings.Repeat("n", 256))}, codes.InvalidArgument, "longer than 255"},
			{"unknown parent", &slavev1.PurgeRequest{Pargfid: unknown, Name: []byte("d")}, codes.NotFound, "not found"},
			{"the .georep directory", &slavev1.PurgeRequest{Pargfid: rootG, Name: []byte(".georep")}, codes.PermissionDenied, "reserved name"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := fx.client.Purge(fx.ctx(t), tt.req)
				assertStatus(t, err, tt.code, tt.msg)
				assertUnchanged(t, before, state(t, fx.dir))
			})
		}
		// A missing name and a name holding another gfid are left alone.
		for _, req := range []*slavev1.PurgeRequest{
			{Pargfid: rootG, Name: []byte("missing")},
			{Pargfid: rootG, Name: []byte("d"), Gfid: fx.F},
		} {
			if resp, err := fx.client.Purge(fx.ctx(t), req); err != nil || resp.GetRemoved() != 0 {
				t.Errorf("Purge(%v) = %v, %v; want nothing removed", req, resp, err)
			}
		}
		assertUnchanged(t, before, state(t, fx.dir))
		// d holds sub and g: three inodes go, with their index entries.
		resp, err := fx.client.Purge(fx.ctx(t), &slavev1.PurgeRequest{Pargfid: rootG, Name: []byte("d"), Gfid: fx.D})
		if err != nil || resp.GetRemoved() != 3 {
			t.Fatalf("Purge(d) = %v, %v; want 3 removed", resp, err)
		}
		st, err := fx.client.Stat(t.Context(), &slavev1.StatRequest{Gfids: []string{fx.D, fx.Sub, fx.G, fx.F}})
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range st.GetResults() {
			if want := map[bool]int32{true: 0, false: int32(syscall.ENOENT)}[i == 3]; r.GetErrno() != want {
				t.Errorf("after purge, Stat(%s) errno %d, want %d", r.GetGfid(), r.GetErrno(), want)
			}
		}
	})
}

// TestErrnoAcrossTheWire: a domain error of a query reaches the client
// with its errno (rpc/wire's ErrorInfo), so that wire.FromStatus gives the
// master errors.Is against the sentinels of rpc/ops.
func TestErrnoAcrossTheWire(t *testing.T) {
	fx := newFixture(t, nil)
	unknown := gfid.New().String()
	tests := []struct {
		name string
		call func() error
		code codes.Code
		want syscall.Errno
	}{
		{"entries of an unknown gfid", func() error {
			_, err := fx.client.Entries(t.Context(), &slavev1.EntriesRequest{Gfid: unknown})
			return err
		}, codes.NotFound, ops.ErrNotFound},
		{"entries of a regular file", func() error {
			_, err := fx.client.Entries(t.Context(), &slavev1.EntriesRequest{Gfid: fx.F})
			return err
		}, codes.FailedPrecondition, ops.ErrNotDir},
		{"purge of a name with a slash", func() error {
			_, err := fx.client.Purge(fx.ctx(t), &slavev1.PurgeRequest{Pargfid: rootG, Name: []byte("d/sub")})
			return err
		}, codes.InvalidArgument, ops.ErrInvalid},
		{"purge of a 256-byte name", func() error {
			_, err := fx.client.Purge(fx.ctx(t), &slavev1.PurgeRequest{Pargfid: rootG, Name: []byte(strings.Repeat("n", 256))})
			return err
		}, codes.InvalidArgument, ops.ErrNameTooLong},
		{"purge under an unknown parent", func() error {
			_, err := fx.client.Purge(fx.ctx(t), &slavev1.PurgeRequest{Pargfid: unknown, Name: []byte("d")})
			return err
		}, codes.NotFound, ops.ErrNotFound},
		{"set xtime of an unknown gfid", func() error {
			_, err := fx.client.SetXtime(fx.ctx(t), &slavev1.SetXtimeRequest{Gfid: unknown, VolumeId: volA})
			return err
		}, codes.NotFound, ops.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := wire.FromStatus(tt.call())
			if status.Code(err) != tt.code {
				t.Errorf("code %v, want %v (%v)", status.Code(err), tt.code, err)
			}
			var errno syscall.Errno
			if !errors.Is(err, tt.want) || !errors.As(err, &errno) || errno != tt.want {
				t.Errorf("%v: errno %v, want %v", err, errno, tt.want)
			}
		})
	}
}

// TestRunHealthReflection starts the daemon with Run and checks health and
// reflection over a real connection.
func TestRunHealthReflection(t *testing.T) {
	_, root := scratchDirs(t)
	cfg := testConfig(root)
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, testLog(t), func(a net.Addr) { addrc <- a.String() })
	}()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("Run did not become ready")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	conn, err := rpc.NewClient(rpc.ClientConfig{Address: addr, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	hc := healthpb.NewHealthClient(conn)
	resp, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v; want SERVING", resp, err)
	}

	rc, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	rr, err := rc.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var services []string
	for _, s := range rr.GetListServicesResponse().GetService() {
		services = append(services, s.GetName())
	}
	for _, want := range []string{slavev1.SlaveService_ServiceDesc.ServiceName, "grpc.health.v1.Health"} {
		if !strings.Contains(strings.Join(services, " "), want) {
			t.Errorf("reflection lists %v, want %s among them", services, want)
		}
	}
	_ = rc.CloseSend()

	// The served slave is the real one: a handshake works.
	client := slavev1.NewSlaveServiceClient(conn)
	if _, err := client.Handshake(t.Context(), &slavev1.HandshakeRequest{ProtocolVersion: ProtocolVersion, MasterVolumeId: volA}); err != nil {
		t.Errorf("Handshake through Run: %v", err)
	}
}

// FuzzEntryOpsRequest feeds arbitrary bytes, decoded as an EntryOpsRequest,
// to the service's EntryOps (no network) on a scratch replica: no panic, a
// well-formed response, and nothing outside the replica root changes.
func FuzzEntryOpsRequest(f *testing.F) {
	seed := func(es ...*slavev1.Entry) {
		b, err := proto.Marshal(&slavev1.EntryOpsRequest{Entries: es})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	d := "11111111-1111-4111-8111-111111111111"
	s := "22222222-2222-4222-8222-222222222222"
	seed()
	seed(&slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_MKDIR, Gfid: d, Pargfid: rootG, Name: []byte("d"), Mode: unix.S_IFDIR | 0o755},
		&slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_SYMLINK, Gfid: s, Pargfid: d, Name: []byte("out"), LinkTarget: []byte("../../outside")},
		&slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_CREATE, Gfid: "33333333-3333-4333-8333-333333333333", Pargfid: s, Name: []byte("sentinel"), Mode: unix.S_IFREG | 0o644})
	seed(&slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_RENAME, Gfid: parkG, Pargfid: rootG, Name: []byte(".georep"), NewPargfid: rootG, NewName: []byte("..")})
	f.Fuzz(func(t *testing.T, data []byte) {
		var req slavev1.EntryOpsRequest
		if err := proto.Unmarshal(data, &req); err != nil {
			t.Skip()
		}
		dir, root := scratchDirs(t)
		cfg := testConfig(root)
		svc := newService(t, cfg, nil, testLog(t))
		outside := filepath.Join(dir, "outside")
		before := state(t, outside)
		for range 2 { // replays must be safe too
			resp, err := svc.EntryOps(t.Context(), &req)
			if len(req.GetEntries()) > cfg.MaxBatch {
				if status.Code(err) != codes.InvalidArgument {
					t.Fatalf("batch of %d: %v, want InvalidArgument", len(req.GetEntries()), err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("EntryOps: %v", err)
			}
			seen := map[uint32]bool{}
			for _, fl := range resp.GetFailures() {
				if int(fl.GetIndex()) >= len(req.GetEntries()) || seen[fl.GetIndex()] || fl.GetErrno() == 0 || fl.GetMessage() == "" {
					t.Fatalf("malformed failure %v", fl)
				}
				seen[fl.GetIndex()] = true
			}
		}
		assertUnchanged(t, before, state(t, outside))
		top, err := os.ReadDir(dir)
		if err != nil || len(top) != 2 {
			t.Fatalf("scratch dir holds %v, %v: want only root and outside", top, err)
		}
		assertReplicaIntact(t, svc, root)
	})
}

// assertReplicaIntact checks what no request may break: the root and the park
// directory keep their gfids, rsync's data directory holds only shard
// directories and regular files (ARCHITECTURE.md, "The slave's replica"),
// every name listed beneath the root can be stat'ed by its gfid with the
// type listed, and a new entry can still be created.
func assertReplicaIntact(t *testing.T, svc *service, root string) {
	t.Helper()
	ctx := t.Context()
	if a, err := svc.replica.Stat(ctx, gfid.Root); err != nil || a.Type != ops.TypeDir {
		t.Fatalf("Stat(root) = %v, %v", a, err)
	}
	if a, err := svc.replica.Stat(ctx, gfid.Park); err != nil || a.Type != ops.TypeDir {
		t.Fatalf("Stat(park) = %v, %v", a, err)
	}
	data := svc.replica.DataDir()
	err := filepath.WalkDir(data, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(data, p)
		depth := strings.Count(rel, "/") + 1
		if rel == "." {
			depth = 0
		}
		switch {
		case depth <= 1 && d.IsDir():
		case depth == 2 && d.Type().IsRegular():
		default:
			t.Fatalf("data directory holds %s (%v) at depth %d: only shard directories and regular files may be there", rel, d.Type(), depth)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var walk func(g gfid.GFID, path string, depth int)
	walk = func(g gfid.GFID, path string, depth int) {
		ents, err := svc.replica.Entries(ctx, g)
		if err != nil {
			t.Fatalf("Entries(%s %q): %v", g, path, err)
		}
		for _, e := range ents {
			if e.GFID.IsZero() {
				continue // a name without a gfid (not created by georep)
			}
			a, err := svc.replica.Stat(ctx, e.GFID)
			if err != nil || a.Type != e.Type {
				t.Fatalf("%s/%s lists gfid %s as %v; Stat gives %v, %v", path, e.Name, e.GFID, e.Type, a.Type, err)
			}
			if e.Type == ops.TypeDir && depth < 16 {
				walk(e.GFID, path+"/"+e.Name, depth+1)
			}
		}
	}
	walk(gfid.Root, "", 0)
	g := gfid.New()
	if fl := svc.replica.ApplyEntries(ctx, []ops.Entry{{Op: ops.OpCreate, GFID: g, Parent: gfid.Root, Name: "intact-" + g.String(), Mode: unix.S_IFREG | 0o644}}); len(fl) > 0 {
		t.Fatalf("a create after the requests failed: %+v", fl)
	}
}
