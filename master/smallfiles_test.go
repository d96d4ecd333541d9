package master

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/georep/georep/master/crawl"
	"github.com/georep/georep/rpc/gfid"
)

// A small file renamed over between the crawl and the shipping: the name
// the crawl saw holds another inode now, whose bytes and attributes must
// not be written as the crawled file's (nothing would ship them again: the
// crawled file's own record matches the source). Its data fails, to be
// shipped again from wherever the file is.
func TestSmallFileRenamedOverIsNotShippedAsAnother(t *testing.T) {
	tw := newTestWorker(t)
	tw.cfg.SmallFileSize = 1000
	tw.noVerify = true
	tw.write(t, "a", "the first file")
	tw.write(t, "b", "another file, another size")
	if err := os.Link(filepath.Join(tw.src, "a"), filepath.Join(tw.src, "a-link")); err != nil {
		t.Fatal(err)
	}
	res, err := crawl.Hybrid(t.Context(), crawl.Config{Source: tw.src, ChangelogDir: tw.wd.path("xsync")}, tw.cat, tw.log)
	if err != nil {
		t.Fatal(err)
	}
	var ga gfid.GFID
	for _, g := range res.Snapshot.GFIDs() {
		if p, ok := res.Snapshot.Path(g); ok && filepath.Base(p) == "a" {
			ga = g
		}
	}
	if ga.IsZero() {
		t.Fatal("no gfid for a")
	}
	// After the crawl: b renamed over a (a's inode lives on as a-link).
	if err := os.Rename(filepath.Join(tw.src, "b"), filepath.Join(tw.src, "a")); err != nil {
		t.Fatal(err)
	}
	out, err := tw.processChangelog(t.Context(), res.Changelog, res.Snapshot, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range tw.data.written {
		if fd.GFID == ga {
			t.Errorf("a written with the bytes of the file renamed over it: %q", fd.Data)
		}
	}
	if !out.dataFailed[ga] {
		t.Errorf("a's data not failed: %v", out.dataFailed)
	}
}
