package wire

import (
	"errors"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	slavev1 "github.com/georep/georep/gen/georep/slave/v1"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

var (
	g1 = gfid.MustParse("11111111-2222-4333-8444-555555555555")
	g2 = gfid.MustParse("aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee")
	t1 = time.Unix(1700000000, 123456789)
	t2 = time.Unix(1600000000, 0)
)

func TestOpAndType(t *testing.T) {
	for o := ops.OpCreate; o <= ops.OpRmdir; o++ {
		p := OpToProto(o)
		if p.String() != "ENTRY_OP_"+o.String() {
			t.Errorf("OpToProto(%v) = %v", o, p)
		}
		if back, ok := OpFromProto(p); !ok || back != o {
			t.Errorf("OpFromProto(%v) = %v, %v; want %v", p, back, ok, o)
		}
	}
	if _, ok := OpFromProto(slavev1.EntryOp_ENTRY_OP_UNSPECIFIED); ok {
		t.Error("OpFromProto(UNSPECIFIED) ok")
	}
	if _, ok := OpFromProto(99); ok {
		t.Error("OpFromProto(99) ok")
	}
	names := map[ops.FileType]string{
		ops.TypeRegular: "REGULAR", ops.TypeDir: "DIRECTORY", ops.TypeSymlink: "SYMLINK", ops.TypeFifo: "FIFO",
		ops.TypeChar: "CHAR", ops.TypeBlock: "BLOCK", ops.TypeSocket: "SOCKET", 0: "UNSPECIFIED",
	}
	for ft, name := range names {
		p := TypeToProto(ft)
		if p.String() != "FILE_TYPE_"+name {
			t.Errorf("TypeToProto(%v) = %v, want FILE_TYPE_%s", ft, p, name)
		}
		if back := TypeFromProto(p); back != ft {
			t.Errorf("TypeFromProto(%v) = %v, want %v", p, back, ft)
		}
	}
}

func TestTime(t *testing.T) {
	for _, tt := range []time.Time{t1, t2, time.Unix(0, 1)} {
		if back := TimeFromProto(TimeToProto(tt)); !back.Equal(tt) {
			t.Errorf("time %v came back %v", tt, back)
		}
	}
	if !TimeFromProto(nil).IsZero() {
		t.Error("TimeFromProto(nil) is not the zero time")
	}
}

func TestEntryRoundTrip(t *testing.T) {
	tests := []ops.Entry{
		{Op: ops.OpCreate, GFID: g1, Parent: gfid.Root, Name: "file", Mode: 0o100644, UID: 1000, GID: 1001},
		{Op: ops.OpMkdir, GFID: g1, Parent: g2, Name: "dir \xff", Mode: 0o40755},
		{Op: ops.OpMknod, GFID: g1, Parent: g2, Name: "null", Mode: 0o20666, Rdev: 0x103},
		{Op: ops.OpLink, GFID: g1, Parent: g2, Name: "second"},
		{Op: ops.OpSymlink, GFID: g1, Parent: g2, Name: "ln", Mode: 0o120777, Target: "../../etc/passwd"},
		{Op: ops.OpRename, GFID: g1, Parent: g2, Name: "old", NewParent: gfid.Park, NewName: "new"},
		{Op: ops.OpUnlink, GFID: g1, Parent: g2, Name: "gone"},
		{Op: ops.OpRmdir, GFID: g1, Parent: g2, Name: "gone"},
	}
	for _, e := range tests {
		pe := EntryToProto(e)
		back, err := EntryFromProto(pe)
		if err != nil {
			t.Fatalf("%v: EntryFromProto: %v", e.Op, err)
		}
		if !reflect.DeepEqual(back, e) {
			t.Errorf("%v: round trip\n got %+v\nwant %+v", e.Op, back, e)
		}
		if !proto.Equal(EntryToProto(back), pe) {
			t.Errorf("%v: proto round trip differs", e.Op)
		}
	}
	// Only a RENAME carries a destination.
	pe := EntryToProto(ops.Entry{Op: ops.OpCreate, GFID: g1, Parent: g2, Name: "x", NewParent: g2, NewName: "y"})
	if pe.GetNewPargfid() != "" || pe.GetNewName() != nil {
		t.Errorf("CREATE carries a destination: %v", pe)
	}
	if es := EntriesToProto(tests); len(es) != len(tests) || es[5].GetOp() != slavev1.EntryOp_ENTRY_OP_RENAME {
		t.Errorf("EntriesToProto: %v", es)
	}
}

func TestEntryFromProtoRefused(t *testing.T) {
	tests := []struct {
		pe   *slavev1.Entry
		want string
	}{
		{&slavev1.Entry{Gfid: g1.String(), Pargfid: g2.String()}, "unknown entry op"},
		{&slavev1.Entry{Op: 42, Gfid: g1.String(), Pargfid: g2.String()}, "unknown entry op"},
		{&slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_CREATE, Gfid: "nope", Pargfid: g2.String()}, "CREATE: gfid:"},
		{&slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_MKDIR, Gfid: g1.String(), Pargfid: ""}, "MKDIR " + g1.String() + ": pargfid:"},
		{&slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_RENAME, Gfid: g1.String(), Pargfid: g2.String(), NewPargfid: "x"}, "RENAME " + g1.String() + ": new pargfid:"},
	}
	for _, tt := range tests {
		if _, err := EntryFromProto(tt.pe); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("EntryFromProto(%v) = %v, want an error containing %q", tt.pe, err, tt.want)
		}
	}
}

func TestMetaRoundTrip(t *testing.T) {
	at, mt := t2, t1
	tests := []ops.Meta{
		{GFID: g1},
		{GFID: g1, SetMode: true, Mode: 0o4755},
		{GFID: g1, SetOwner: true, UID: 7, GID: 8, Atime: &at, Mtime: &mt},
		{GFID: g1, Mtime: &mt},
		{GFID: g1, SetXattrs: true, Xattrs: map[string][]byte{}},
		{GFID: g1, SetXattrs: true, Xattrs: map[string][]byte{"user.b": []byte("2"), "user.a": {0, 1}, "user.empty": {}}},
	}
	for i, m := range tests {
		pm := MetaToProto(m)
		back, err := MetaFromProto(pm)
		if err != nil {
			t.Fatalf("%d: MetaFromProto: %v", i, err)
		}
		if !metaEqual(back, m) {
			t.Errorf("%d: round trip\n got %+v\nwant %+v", i, back, m)
		}
		if !proto.Equal(MetaToProto(back), pm) {
			t.Errorf("%d: proto round trip differs", i)
		}
	}
	// Xattrs go sorted by name, and only with SetXattrs.
	pm := MetaToProto(tests[5])
	var names []string
	for _, x := range pm.GetXattrs() {
		names = append(names, x.GetName())
	}
	if strings.Join(names, ",") != "user.a,user.b,user.empty" {
		t.Errorf("xattrs in order %v", names)
	}
	if pm := MetaToProto(ops.Meta{GFID: g1, Xattrs: map[string][]byte{"user.a": nil}}); len(pm.GetXattrs()) != 0 {
		t.Errorf("xattrs sent without SetXattrs: %v", pm)
	}
	if m, _ := MetaFromProto(&slavev1.Meta{Gfid: g1.String(), Xattrs: []*slavev1.Xattr{{Name: "user.a"}}}); m.Xattrs != nil {
		t.Errorf("xattrs read without SetXattrs: %v", m.Xattrs)
	}
	if _, err := MetaFromProto(&slavev1.Meta{Gfid: "x"}); err == nil || !strings.HasPrefix(err.Error(), "meta: gfid:") {
		t.Errorf("MetaFromProto of a bad gfid = %v", err)
	}
	if ms := MetasToProto(tests); len(ms) != len(tests) {
		t.Errorf("MetasToProto: %d", len(ms))
	}
}

func metaEqual(a, b ops.Meta) bool {
	timeEq := func(x, y *time.Time) bool { return x == nil && y == nil || x != nil && y != nil && x.Equal(*y) }
	if !timeEq(a.Atime, b.Atime) || !timeEq(a.Mtime, b.Mtime) || len(a.Xattrs) != len(b.Xattrs) || (a.Xattrs == nil) != (b.Xattrs == nil) {
		return false
	}
	for k, v := range a.Xattrs {
		if w, ok := b.Xattrs[k]; !ok || string(v) != string(w) {
			return false
		}
	}
	a.Atime, a.Mtime, a.Xattrs, b.Atime, b.Mtime, b.Xattrs = nil, nil, nil, nil, nil, nil
	return reflect.DeepEqual(a, b)
}

func TestFileDataRoundTrip(t *testing.T) {
	f := ops.FileData{GFID: g1, Data: []byte("content\x00"), Mode: 0o640, UID: 5, GID: 6, Mtime: t1}
	pf := FileDataToProto(f)
	back, err := FileDataFromProto(pf)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Mtime.Equal(f.Mtime) || string(back.Data) != string(f.Data) || back.GFID != f.GFID || back.Mode != f.Mode || back.UID != f.UID || back.GID != f.GID {
		t.Errorf("round trip\n got %+v\nwant %+v", back, f)
	}
	if !proto.Equal(FileDataToProto(back), pf) {
		t.Error("proto round trip differs")
	}
	if back, _ := FileDataFromProto(&slavev1.FileData{Gfid: g1.String()}); !back.Mtime.IsZero() {
		t.Errorf("no mtime came back as %v", back.Mtime)
	}
	if _, err := FileDataFromProto(&slavev1.FileData{Gfid: "x"}); err == nil || !strings.HasPrefix(err.Error(), "write: gfid:") {
		t.Errorf("FileDataFromProto of a bad gfid = %v", err)
	}
	if fs := FilesToProto([]ops.FileData{f, f}); len(fs) != 2 || fs[1].GetGfid() != g1.String() {
		t.Errorf("FilesToProto: %v", fs)
	}
}

func TestFailureRoundTrip(t *testing.T) {
	tests := []ops.Failure{
		{Index: 0, Errno: syscall.ENOENT, Message: "CREATE g at p/\"x\": parent missing"},
		{Index: 7, Errno: syscall.EEXIST, Message: "name exists", Existing: g2},
		{Index: 3, Errno: syscall.EEXIST, Message: "name holds an inode without a gfid"},
		{Index: 1, Errno: syscall.ESTALE},
	}
	for _, f := range tests {
		pf := FailureToProto(f)
		back, err := FailureFromProto(pf)
		if err != nil {
			t.Fatal(err)
		}
		if back != f {
			t.Errorf("round trip\n got %+v\nwant %+v", back, f)
		}
		if !proto.Equal(FailureToProto(back), pf) {
			t.Errorf("%+v: proto round trip differs", f)
		}
	}
	if pf := FailureToProto(tests[2]); pf.GetExistingGfid() != "" {
		t.Errorf("zero existing gfid sent as %q", pf.GetExistingGfid())
	}
	back, err := FailuresFromProto(FailuresToProto(tests))
	if err != nil || !reflect.DeepEqual(back, tests) {
		t.Errorf("FailuresFromProto(FailuresToProto) = %+v, %v", back, err)
	}
	if back, err := FailuresFromProto(nil); back != nil || err != nil {
		t.Errorf("FailuresFromProto(nil) = %v, %v", back, err)
	}
	if _, err := FailuresFromProto([]*slavev1.EntryFailure{{Index: 2, ExistingGfid: "x"}}); err == nil {
		t.Error("a bad existing gfid is accepted")
	}
}

func TestAttrAndStatRoundTrip(t *testing.T) {
	tests := []ops.Attr{
		{Type: ops.TypeRegular, Mode: 0o100644, UID: 1, GID: 2, Size: 1 << 40, Mtime: t1, Nlink: 3},
		{Type: ops.TypeDir, Mode: 0o40755, Mtime: t2, Nlink: 2},
		{Type: ops.TypeSymlink, Mode: 0o120777, Mtime: t1, Nlink: 1, Target: "/abs/target"},
		{Type: ops.TypeBlock, Mode: 0o60660, Mtime: t1, Nlink: 1, Rdev: 0x7c8},
	}
	for _, a := range tests {
		pa := AttrToProto(a)
		back := AttrFromProto(pa)
		if !back.Mtime.Equal(a.Mtime) {
			t.Errorf("mtime %v came back %v", a.Mtime, back.Mtime)
		}
		back.Mtime = a.Mtime
		if back != a {
			t.Errorf("round trip\n got %+v\nwant %+v", back, a)
		}
		if !proto.Equal(AttrToProto(back), pa) {
			t.Errorf("%+v: proto round trip differs", a)
		}
		r := StatResultToProto(g1.String(), a, nil)
		if r.GetGfid() != g1.String() || r.GetErrno() != 0 {
			t.Errorf("StatResultToProto: %v", r)
		}
		if got, err := StatResultFromProto(r); err != nil || got.Size != a.Size || got.Type != a.Type {
			t.Errorf("StatResultFromProto = %+v, %v", got, err)
		}
	}
	for _, tt := range []struct {
		err   error
		errno syscall.Errno
	}{
		{syscall.ENOENT, ops.ErrNotFound},
		{&staleError{errnoError{syscall.ESTALE, "stale"}}, ops.ErrStale},
		{errors.New("boom"), syscall.EIO},
	} {
		r := StatResultToProto("g", ops.Attr{Type: ops.TypeDir}, tt.err)
		if r.GetErrno() != int32(tt.errno) || r.GetAttr() != nil {
			t.Errorf("StatResultToProto(%v) = %v, want errno %d", tt.err, r, tt.errno)
		}
		_, err := StatResultFromProto(r)
		var errno syscall.Errno
		if !errors.As(err, &errno) || errno != tt.errno || !errors.Is(err, tt.errno) {
			t.Errorf("StatResultFromProto(%v) = %v, want errno %v", r, err, tt.errno)
		}
	}
}

func TestDirEntryRoundTrip(t *testing.T) {
	tests := []ops.DirEntry{
		{Name: "file", GFID: g1, Type: ops.TypeRegular},
		{Name: "foreign \xfe", Type: ops.TypeFifo}, // no gfid: not created by georep
		{Name: "sub", GFID: g2, Type: ops.TypeDir},
	}
	pds := DirEntriesToProto(tests)
	if pds[1].GetGfid() != "" {
		t.Errorf("zero gfid sent as %q", pds[1].GetGfid())
	}
	back, err := DirEntriesFromProto(pds)
	if err != nil || !reflect.DeepEqual(back, tests) {
		t.Errorf("DirEntriesFromProto(DirEntriesToProto) = %+v, %v", back, err)
	}
	for i, d := range back {
		if !proto.Equal(DirEntryToProto(d), pds[i]) {
			t.Errorf("%+v: proto round trip differs", d)
		}
	}
	if _, err := DirEntriesFromProto([]*slavev1.DirEntry{{Name: []byte("x"), Gfid: "bad"}}); err == nil {
		t.Error("a bad gfid is accepted")
	}
}
