package slave

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/pkg/xattr"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"

	slavev1 "github.com/georep/georep/gen/georep/slave/v1"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// TestAudit checks what the slave's Audit describes (names in order, gfids,
// inode numbers, xattr digests without georep's own, content digests of the
// data on disk), that it reads only and needs no session, how it pages a
// directory, and that it refuses hostile requests.
func TestAudit(t *testing.T) {
	fx := newFixture(t, nil)
	data := []byte(strings.Repeat("audit me ", 1000))
	f := filepath.Join(fx.root, "f")
	if err := os.WriteFile(f, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := xattr.Set(f, "user.color", []byte("blue")); err != nil {
		t.Skipf("user xattrs not supported here: %v", err)
	}
	before := state(t, fx.dir)

	resp, err := fx.client.Audit(t.Context(), &slavev1.AuditRequest{Content: true,
		Dirs: []*slavev1.AuditDirRequest{{Gfid: rootG}, {Gfid: fx.D}, {Gfid: gfid.New().String()}, {Gfid: fx.F}}})
	if err != nil {
		t.Fatalf("Audit without a session: %v", err)
	}
	dirs := resp.GetDirs()
	if len(dirs) != 4 {
		t.Fatalf("Audit answered %d directories, want 4: %v", len(dirs), dirs)
	}
	var names []string
	for _, e := range dirs[0].GetEntries() {
		names = append(names, string(e.GetName()))
	}
	if strings.Join(names, ",") != "d,f" || dirs[0].GetMore() {
		t.Fatalf("Audit(root) names = %v (more %v), want d,f (never .georep)", names, dirs[0].GetMore())
	}
	ef := dirs[0].GetEntries()[1]
	var st unix.Stat_t
	if err := unix.Lstat(f, &st); err != nil {
		t.Fatal(err)
	}
	want, _, _ := ops.ContentDigest(bytes.NewReader(data))
	switch {
	case ef.GetGfid() != fx.F || ef.GetIno() != st.Ino || ef.GetAttr().GetSize() != uint64(len(data)):
		t.Errorf("entry f = %v, want gfid %s ino %d size %d", ef, fx.F, st.Ino, len(data))
	case !bytes.Equal(ef.GetContentDigest(), want) || ef.GetContentErrno() != 0:
		t.Errorf("content digest of f = %x (errno %d), want %x", ef.GetContentDigest(), ef.GetContentErrno(), want)
	case !bytes.Equal(ef.GetXattrDigest(), ops.XattrDigest(map[string][]byte{"user.color": []byte("blue")})):
		t.Errorf("xattr digest of f = %x, want the digest of user.color alone (georep's own xattrs left out)", ef.GetXattrDigest())
	}
	if d := dirs[0].GetEntries()[0]; d.GetGfid() != fx.D || len(d.GetContentDigest()) != 0 {
		t.Errorf("entry d = %v, want gfid %s and no content digest", d, fx.D)
	}
	if e := dirs[1].GetEntries(); len(e) != 2 || string(e[0].GetName()) != "g" || string(e[1].GetName()) != "sub" {
		t.Errorf("Audit(d) = %v, want g, sub", e)
	}
	if syscall.Errno(dirs[2].GetErrno()) != syscall.ENOENT || syscall.Errno(dirs[3].GetErrno()) != syscall.ENOTDIR {
		t.Errorf("unknown gfid, a file: errnos %d, %d; want ENOENT, ENOTDIR", dirs[2].GetErrno(), dirs[3].GetErrno())
	}
	if after := state(t, fx.dir); !maps.Equal(after, before) {
		t.Errorf("Audit changed the replica:\nbefore %s\nafter  %s", before, after)
	}

	// Paging: one entry per answer, the rest after the last name.
	a := fx.svc.replica.(auditor)
	var got []string
	after := ""
	for range 5 {
		ds, err := a.Audit(t.Context(), []ops.AuditDirRequest{{GFID: gfid.Root, After: after}, {GFID: mustGFID(t, fx.D)}}, 1, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 1 {
			t.Fatalf("a call at its entry limit answered %d directories, want 1", len(ds))
		}
		for _, e := range ds[0].Entries {
			got = append(got, e.Name)
			after = e.Name
		}
		if !ds[0].More {
			break
		}
	}
	if strings.Join(got, ",") != "d,f" {
		t.Errorf("paged Audit(root) = %v, want d,f", got)
	}

	bad := []struct {
		name string
		req  *slavev1.AuditRequest
		msg  string
	}{
		{"no directory", &slavev1.AuditRequest{}, "between 1 and"},
		{"malformed gfid", &slavev1.AuditRequest{Dirs: []*slavev1.AuditDirRequest{{Gfid: "zzz"}}}, "gfid"},
		{"after with a slash", &slavev1.AuditRequest{Dirs: []*slavev1.AuditDirRequest{{Gfid: rootG, After: []byte("a/b")}}}, "after"},
		{"after dot-dot", &slavev1.AuditRequest{Dirs: []*slavev1.AuditDirRequest{{Gfid: rootG, After: []byte("..")}}}, "after"},
		{"after with NUL", &slavev1.AuditRequest{Dirs: []*slavev1.AuditDirRequest{{Gfid: rootG, After: []byte("a\x00")}}}, "after"},
		{"too many directories", &slavev1.AuditRequest{Dirs: make([]*slavev1.AuditDirRequest, fx.svc.maxBatch+1)}, "between 1 and"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := fx.client.Audit(t.Context(), tt.req)
			assertStatus(t, err, codes.InvalidArgument, tt.msg)
		})
	}
}

func mustGFID(t *testing.T, s string) gfid.GFID {
	t.Helper()
	g, err := gfid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return g
}
