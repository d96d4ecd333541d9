package replica

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// Small pools the fuzzer picks from, so that sequences hit the same names and
// gfids often enough to exercise conflicts, renames and replays.
var (
	fuzzGFIDs = []gfid.GFID{
		{},
		gfid.Root,
		gfid.Park,
		gfid.MustParse("11111111-1111-4111-8111-111111111111"),
		gfid.MustParse("22222222-2222-4222-8222-222222222222"),
		gfid.MustParse("33333333-3333-4333-8333-333333333333"),
		gfid.MustParse("44444444-4444-4444-8444-444444444444"),
		gfid.MustParse("55555555-5555-4555-8555-555555555555"),
	}
	fuzzNames = []string{
		"a", "b", "c", "d",
		"", ".", "..", "a/b", "../outside", "..\x00", ".georep", "gfid", "park",
		strings.Repeat("n", 256), "/", "\xff", "11111111-1111-4111-8111-111111111111",
	}
	fuzzTargets = []string{"a", "../outside", "/", "../../outside/sentinel", "..", "b/../.."}
	fuzzModes   = []uint32{
		unix.S_IFREG | 0o644, unix.S_IFDIR | 0o755, unix.S_IFIFO | 0o600, unix.S_IFSOCK | 0o600,
		unix.S_IFLNK | 0o777, unix.S_IFREG | 0o4755, 0, unix.S_IFCHR | 0o600,
	}
)

// decodeEntries turns fuzz bytes into up to 32 entries, 6 bytes each: op
// (low nibble; bit 7 forces the parent to the root), gfid (bits 0-3) and
// parent (bits 4-7), name, new parent, new name, mode (bits 0-2) and symlink
// target (bits 3-7).
func decodeEntries(data []byte) []ops.Entry {
	var out []ops.Entry
	pick := func(i int) byte {
		if i < len(data) {
			return data[i]
		}
		return 0
	}
	for i := 0; i < len(data) && len(out) < 32; i += 6 {
		b := func(k int) int { return int(pick(i + k)) }
		e := ops.Entry{
			Op:        ops.Op(b(0) & 0x0f % 9), // 0 is an invalid op, kept on purpose
			GFID:      fuzzGFIDs[b(1)%len(fuzzGFIDs)],
			Parent:    fuzzGFIDs[(b(1)>>4)%len(fuzzGFIDs)],
			Name:      fuzzNames[b(2)%len(fuzzNames)],
			NewParent: fuzzGFIDs[b(3)%len(fuzzGFIDs)],
			NewName:   fuzzNames[b(4)%len(fuzzNames)],
			Mode:      fuzzModes[b(5)%len(fuzzModes)],
			Target:    fuzzTargets[(b(5)>>3)%len(fuzzTargets)],
		}
		if b(0)&0x80 != 0 { // bias parents towards real directories
			e.Parent = gfid.Root
		}
		if e.Mode&unix.S_IFMT == unix.S_IFCHR {
			e.Rdev = unix.Mkdev(1, 3)
		}
		out = append(out, e)
	}
	return out
}

// FuzzApplyEntries applies random sequences of entries to a scratch replica
// and checks that nothing outside the root changed and nothing panicked.
func FuzzApplyEntries(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{2, 0x13, 0, 0, 0, 1, 1, 0x34, 1, 0, 0, 0, 6, 0x34, 1, 2, 3, 0})
	f.Add([]byte{0x82, 3, 8, 0, 0, 1, 0x86, 3, 0, 0x10, 9, 0})
	f.Add([]byte("\x82\x03\x00\x00\x00\x01\x01\x34\x00\x00\x00\x00\x06\x03\x00\x03\x01\x00\x07\x34\x00\x00\x00\x00\x08\x03\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		root := filepath.Join(dir, "root")
		outside := filepath.Join(dir, "outside")
		for _, d := range []string{root, outside} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(outside, "sentinel"), []byte("keep"), 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := Open(root, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		before := snapshot(t, outside)
		entries := decodeEntries(data)
		for range 2 { // apply twice: replays must be safe too
			fails := r.ApplyEntries(t.Context(), entries)
			for _, f := range fails {
				if f.Index < 0 || f.Index >= len(entries) || f.Errno == 0 || f.Message == "" {
					t.Fatalf("malformed failure %+v", f)
				}
			}
		}
		for _, g := range fuzzGFIDs[1:] {
			_, _ = r.Stat(t.Context(), g)
			_, _ = r.Entries(t.Context(), g)
		}
		for _, n := range fuzzNames {
			_, _ = r.Purge(t.Context(), gfid.Root, n, gfid.GFID{})
		}
		assertSameTree(t, before, snapshot(t, outside))
		// Whatever the sequence, rsync's data directory holds regular files only.
		assertDataDirRegularOnly(t, r)
		top, err := os.ReadDir(dir)
		if err != nil || len(top) != 2 {
			t.Fatalf("temp dir holds %v, %v: want only root and outside", top, err)
		}
		// The replica's own tree survives: root and park keep their gfids.
		if g := xattrGFID(t, r, root); g != gfid.Root {
			t.Fatalf("root gfid %s", g)
		}
		if g := xattrGFID(t, r, filepath.Join(root, ".georep/park")); g != gfid.Park {
			t.Fatalf("park gfid %s", g)
		}
		// The index agrees with the namespace: every name listed beneath
		// the root is found by its gfid with the type listed, and a
		// directory is where its index says.
		var walk func(g gfid.GFID, path string, depth int)
		walk = func(g gfid.GFID, path string, depth int) {
			ents, err := r.Entries(t.Context(), g)
			if err != nil {
				t.Fatalf("Entries(%s %q): %v", g, path, err)
			}
			for _, e := range ents {
				if e.GFID.IsZero() {
					t.Fatalf("%s/%s has no gfid: georep created it without one", path, e.Name)
				}
				a, err := r.Stat(t.Context(), e.GFID)
				if err != nil || a.Type != e.Type {
					t.Fatalf("%s/%s is gfid %s, a %v; Stat gives %v, %v", path, e.Name, e.GFID, e.Type, a.Type, err)
				}
				if e.Type == ops.TypeDir && depth < 16 {
					walk(e.GFID, path+"/"+e.Name, depth+1)
				}
			}
		}
		walk(gfid.Root, "", 0)
		// And the replica still works: a new directory and a file in it.
		nd, nf := gfid.New(), gfid.New()
		if fl := r.ApplyEntries(t.Context(), []ops.Entry{
			{Op: ops.OpMkdir, GFID: nd, Parent: gfid.Root, Name: "after-" + nd.String(), Mode: unix.S_IFDIR | 0o755},
			{Op: ops.OpCreate, GFID: nf, Parent: nd, Name: "f", Mode: unix.S_IFREG | 0o644},
		}); len(fl) > 0 {
			t.Fatalf("creating after the sequence failed: %+v", fl)
		}
	})
}
