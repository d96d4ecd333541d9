package changelog

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/georep/georep/rpc/gfid"
)

func TestParseGsyncdFixture(t *testing.T) {
	for _, p := range []string{
		"testdata/CHANGELOG.1795570736.gsyncd-parsed",
		"/work/shared/fixtures/gluster-changelogs/georep-live/CHANGELOG.1795570736.gsyncd-parsed",
	} {
		t.Run(filepath.Base(filepath.Dir(p)), func(t *testing.T) {
			b, err := os.ReadFile(p)
			if errors.Is(err, os.ErrNotExist) && strings.HasPrefix(p, "/") {
				t.Skip("shared fixture not present")
			}
			if err != nil {
				t.Fatal(err)
			}
			recs, err := Parse(bytes.NewReader(b), p)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := len(recs), strings.Count(string(b), "\n"); got != want {
				t.Fatalf("parsed %d records, file has %d lines", got, want)
			}
			fx := gfid.MustParse("e7c49443-b45e-4f4b-afe0-b2af7f2931e4")
			d1 := gfid.MustParse("0c9eefb4-a83c-42b6-a629-7be92192d74e")
			f1 := gfid.MustParse("b4902c63-99f8-4af4-9a55-cb4ef4fcaefe")
			checks := map[int]Record{
				0:  {Kind: Entry, GFID: d1, Fop: Mkdir, Mode: 0o40755, Parent: fx, Name: "d1"},
				2:  {Kind: Data, GFID: f1},
				6:  {Kind: Entry, GFID: f1, Fop: Rename, Parent: d1, Name: "f1.txt", NewParent: d1, NewName: "f1-renamed.txt"},
				10: {Kind: Meta, GFID: f1, Fop: Setattr},
				17: {Kind: Entry, GFID: gfid.MustParse("b673d896-d5a3-4707-af5e-ddbc8e4dd880"), Fop: Mknod, Mode: 0o10644, Parent: fx, Name: "fifo1"},
				18: {Kind: Entry, GFID: gfid.MustParse("22659411-24dc-4538-adc6-15592627620d"), Fop: Unlink, Parent: fx, Name: "sym1"},
			}
			for i, want := range checks {
				if recs[i] != want {
					t.Errorf("record %d = %+v, want %+v", i, recs[i], want)
				}
			}
			// What we parse, we write back in the same form (these names need no escaping).
			var buf bytes.Buffer
			if err := Write(&buf, recs); err != nil {
				t.Fatal(err)
			}
			if want := Header + "\n" + string(b); buf.String() != want {
				t.Fatalf("rewrite differs:\n%s\nwant\n%s", buf.String(), want)
			}
		})
	}
}

func TestEscape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain.txt", "plain.txt"},
		{"a b", "a%20b"},
		{"100%", "100%25"},
		{"new\nline", "new%0Aline"},
		{"\xff\xfe", "%FF%FE"},
		{"tab\tdel\x7f", "tab%09del%7F"},
		{"ünï", "%C3%BCn%C3%AF"},
		{"~!#$&'()*+,-.:;<=>?@[\\]^_`{|}\"", "~!#$&'()*+,-.:;<=>?@[\\]^_`{|}\""},
	}
	for _, tt := range tests {
		if got := Escape(tt.in); got != tt.want {
			t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := Unescape(tt.want); got != tt.in {
			t.Errorf("Unescape(%q) = %q, want %q", tt.want, got, tt.in)
		}
	}
	// gsyncd's unencoded names: a '%' not followed by two hex digits stays.
	for in, want := range map[string]string{"50%off": "50%off", "a%2": "a%2", "%": "%", "%zz": "%zz", "%41%": "A%"} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

const (
	g1 = "da044da0-6c0d-4735-a3f9-15b7b6732a82"
	p1 = "00000000-0000-0000-0000-000000000001"
)

func TestParseMalformed(t *testing.T) {
	tests := []struct{ name, line string }{
		{"unknown kind", "X " + g1},
		{"long kind", "EE " + g1 + " UNLINK " + p1 + "/a"},
		{"lower kind", "e " + g1 + " UNLINK " + p1 + "/a"},
		{"no gfid", "D"},
		{"bad gfid", "D " + g1[:35] + "x"},
		{"zero gfid", "D 00000000-0000-0000-0000-000000000000"},
		{"D extra field", "D " + g1 + " SETATTR"},
		{"D trailing space", "D " + g1 + " "},
		{"M without fop", "M " + g1},
		{"M entry fop", "M " + g1 + " RENAME"},
		{"M lower fop", "M " + g1 + " setattr"},
		{"M extra", "M " + g1 + " SETATTR x"},
		{"E without fop", "E " + g1},
		{"E unknown fop", "E " + g1 + " FROB " + p1 + "/a"},
		{"E meta fop", "E " + g1 + " SETATTR " + p1 + "/a"},
		{"CREATE 2 args", "E " + g1 + " CREATE 33188 " + p1 + "/a"},
		{"CREATE bad mode", "E " + g1 + " CREATE 0x81a4 0 0 " + p1 + "/a"},
		{"CREATE negative uid", "E " + g1 + " CREATE 33188 -1 0 " + p1 + "/a"},
		{"CREATE huge gid", "E " + g1 + " CREATE 33188 0 4294967296 " + p1 + "/a"},
		{"MKDIR no path", "E " + g1 + " MKDIR 16877 0 0"},
		{"LINK no path", "E " + g1 + " LINK"},
		{"LINK two paths", "E " + g1 + " LINK " + p1 + "/a " + p1 + "/b"},
		{"RENAME one path", "E " + g1 + " RENAME " + p1 + "/a"},
		{"RENAME three paths", "E " + g1 + " RENAME " + p1 + "/a " + p1 + "/b " + p1 + "/c"},
		{"UNLINK three paths", "E " + g1 + " UNLINK " + p1 + "/a x y"},
		{"path without slash", "E " + g1 + " UNLINK " + p1 + "a"},
		{"path empty name", "E " + g1 + " UNLINK " + p1 + "/"},
		{"path bad parent", "E " + g1 + " UNLINK zzzzzzzz-0000-0000-0000-000000000001/a"},
		{"path short", "E " + g1 + " UNLINK a/b"},
		{"name dot", "E " + g1 + " UNLINK " + p1 + "/."},
		{"name dotdot", "E " + g1 + " RMDIR " + p1 + "/.."},
		{"name encoded dotdot", "E " + g1 + " RMDIR " + p1 + "/%2E%2E"},
		{"name with slash", "E " + g1 + " UNLINK " + p1 + "/a/b"},
		{"name encoded slash", "E " + g1 + " UNLINK " + p1 + "/a%2Fb"},
		{"name encoded NUL", "E " + g1 + " UNLINK " + p1 + "/a%00b"},
		{"name too long", "E " + g1 + " UNLINK " + p1 + "/" + strings.Repeat("x", 256)},
		{"double space", "E " + g1 + "  UNLINK " + p1 + "/a"},
		{"leading space", " D " + g1},
		{"bad header version", "GEOREP-CHANGELOG v2"},
		{"glusterfs raw header", "GlusterFS Changelog | version: v1.2 | encoding : 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := "D " + g1 + "\n" + tt.line + "\nD " + g1 + "\n"
			if strings.HasPrefix(tt.line, "G") {
				in = tt.line + "\n"
			}
			recs, err := Parse(strings.NewReader(in), "CHANGELOG.test")
			if err == nil {
				t.Fatalf("Parse accepted %q: %+v", tt.line, recs)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.File != "CHANGELOG.test" {
				t.Fatalf("error %v is not a *ParseError naming the file", err)
			}
			wantLine := 2
			if strings.HasPrefix(tt.line, "G") {
				wantLine = 1
			}
			if pe.Line != wantLine || !strings.HasPrefix(err.Error(), "CHANGELOG.test:") {
				t.Fatalf("error %q: line %d, want %d", err, pe.Line, wantLine)
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name, line string
		want       Record
	}{
		{"xsync MKDIR without stat", "E " + g1 + " MKDIR " + p1 + "/d", Record{Kind: Entry, GFID: gfid.MustParse(g1), Fop: Mkdir, Parent: gfid.Root, Name: "d"}},
		{"UNLINK with del path", "E " + g1 + " UNLINK " + p1 + "/a d/a", Record{Kind: Entry, GFID: gfid.MustParse(g1), Fop: Unlink, Parent: gfid.Root, Name: "a"}},
		{"unencoded percent", "E " + g1 + " LINK " + p1 + "/50%off", Record{Kind: Entry, GFID: gfid.MustParse(g1), Fop: Link, Parent: gfid.Root, Name: "50%off"}},
		{"upper case gfid", "D " + strings.ToUpper(g1), Record{Kind: Data, GFID: gfid.MustParse(g1)}},
		{"other meta fop", "M " + g1 + " FSETATTR", Record{Kind: Meta, GFID: gfid.MustParse(g1), Fop: "FSETATTR"}},
		{"255-byte name", "E " + g1 + " SYMLINK " + p1 + "/" + strings.Repeat("%FF", 255), Record{Kind: Entry, GFID: gfid.MustParse(g1), Fop: Symlink, Parent: gfid.Root, Name: strings.Repeat("\xff", 255)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := Parse(strings.NewReader(Header+"\n\n"+tt.line+"\n"), "x")
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 1 || recs[0] != tt.want {
				t.Fatalf("got %+v, want %+v", recs, tt.want)
			}
		})
	}
	// Without a trailing newline, and empty input.
	if recs, err := Parse(strings.NewReader("D "+g1), "x"); err != nil || len(recs) != 1 {
		t.Fatalf("no trailing newline: %v %v", recs, err)
	}
	if recs, err := Parse(strings.NewReader(""), "x"); err != nil || len(recs) != 0 {
		t.Fatalf("empty: %v %v", recs, err)
	}
}

func randName(r *rand.Rand) string {
	n := 1 + r.IntN(12)
	if r.IntN(20) == 0 {
		n = MaxName
	}
	b := make([]byte, n)
	for i := range b {
		switch r.IntN(4) {
		case 0:
			b[i] = byte(r.IntN(256))
		default:
			b[i] = "ab %/\n.\xff%Z9"[r.IntN(11)]
		}
		if b[i] == '/' || b[i] == 0 {
			b[i] = '_'
		}
	}
	if s := string(b); s != "." && s != ".." {
		return s
	}
	return "dot"
}

func randRecord(r *rand.Rand) Record {
	rec := Record{GFID: gfid.New()}
	switch r.IntN(4) {
	case 0:
		rec.Kind = Data
		return rec
	case 1:
		rec.Kind = Meta
		rec.Fop = []Fop{Setattr, Setxattr, "REMOVEXATTR"}[r.IntN(3)]
		return rec
	}
	rec.Kind = Entry
	rec.Fop = []Fop{Create, Mkdir, Mknod, Link, Symlink, Rename, Unlink, Rmdir}[r.IntN(8)]
	rec.Parent, rec.Name = gfid.New(), randName(r)
	if rec.Fop.hasStat() {
		rec.Mode, rec.UID, rec.GID = r.Uint32(), r.Uint32(), r.Uint32()
	}
	if rec.Fop == Rename {
		rec.NewParent, rec.NewName = gfid.Park, randName(r)
	}
	return rec
}

func TestRoundTrip(t *testing.T) {
	seed := rand.Uint64()
	r := rand.New(rand.NewPCG(seed, 0))
	for iter := 0; iter < 300; iter++ {
		recs := make([]Record, r.IntN(30))
		for i := range recs {
			recs[i] = randRecord(r)
		}
		var buf bytes.Buffer
		if err := Write(&buf, recs); err != nil {
			t.Fatalf("seed %d: Write: %v", seed, err)
		}
		if n := strings.Count(buf.String(), "\n"); n != len(recs)+1 {
			t.Fatalf("seed %d: %d lines for %d records", seed, n, len(recs))
		}
		got, err := Parse(&buf, "roundtrip")
		if err != nil {
			t.Fatalf("seed %d: Parse: %v", seed, err)
		}
		if len(recs) == 0 && len(got) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, recs) {
			t.Fatalf("seed %d: round trip differs\n got %+v\nwant %+v", seed, got, recs)
		}
	}
}

func TestWriteRejectsInvalid(t *testing.T) {
	good := Record{Kind: Entry, GFID: gfid.New(), Fop: Unlink, Parent: gfid.Root, Name: "a"}
	bad := []Record{
		{Kind: Data},
		{Kind: Data, GFID: gfid.New(), Fop: Setattr},
		{Kind: Meta, GFID: gfid.New()},
		{Kind: Meta, GFID: gfid.New(), Fop: "a b"},
		{Kind: Entry, GFID: gfid.New(), Fop: "FROB", Parent: gfid.Root, Name: "a"},
		{Kind: Entry, GFID: gfid.New(), Fop: Create, Name: "a"},
		{Kind: Entry, GFID: gfid.New(), Fop: Create, Parent: gfid.Root, Name: "a/b"},
		{Kind: Entry, GFID: gfid.New(), Fop: Rename, Parent: gfid.Root, Name: "a", NewName: "b"},
		{Kind: Entry, GFID: gfid.New(), Fop: Rename, Parent: gfid.Root, Name: "a", NewParent: gfid.Root, NewName: ".."},
		{Kind: 'X', GFID: gfid.New()},
	}
	for _, b := range bad {
		var buf bytes.Buffer
		if err := Write(&buf, []Record{good, b}); !errors.Is(err, ErrInvalid) {
			t.Errorf("Write(%+v) = %v, want ErrInvalid", b, err)
		}
		if buf.Len() != 0 {
			t.Errorf("Write(%+v) wrote %q before failing", b, buf.String())
		}
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	recs := []Record{
		{Kind: Entry, GFID: gfid.New(), Fop: Mkdir, Mode: 0o40755, Parent: gfid.Root, Name: "d ir\n"},
		{Kind: Data, GFID: gfid.New()},
	}
	seen := map[string]bool{}
	for range 3 {
		p, err := WriteFile(dir, "XSYNC-CHANGELOG", recs)
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] || !strings.HasPrefix(filepath.Base(p), "XSYNC-CHANGELOG.") || filepath.Dir(p) != dir {
			t.Fatalf("bad or repeated path %q", p)
		}
		seen[p] = true
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Parse(f, p)
		f.Close()
		if err != nil || !reflect.DeepEqual(got, recs) {
			t.Fatalf("read back %+v, %v", got, err)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 3 {
		t.Fatalf("dir holds %d files, want 3 (temporary files left?)", len(ents))
	}
	if _, err := WriteFile(filepath.Join(dir, "missing"), "X", recs); err == nil {
		t.Fatal("WriteFile into a missing dir succeeded")
	}
	if _, err := WriteFile(dir, "X", []Record{{Kind: Data}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("WriteFile with invalid record: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 3 {
		t.Fatalf("failed WriteFile left files behind: %d", len(ents))
	}
}

func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("testdata/CHANGELOG.1795570736.gsyncd-parsed"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		recs, err := Parse(bytes.NewReader(in), "fuzz")
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line < 1 {
				t.Fatalf("error without location: %v", err)
			}
			return
		}
		// Everything accepted is valid and survives a round trip.
		var buf bytes.Buffer
		if err := Write(&buf, recs); err != nil {
			t.Fatalf("parsed records do not write: %v", err)
		}
		again, err := Parse(&buf, "rewrite")
		if err != nil {
			t.Fatalf("rewritten changelog does not parse: %v", err)
		}
		if len(recs) != len(again) || (len(recs) > 0 && !reflect.DeepEqual(recs, again)) {
			t.Fatalf("round trip differs:\n%+v\n%+v", recs, again)
		}
	})
}
