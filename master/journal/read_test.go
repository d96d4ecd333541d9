package journal

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const testGen = 1700000000000000000

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path, data string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
}

func hdr(gen, seq int64) string { return header(gen, seq, 42) + "\n" }

func TestRecordRoundTrip(t *testing.T) {
	recs := []Record{
		{Kind: Entry, Dir: Handle{1, []byte{0xc4, 0x85, 0xa0, 0, 0x0d}}, Name: "f"},
		{Kind: Data, Dir: Handle{-3, []byte{1}}, Name: "with space%\n\x7f\xff"},
		{Kind: Meta, Dir: Handle{255, bytes.Repeat([]byte{0xab}, maxHandleBytes)}, Name: ""},
		{Kind: Entry, Dir: Handle{1, []byte{2}}, Name: "..."},
		{Kind: Entry, Dir: Handle{1, []byte{2}}, Name: strings.Repeat("\x01", 255)},
		{Kind: Overflow},
	}
	for _, r := range recs {
		line := appendRecord(nil, r)
		if len(line) > maxLine {
			t.Errorf("%q: %d bytes, more than maxLine %d", line, len(line), maxLine)
		}
		got, err := parseRecord(string(line[:len(line)-1]))
		if err != nil {
			t.Errorf("parseRecord(%q): %v", line, err)
			continue
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("parseRecord(%q) = %+v, want %+v", line, got, r)
		}
	}
	if got := (Handle{1, []byte{0xc4, 0x85}}).String(); got != "1:c485" {
		t.Errorf("Handle.String = %q", got)
	}
}

func TestReadPartialLinesAndRollover(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, indexName(testGen)), "")
	j1 := filepath.Join(dir, journalName(testGen, 1))
	j2 := filepath.Join(dir, journalName(testGen, 2))

	// Nothing written yet: no records, no error.
	recs, cur, err := Read(dir, Cursor{Gen: testGen}, 10)
	if err != nil || len(recs) != 0 || cur != (Cursor{testGen, 1, 0}) {
		t.Fatalf("empty generation: %v %v %v", recs, cur, err)
	}
	// A header being written.
	writeFile(t, j1, "GEOREP-JOURNAL v1 gen")
	if recs, cur, err = Read(dir, cur, 10); err != nil || len(recs) != 0 || cur.Off != 0 {
		t.Fatalf("partial header: %v %v %v", recs, cur, err)
	}
	writeFile(t, j1, hdr(testGen, 1)+"E 1:aa a\nD 1:aa b\nM 1:aa c")
	recs, cur, err = Read(dir, cur, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(recs); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("records %v, want a b (the partial line left)", got)
	}
	if want := int64(len(hdr(testGen, 1)) + 18); cur != (Cursor{testGen, 1, want}) {
		t.Fatalf("cursor %+v, want off %d", cur, want)
	}
	// The line is completed, the file rolled over and the next one written.
	appendFile(t, j1, "\nE 1:aa d\n")
	writeFile(t, j2, hdr(testGen, 2)+"E 1:bb e\nE 1:bb f\n")
	recs, cur2, err := Read(dir, cur, 10)
	if err != nil || !slices.Equal(names(recs), []string{"c", "d"}) || cur2.Seq != 1 {
		t.Fatalf("before the index lists seq 1: %v %+v %v", names(recs), cur2, err)
	}
	appendFile(t, filepath.Join(dir, indexName(testGen)), "1 1 2 4\n")
	// One record at a time crosses the file boundary.
	var all []string
	c := cur
	for range 10 {
		recs, c, err = Read(dir, c, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		all = append(all, names(recs)...)
	}
	if !slices.Equal(all, []string{"c", "d", "e", "f"}) {
		t.Fatalf("records %v, want c d e f", all)
	}
	if c.Seq != 2 {
		t.Fatalf("cursor %+v, want seq 2", c)
	}
	// Closed and ended: the cursor moves past the last file and stays.
	appendFile(t, filepath.Join(dir, indexName(testGen)), "2 2 3 2\nend 4\n")
	recs, c, err = Read(dir, c, 0)
	if err != nil || len(recs) != 0 || c != (Cursor{testGen, 3, 0}) {
		t.Fatalf("after end: %v %+v %v", recs, c, err)
	}
	if recs, c2, err := Read(dir, c, 0); err != nil || len(recs) != 0 || c2 != c {
		t.Fatalf("again after end: %v %+v %v", recs, c2, err)
	}
	// Unlimited read from the start.
	recs, _, err = Read(dir, Cursor{Gen: testGen}, 0)
	if err != nil || !slices.Equal(names(recs), []string{"a", "b", "c", "d", "e", "f"}) {
		t.Fatalf("whole generation: %v %v", names(recs), err)
	}
}

func names(recs []Record) []string {
	var s []string
	for _, r := range recs {
		s = append(s, r.Name)
	}
	return s
}

func TestReadErrors(t *testing.T) {
	h := hdr(testGen, 1)
	tests := []struct {
		name    string
		journal string // JOURNAL.<testGen>.1; none if empty
		index   string
		cur     Cursor
		off     int64 // of the error, -1 when the error is no *FormatError
		wantErr error
	}{
		{"bad kind", h + "E 1:aa a\nX 1:aa b\n", "", Cursor{}, int64(len(h)) + 9, ErrMalformed},
		{"two fields", h + "E 1:aa\n", "", Cursor{}, int64(len(h)), ErrMalformed},
		{"four fields", h + "E 1:aa a b\n", "", Cursor{}, int64(len(h)), ErrMalformed},
		{"empty line", h + "\n", "", Cursor{}, int64(len(h)), ErrMalformed},
		{"handle without type", h + "E aa a\n", "", Cursor{}, int64(len(h)), ErrMalformed},
		{"handle odd hex", h + "E 1:a a\n", "", Cursor{}, int64(len(h)), ErrMalformed},
		{"handle upper hex", h + "E 1:AA a\n", "", Cursor{}, int64(len(h)), ErrMalformed},
		{"handle empty", h + "E 1: a\n", "", Cursor{}, int64(len(h)), ErrMalformed},
		{"handle too long", h + "E 1:" + strings.Repeat("ab", 129) + " a\n", "", Cursor{}, int64(len(h)), ErrMalformed},
		{"handle type +1", h + "E +1:aa a\n", "", Cursor{}, int64(len(h)), ErrMalformed},
		{"handle type overflow", h + "E 4294967296:aa a\n", "", Cursor{}, int64(len(h)), ErrMalformed},
		{"name with slash escape", h + "E 1:aa a%2Fb\n", "", Cursor{}, int64(len(h)), ErrMalformed},
		{"name not escaped", h + "E 1:aa a%zz\n", "", Cursor{}, int64(len(h)), ErrMalformed},
		{"name lower-case escape", h + "E 1:aa a%0a\n", "", Cursor{}, int64(len(h)), ErrMalformed},
		{"name escaped dot", h + "E 1:aa %2E\n", "", Cursor{}, int64(len(h)), ErrMalformed},
		{"name dotdot", h + "E 1:aa ..\n", "", Cursor{}, int64(len(h)), ErrMalformed},
		{"name NUL", h + "E 1:aa a%00\n", "", Cursor{}, int64(len(h)), ErrMalformed},
		{"overflow with handle", h + "O 1:aa .\n", "", Cursor{}, int64(len(h)), ErrMalformed},
		{"entry without handle", h + "E - a\n", "", Cursor{}, int64(len(h)), ErrMalformed},
		{"line too long", h + "E 1:aa " + strings.Repeat("a", maxLine) + "\n", "", Cursor{}, int64(len(h)), ErrMalformed},
		{"partial line too long", h + "E 1:aa " + strings.Repeat("a", maxLine), "", Cursor{}, int64(len(h)), ErrMalformed},
		{"no header", "E 1:aa a\n", "", Cursor{}, 0, ErrMalformed},
		{"header of another seq", hdr(testGen, 2), "", Cursor{}, 0, ErrMalformed},
		{"header of another gen", hdr(testGen+1, 1), "", Cursor{}, 0, ErrMalformed},
		{"header too long", strings.Repeat("G", 200), "", Cursor{}, 0, ErrMalformed},
		{"closed file ends inside a record", h + "E 1:aa a\nE 1:a", "1 1 2 1\n", Cursor{}, int64(len(h)) + 9, ErrMalformed},
		{"cursor past the end", h, "", Cursor{Seq: 1, Off: 1000}, 1000, ErrMalformed},
		{"index line malformed", h, "1 2 3\n", Cursor{}, 0, ErrMalformed},
		{"index seq gap", h, "2 1 2 0\n", Cursor{}, 0, ErrMalformed},
		{"index after end", h, "end 1\n1 1 2 0\n", Cursor{}, 6, ErrMalformed},
		{"index negative", h, "1 -1 2 0\n", Cursor{}, 0, ErrMalformed},
		{"closed file missing", "", "1 1 2 0\n", Cursor{}, -1, fs.ErrNotExist},
		{"no index", h, "-", Cursor{}, -1, fs.ErrNotExist},
		{"cursor mid-file missing", "", "", Cursor{Seq: 1, Off: 10}, -1, fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			jpath := filepath.Join(dir, journalName(testGen, 1))
			ipath := filepath.Join(dir, indexName(testGen))
			if tt.journal != "" {
				writeFile(t, jpath, tt.journal)
			}
			if tt.index != "-" {
				writeFile(t, ipath, tt.index)
			}
			cur := tt.cur
			cur.Gen = testGen
			_, _, err := Read(dir, cur, 0)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Read: %v, want %v", err, tt.wantErr)
			}
			if tt.off < 0 {
				return
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("Read: %v (%T), want a *FormatError", err, err)
			}
			if fe.Offset != tt.off || (fe.File != jpath && fe.File != ipath) {
				t.Errorf("error at %s byte %d, want byte %d", fe.File, fe.Offset, tt.off)
			}
			if !strings.Contains(err.Error(), filepath.Base(fe.File)) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestReadInvalidCursor(t *testing.T) {
	for _, cur := range []Cursor{{Gen: 0}, {Gen: -1}, {Gen: 1, Seq: 1, Off: -1}} {
		if _, _, err := Read(t.TempDir(), cur, 0); err == nil {
			t.Errorf("Read(%+v): no error", cur)
		}
	}
}

func TestPrune(t *testing.T) {
	dir := t.TempDir()
	files := []string{
		"HTIME.1", "JOURNAL.1.1", "JOURNAL.1.2",
		"HTIME.2", "JOURNAL.2.1", "JOURNAL.2.2", "JOURNAL.2.3",
		"HTIME.3", "JOURNAL.3.1",
		"JOURNAL.x.1", "JOURNAL.01.1", "HTIME.", "other",
	}
	for _, f := range files {
		writeFile(t, filepath.Join(dir, f), "")
	}
	if err := Prune(dir, Cursor{Gen: 2, Seq: 2, Off: 100}); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	want := []string{"HTIME.", "HTIME.2", "HTIME.3", "JOURNAL.01.1", "JOURNAL.2.2", "JOURNAL.2.3", "JOURNAL.3.1", "JOURNAL.x.1", "other"}
	if !slices.Equal(got, want) {
		t.Errorf("after Prune: %v, want %v", got, want)
	}
	if err := Prune(filepath.Join(dir, "missing"), Cursor{Gen: 2}); err == nil {
		t.Error("Prune of a missing dir: no error")
	}
}

// FuzzRead parses arbitrary bytes as journal file 1 of a generation, open
// or closed: no panic, and whatever parses writes back byte for byte.
func FuzzRead(f *testing.F) {
	f.Add([]byte(hdr(testGen, 1)+"E 1:c485a0000d0eae7a f\nD 1:c485a0000d0eae7a with%20space\nM 1:aa .\nO - .\n"), true)
	f.Add([]byte(hdr(testGen, 1)+"E 1:aa a\nE 1:a"), false)
	f.Fuzz(func(t *testing.T, data []byte, closed bool) {
		dir := t.TempDir()
		index := ""
		if closed {
			index = "1 1 2 0\n"
		}
		if err := os.WriteFile(filepath.Join(dir, indexName(testGen)), []byte(index), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, journalName(testGen, 1)), data, 0o600); err != nil {
			t.Fatal(err)
		}
		recs, cur, err := Read(dir, Cursor{Gen: testGen}, 0)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) || fe.Offset < 0 || fe.Offset > int64(len(data)) {
				t.Fatalf("error %v: not a *FormatError within the input", err)
			}
			return
		}
		consumed := cur.Off
		if cur.Seq == 2 {
			consumed = int64(len(data)) // closed and read to the end
		}
		if consumed == 0 {
			if len(recs) != 0 {
				t.Fatalf("records %+v without a header", recs)
			}
			return
		}
		nl := bytes.IndexByte(data, '\n')
		out := slices.Clone(data[:nl+1])
		for _, r := range recs {
			out = appendRecord(out, r)
		}
		if !bytes.Equal(out, data[:consumed]) {
			t.Fatalf("records %+v write back as %q, read %q up to %d", recs, out, data, cur.Off)
		}
	})
}
