package gluster

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/georep/georep/integration/harness"
	"github.com/georep/georep/master/catalog"
	"github.com/georep/georep/rpc/gfid"
)

// TestSlaveGlusterFSEndToEnd replicates a plain directory into a GlusterFS
// volume with the real binaries: georep-slave mounts the volume itself, the
// plain-directory master runs --oneshot; the tree read through a plain
// mount of the slave volume must equal the source, and every inode on the
// brick must carry the gfid the master's catalog gave it. Then the source
// is mutated and synced again.
func TestSlaveGlusterFSEndToEnd(t *testing.T) {
	harness.RequireRsync(t)
	c := Start(t)
	vol := c.Volume(t, "slavee2e", VolumeOpts{})
	dir := t.TempDir()
	src, work, state := filepath.Join(dir, "src"), filepath.Join(dir, "work"), filepath.Join(dir, "state")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := harness.Populate(src, rand.New(rand.NewPCG(7, 8))); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 5<<20/16) // 5 MiB: the rsync path
	big[12345] = 'X'
	if err := os.WriteFile(filepath.Join(src, "big.bin"), big, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "small.txt"), []byte("small file: WriteFiles\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	addr := harness.FreeAddr(t)
	certs := harness.MakeCerts(t, t.TempDir()) // mutual TLS between the two daemons
	slave := harness.StartProc(t, nil, "georep-slave", append([]string{"--listen", addr,
		"--gluster-volume", vol.Name, "--volfile-server", Host, "--state-dir", state}, certs.SlaveArgs()...)...)
	t.Cleanup(func() {
		// SIGTERM: the slave unmounts its volume and reaps the client.
		_ = slave.Cmd.Process.Signal(syscall.SIGTERM)
		if code, ok := slave.Wait(60 * time.Second); !ok || code != 0 {
			t.Errorf("georep-slave exit %d (exited %v):\n%s", code, ok, slave.Log())
		}
		if entries, _ := os.ReadDir(state); len(entries) != 0 {
			t.Errorf("state dir not cleaned up: %v", entries)
		}
	})
	if !slave.WaitLog("slave serving", 90*time.Second) {
		t.Fatalf("georep-slave did not start:\n%s", slave.Log())
	}
	view := vol.Mount(t)

	sync := func(when string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
		defer cancel()
		harness.MustOneshot(t, ctx, append([]string{"--slave", addr, "--source", src, "--work-dir", work}, certs.MasterArgs()...)...)
		diffs, err := harness.Compare(src, view, harness.CompareOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(diffs) > 0 {
			if len(diffs) > 30 {
				diffs = append(diffs[:30], "...")
			}
			t.Fatalf("slave volume differs from source %s:\n%s\nslave log:\n%s", when, strings.Join(diffs, "\n"), slave.Log())
		}
		checkGFIDs(t, filepath.Join(work, "catalog.db"), vol.Bricks[0], view)
	}
	sync("after the initial sync")
	if got, err := os.ReadFile(filepath.Join(view, "big.bin")); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("big.bin through the plain mount: %d bytes, %v; want the 5 MiB written", len(got), err)
	}

	// Mutations: renames, deletes, an overwrite of the same size and mtime.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	st, err := os.Stat(filepath.Join(src, "big.bin"))
	must(err)
	big[0] = 'Y'
	must(os.WriteFile(filepath.Join(src, "big.bin"), big, 0o640))
	must(os.Chtimes(filepath.Join(src, "big.bin"), st.ModTime(), st.ModTime()))
	must(os.Rename(filepath.Join(src, "small.txt"), filepath.Join(src, "d1", "small-renamed.txt")))
	must(os.Rename(filepath.Join(src, "d2"), filepath.Join(src, "d1", "d2-moved")))
	must(os.RemoveAll(filepath.Join(src, "deep")))
	if _, err := harness.Mutate(src, rand.New(rand.NewPCG(9, 10)), 40); err != nil {
		t.Fatal(err)
	}
	sync("after mutations")
	// (Mutate may have changed big.bin again: compare with the source.)
	want, werr := os.ReadFile(filepath.Join(src, "big.bin"))
	if got, err := os.ReadFile(filepath.Join(view, "big.bin")); werr == nil && (err != nil || !bytes.Equal(got, want)) {
		t.Fatalf("big.bin after a same-size overwrite: %v", err)
	}
}

// checkGFIDs walks the slave volume through view and checks that every
// inode's gfid on the brick is the one the master's catalog holds for its
// name.
func checkGFIDs(t *testing.T, catalogPath string, brick Brick, view string) {
	t.Helper()
	cat, err := catalog.Open(catalogPath)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	checked := 0
	var walk func(rel string, dir gfid.GFID)
	walk = func(rel string, dir gfid.GFID) {
		ents, err := os.ReadDir(filepath.Join(view, rel))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if rel == "" && (e.Name() == ".georep" || e.Name() == ".georep.lock") {
				continue
			}
			p := filepath.Join(rel, e.Name())
			want, ok, err := cat.Lookup(dir, e.Name())
			if err != nil || !ok {
				t.Fatalf("catalog has no gfid for %q (%v)", p, err)
			}
			got, err := brick.GFID(p)
			if err != nil {
				t.Fatal(err)
			}
			if got != want.String() {
				t.Fatalf("%q: gfid %s on the brick, %s in the master's catalog", p, got, want)
			}
			checked++
			if e.IsDir() {
				walk(p, want)
			}
		}
	}
	walk("", gfid.Root)
	if checked < 20 {
		t.Fatalf("only %d names checked", checked)
	}
}
