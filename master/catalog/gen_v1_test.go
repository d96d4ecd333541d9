package catalog

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/georep/georep/rpc/gfid"
)

// TestWriteV1Testdata writes testdata/v1 with the schema-1 (bbolt) code of
// this commit: GEOREP_WRITE_TESTDATA=1 go test -run TestWriteV1Testdata.
func TestWriteV1Testdata(t *testing.T) {
	if os.Getenv("GEOREP_WRITE_TESTDATA") == "" {
		t.Skip("set GEOREP_WRITE_TESTDATA=1 to rewrite testdata/v1")
	}
	dir := filepath.Join("testdata", "v1")
	path := filepath.Join(dir, "catalog.db")
	os.Remove(path)
	c, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	const btime = int64(1767268800_123456789) // 2026-01-01
	var keys []Key
	for i := range 40 {
		bt := btime + int64(i)*1_000_017
		if i%10 == 9 {
			bt = 0 // a filesystem without birth time
		}
		keys = append(keys, Key{Ino: 5000 + uint64(i)*3, BtimeNs: bt})
	}
	gs, _, err := c.Identify(keys)
	must(err)
	t0 := btime + 5_000_000
	nodes := []Node{{GFID: gfid.Root, Type: TypeDir, Mode: 0o40755, MtimeNs: t0, CtimeNs: t0}}
	dirs := []gfid.GFID{gs[0], gs[1], gs[2]}
	for i, d := range dirs {
		parent := gfid.Root
		if i == 2 {
			parent = dirs[1]
		}
		nodes = append(nodes, Node{GFID: d, Type: TypeDir, Mode: 0o40750, UID: 1000, GID: 100, Size: 4096,
			MtimeNs: t0 + int64(i), CtimeNs: t0 + int64(i)*7, Links: []Link{{parent, []string{"a", "b", "c"}[i]}}})
	}
	for i := 3; i < 30; i++ {
		n := Node{GFID: gs[i], Type: TypeReg, Mode: 0o100644, UID: 1000, GID: 1000, Size: int64(i) * 1001,
			MtimeNs: t0 + int64(i)*1_000_003, CtimeNs: t0 + int64(i)*1_000_009,
			Links: []Link{{dirs[i%3], "f" + strings.Repeat("0", 4) + string(rune('a'+i))}}}
		switch i {
		case 3: // hardlinks in two directories
			n.Links = append(n.Links, Link{dirs[0], "hard"}, Link{gfid.Root, "hard-root"})
		case 4:
			n.Type, n.Mode, n.Target, n.Size = TypeSymlink, 0o120777, "../a/f0000d\x00odd", 10
		case 5:
			n.Type, n.Mode, n.Size = TypeFifo, 0o10600, 0
		case 6:
			n.Type, n.Mode, n.Rdev, n.Size = TypeChar, 0o20660, 0x0103, 0
		case 7:
			n.Type, n.Mode, n.Rdev, n.Size = TypeBlock, 0o60660, 0x0801, 0
		case 8:
			n.Type, n.Mode, n.Size = TypeSocket, 0o140755, 0
		case 9:
			n.XattrHash = []byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
		case 10: // entry ops applied, data not yet: impossible times
			n.MtimeNs, n.CtimeNs = -1, -1
		case 11:
			n.Links[0].Name = "new\nline \xff\x01 ünïcode"
		case 12:
			n.Links[0].Name = strings.Repeat("L", 255)
		case 13:
			n.Mode, n.UID, n.GID = 0o106755, 0, 4294967295
		}
		nodes = append(nodes, n)
	}
	must(c.Commit(nodes, nil))
	// gfids[30..39] are assigned, never synced; 38 and 39 are then deleted
	// as a crawl does with identities whose inode is gone.
	must(c.Commit(nil, []gfid.GFID{gs[38], gs[39]}))
	// A synced file deleted: its node, names and identity go.
	must(c.Commit(nil, []gfid.GFID{gs[29]}))
	// An inode number reused: keys[28] gets a new gfid, the old one keeps
	// its node until it is committed as deleted (not done here).
	_, err = c.Reassign(keys[28])
	must(err)
	// Brick-style bindings: new keys bound to given gfids, and keys[27]
	// (synced) rebound to a given gfid.
	bound := []gfid.GFID{gfid.MustParse("0b0b0b0b-0000-4000-8000-000000000001"), gfid.MustParse("0b0b0b0b-0000-4000-8000-000000000002")}
	_, err = c.Bind([]Key{{Ino: 9001, BtimeNs: btime + 99}, keys[27]}, bound)
	must(err)
	must(c.Commit([]Node{{GFID: bound[0], Type: TypeReg, Mode: 0o100600, UID: 7, GID: 7, Size: 1, MtimeNs: t0, CtimeNs: t0,
		Links: []Link{{dirs[2], "bound"}}}}, nil))
	// Directory c unsynced with its content: nodes go, identities stay.
	_, err = c.Unsync([]gfid.GFID{dirs[2]})
	must(err)
	d := dump(t, c)
	must(c.Close())
	b, err := json.MarshalIndent(d, "", "\t")
	must(err)
	must(os.WriteFile(filepath.Join(dir, "contents.json"), append(b, '\n'), 0o644))
	t.Logf("%d identities, %d nodes, %d directories with names", len(d.Identities), len(d.Nodes), len(d.Names))
}
