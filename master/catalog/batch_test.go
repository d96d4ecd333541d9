package catalog

import (
	"path/filepath"
	"reflect"
	"testing"

	"github.com/georep/georep/rpc/gfid"
)

// TestBatchReadsMatchPointReads: Identities and Nodes answer for every key
// what Identity and Node answer one at a time, whatever the order of the
// keys, with keys missing, repeated, or around the stored ones.
func TestBatchReadsMatchPointReads(t *testing.T) {
	c := open(t, filepath.Join(t.TempDir(), "catalog.db"))
	dir := gfid.New()
	var keys []Key
	for i := range 50 {
		keys = append(keys, Key{Ino: uint64(1000 + 2*i), BtimeNs: int64(i)})
	}
	gs, _, err := c.Identify(keys)
	if err != nil {
		t.Fatal(err)
	}
	nodes := []Node{{GFID: gfid.Root, Type: TypeDir, Mode: 0o40755}, {GFID: dir, Type: TypeDir, Mode: 0o40755, Links: []Link{{gfid.Root, "d"}}}}
	for i, g := range gs[:40] { // the last ten have an identity and no node
		nodes = append(nodes, Node{GFID: g, Type: TypeReg, Mode: 0o100644, Size: int64(i), MtimeNs: int64(i) * 7, Links: []Link{{dir, "f" + string(rune('a'+i%26))}}})
	}
	if err := c.Commit(nodes, nil); err != nil {
		t.Fatal(err)
	}
	missingKey := []Key{{Ino: 1}, {Ino: 1001, BtimeNs: 0}, {Ino: 1 << 62}, {Ino: 1000, BtimeNs: 1}}
	allGfids := append(append([]gfid.GFID{}, gs...), gfid.New(), gfid.Root, dir, gfid.GFID{})

	tests := []struct {
		name  string
		keys  []Key
		gfids []gfid.GFID
	}{
		{"empty", nil, nil},
		{"one present", keys[3:4], gs[3:4]},
		{"one missing", missingKey[:1], allGfids[50:51]},
		{"all in order", keys, allGfids},
		{"reversed with repeats and misses", reverse(append(append(append([]Key{}, keys...), keys[:5]...), missingKey...)),
			reverse(append(append([]gfid.GFID{}, allGfids...), gs[:5]...))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := c.Identities(tt.keys)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.keys) || len(ok) != len(tt.keys) {
				t.Fatalf("Identities: %d gfids, %d oks for %d keys", len(got), len(ok), len(tt.keys))
			}
			for i, k := range tt.keys {
				g, found, err := c.Identity(k)
				if err != nil {
					t.Fatal(err)
				}
				if got[i] != g || ok[i] != found {
					t.Errorf("Identities[%d] (%v) = %v %v, Identity says %v %v", i, k, got[i], ok[i], g, found)
				}
			}
			ns, ok, err := c.Nodes(tt.gfids)
			if err != nil {
				t.Fatal(err)
			}
			if len(ns) != len(tt.gfids) || len(ok) != len(tt.gfids) {
				t.Fatalf("Nodes: %d nodes, %d oks for %d gfids", len(ns), len(ok), len(tt.gfids))
			}
			for i, g := range tt.gfids {
				n, found, err := c.Node(g)
				if err != nil {
					t.Fatal(err)
				}
				if ok[i] != found || !reflect.DeepEqual(ns[i], n) {
					t.Errorf("Nodes[%d] (%v) = %+v %v, Node says %+v %v", i, g, ns[i], ok[i], n, found)
				}
			}
		})
	}
	// The cases above must have met both answers.
	_, ok, _ := c.Identities([]Key{keys[0], missingKey[0]})
	_, nok, _ := c.Nodes([]gfid.GFID{gs[0], gs[45]})
	if !ok[0] || ok[1] || !nok[0] || nok[1] {
		t.Fatalf("present and missing not told apart: identities %v, nodes %v", ok, nok)
	}
}

func reverse[T any](s []T) []T {
	out := make([]T, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

// TestWritesCounts: Writes moves with every change committed and not with
// reads (verify's early comparison relies on both).
func TestWritesCounts(t *testing.T) {
	c := open(t, filepath.Join(t.TempDir(), "catalog.db"))
	d := gfid.New()
	steps := []struct {
		name  string
		do    func() error
		moves bool
	}{
		{"identify a new key", func() error { _, _, err := c.Identify([]Key{{Ino: 7}}); return err }, true},
		{"identify it again", func() error { _, _, err := c.Identify([]Key{{Ino: 7}}); return err }, false},
		{"commit a directory", func() error {
			return c.Commit([]Node{{GFID: gfid.Root, Type: TypeDir, Mode: 0o40755}, {GFID: d, Type: TypeDir, Mode: 0o40755, Links: []Link{{gfid.Root, "d"}}}}, nil)
		}, true},
		{"reads", func() error {
			if _, _, err := c.Identities([]Key{{Ino: 7}}); err != nil {
				return err
			}
			if _, _, err := c.Nodes([]gfid.GFID{gfid.Root}); err != nil {
				return err
			}
			return c.ForEachChild(gfid.Root, func(string, gfid.GFID) error { return nil })
		}, false},
		{"unsync nothing", func() error { _, err := c.Unsync(nil); return err }, false},
		{"unsync the directory", func() error { _, err := c.Unsync([]gfid.GFID{d}); return err }, true},
	}
	for _, s := range steps {
		before := c.Writes()
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if moved := c.Writes() != before; moved != s.moves {
			t.Errorf("%s: Writes moved %v, want %v", s.name, moved, s.moves)
		}
	}
}
