package master

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// TestSmallFilesWithACLs: with sync-acls (the default), a small file with a
// POSIX ACL goes through rsync -A, one without through WriteFiles asking
// the slave to clear the ACL its file may have; to a slave that cannot,
// every file goes through rsync.
func TestSmallFilesWithACLs(t *testing.T) {
	for _, tt := range []struct {
		name        string
		acls, noACL bool
		wantWritten []string // through WriteFiles, with ClearACL when acls
		wantRsynced []string
	}{
		{name: "sync-acls", acls: true, wantWritten: []string{"plain"}, wantRsynced: []string{"acl"}},
		{name: "slave without write-files-acl", acls: true, noACL: true, wantRsynced: []string{"acl", "plain"}},
		{name: "no sync-acls", wantWritten: []string{"acl", "plain"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tw := newTestWorker(t)
			tw.cfg.SyncACLs = tt.acls
			tw.slave.noACL = tt.noACL
			tw.cfg.SmallFileSize = 1000
			tw.write(t, "plain", "no ACL")
			tw.write(t, "acl", "an ACL")
			if out, err := exec.Command("setfacl", "-m", "u:12345:r", filepath.Join(tw.src, "acl")).CombinedOutput(); err != nil {
				t.Skipf("setfacl on %s: %v %s (no ACLs on this filesystem)", tw.src, err, out)
			}
			tw.crawlAndProcess(t)
			names := map[gfid.GFID]string{}
			for _, n := range []string{"plain", "acl"} {
				g, ok := tw.slave.Lookup(gfid.Root, n)
				if !ok {
					t.Fatalf("%s not on the slave", n)
				}
				names[g] = n
			}
			var written, rsynced []string
			for _, fd := range tw.data.written {
				written = append(written, names[fd.GFID])
				if fd.ClearACL != tt.acls {
					t.Errorf("%s written with ClearACL %v, want %v", names[fd.GFID], fd.ClearACL, tt.acls)
				}
			}
			for _, it := range tw.data.synced {
				rsynced = append(rsynced, filepath.Base(it.Path))
			}
			slices.Sort(written)
			slices.Sort(rsynced)
			if !slices.Equal(written, tt.wantWritten) || !slices.Equal(rsynced, tt.wantRsynced) {
				t.Errorf("WriteFiles %v, rsync %v; want %v, %v", written, rsynced, tt.wantWritten, tt.wantRsynced)
			}
		})
	}
}
