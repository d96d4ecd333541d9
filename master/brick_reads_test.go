package master

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/georep/georep/master/changelog"
	"github.com/georep/georep/rpc/gfid"
)

// TestReadMarks drives the read marks over a real changelog directory, as
// the brick's translator rolls it over (CHANGELOG renamed to CHANGELOG.<e>,
// a new CHANGELOG made; an empty one unlinked), and checks which D records
// force a data ship: only those of a slice the worker saw renamed before
// the file's data was read are covered.
func TestReadMarks(t *testing.T) {
	dir := t.TempDir()
	cur := filepath.Join(dir, "CHANGELOG")
	if _, ok, err := statSlice(dir); err != nil || !ok {
		t.Skipf("no birth time on %s (%v): read marks cover nothing there", dir, err)
	}
	create := func() {
		t.Helper()
		if err := os.WriteFile(cur, []byte("GlusterFS Changelog | version: v1.2 | encoding : 2\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	roll := func(epoch string) string {
		t.Helper()
		p := filepath.Join(dir, "CHANGELOG."+epoch)
		if err := os.Rename(cur, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	g := func(b byte) gfid.GFID { return gfid.GFID{15: b} }
	data := func(gs ...gfid.GFID) []changelog.Record {
		var rs []changelog.Record
		for _, x := range gs {
			rs = append(rs, changelog.Record{Kind: changelog.Data, GFID: x})
		}
		return rs
	}
	ok := func() *outcome { return &outcome{failed: map[gfid.GFID]string{}, dataFailed: map[gfid.GFID]bool{}} }

	var m readMarks
	if k := m.observe(cur); k != 0 {
		t.Fatalf("no current changelog, nothing seen: mark %d, want 0", k)
	}
	create() // slice A
	kA := m.observe(cur)
	if kA != 0 || m.observe(cur) != kA {
		t.Fatalf("slice A: mark %d, want 0 (twice)", kA)
	}
	m.shipped(map[gfid.GFID]int64{g(1): kA, g(5): kA}, ok()) // read while A was current
	a := roll("100")
	create() // slice B
	kB := m.observe(cur)
	if kB != 1 {
		t.Fatalf("slice B: mark %d, want 1", kB)
	}
	// g2 read after A was renamed; g3 failed; g4 shipped with no mark;
	// g5 read again, after A.
	bad := ok()
	bad.dataFailed[g(3)] = true
	m.shipped(map[gfid.GFID]int64{g(2): kB, g(3): kB, g(4): -1, g(5): kB}, bad)

	b := roll("105")
	create() // slice C, rolled over unseen
	c := roll("110")
	create() // slice D
	if k := m.observe(cur); k != 2 {
		t.Fatalf("slice D: mark %d, want 2", k)
	}
	m.shipped(map[gfid.GFID]int64{g(6): 2}, ok())

	for _, tc := range []struct {
		name   string
		files  []string
		counts []int              // records of each file
		recs   []changelog.Record // the files', then the current changelog's
		want   []gfid.GFID
	}{
		{"A: read during it", []string{a}, []int{1}, data(g(1)), []gfid.GFID{g(1)}},
		{"A: read after it", []string{a}, []int{1}, data(g(2)), nil},
		{"A: read again after it", []string{a}, []int{1}, data(g(5)), nil},
		{"A: data failed", []string{a}, []int{1}, data(g(3)), []gfid.GFID{g(3)}},
		{"A: no mark", []string{a}, []int{2}, data(g(4), g(7)), []gfid.GFID{g(4), g(7)}},
		{"B: read during it", []string{b}, []int{1}, data(g(2)), []gfid.GFID{g(2)}},
		{"B: read after it", []string{b}, []int{1}, data(g(6)), nil},
		{"C: never seen current", []string{c}, []int{1}, data(g(6)), []gfid.GFID{g(6)}},
		{"A, B, C", []string{a, b, c}, []int{1, 1, 1}, data(g(2), g(6), g(6)), []gfid.GFID{g(6)}},
		{"the current changelog", nil, nil, data(g(2)), []gfid.GFID{g(2)}},
		{"A then the current changelog", []string{a}, []int{1}, data(g(2), g(2)), []gfid.GFID{g(2)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			force, err := m.forced(tc.files, tc.counts, tc.recs)
			if err != nil {
				t.Fatal(err)
			}
			if len(force) != len(tc.want) {
				t.Fatalf("forced %v, want %v", force, tc.want)
			}
			for _, x := range tc.want {
				if !force[x] {
					t.Fatalf("forced %v, want %v", force, tc.want)
				}
			}
		})
	}

	// An empty slice's file is unlinked at its rollover; until the next
	// is made, every slice seen is done.
	if err := os.Remove(cur); err != nil {
		t.Fatal(err)
	}
	if k := m.observe(cur); k != 3 {
		t.Fatalf("no current changelog after D: mark %d, want 3", k)
	}
	create() // slice E: a new file, even if it reuses D's inode number
	if k := m.observe(cur); k != 3 {
		t.Fatalf("slice E: mark %d, want 3", k)
	}
	// A new session forgets every mark.
	m.forget()
	if force, _ := m.forced([]string{a}, []int{1}, data(g(2))); !force[g(2)] {
		t.Fatal("a mark survived forget")
	}
	if _, err := m.forced([]string{a}, nil, data(g(2))); err == nil {
		t.Fatal("counts that do not match the files: no error")
	}
}
