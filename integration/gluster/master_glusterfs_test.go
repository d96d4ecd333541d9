package gluster_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/georep/georep/integration/gluster"
	"github.com/georep/georep/master/changelog"
	"github.com/georep/georep/master/glusterfs"
	gfidpkg "github.com/georep/georep/rpc/gfid"
)

// TestMasterGlusterFSVolumeInfo checks master/glusterfs's view of real
// volumes: layout, replica sets, local bricks, and the CLI's errors.
func TestMasterGlusterFSVolumeInfo(t *testing.T) {
	c := gluster.Start(t)
	node, err := glusterfs.LocalNodeUUID()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		opts    gluster.VolumeOpts
		typ     string
		replica int
		sets    []int
	}{
		{"one", gluster.VolumeOpts{Bricks: 1}, "Distribute", 1, []int{0}},
		{"dist", gluster.VolumeOpts{Bricks: 2}, "Distribute", 1, []int{0, 1}},
		{"distrep", gluster.VolumeOpts{Bricks: 4, Replica: 2}, "Distributed-Replicate", 2, []int{0, 0, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := c.Volume(t, tc.name, tc.opts)
			for _, server := range []string{"", c.Host} {
				got, err := glusterfs.GetVolume(t.Context(), "", server, v.Name)
				if err != nil {
					t.Fatal(err)
				}
				if got.Name != v.Name || got.ID != v.ID || got.Type != tc.typ || got.ReplicaCount != tc.replica || got.Status != "Started" {
					t.Errorf("volume %+v", got)
				}
				if err := got.Servable(); err != nil {
					t.Error(err)
				}
				local := got.LocalBricks(node)
				if len(local) != len(v.Bricks) {
					t.Fatalf("local bricks %+v, want %d", local, len(v.Bricks))
				}
				for i, b := range local {
					want := v.Bricks[i]
					if b.Host != want.Host || b.Path != want.Path || b.Index != i || b.ReplicaSet != tc.sets[i] {
						t.Errorf("brick %d: %+v, want %s:%s set %d", i, b, want.Host, want.Path, tc.sets[i])
					}
				}
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		name := fmt.Sprintf("georep-nosuch-%d", 12345)
		_, err := glusterfs.GetVolume(t.Context(), "", "", name)
		if !errors.Is(err, glusterfs.ErrNoVolume) {
			t.Errorf("GetVolume(%s) = %v, want ErrNoVolume", name, err)
		}
		t.Log(err)
	})
}

// TestMasterGlusterFSMount mounts a volume plainly and with aux-gfid
// through master/glusterfs, reads a file by the gfid its brick carries,
// keeps an stime on the brick root, and finds the DHT linkto files a rename
// leaves on a distribute volume.
func TestMasterGlusterFSMount(t *testing.T) {
	c := gluster.Start(t)
	v := c.Volume(t, "mount", gluster.VolumeOpts{Bricks: 2})
	mount := func(t *testing.T, aux bool) *glusterfs.Mounted {
		t.Helper()
		m, err := glusterfs.Mount(t.Context(), glusterfs.MountConfig{
			VolfileServer: c.Host, Volume: v.Name, Dir: t.TempDir(), AuxGFID: aux,
			ExtraArgs: []string{"--client-pid=-1"},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := m.Close(); err != nil {
				t.Error(err)
			}
		})
		return m
	}
	plain := mount(t, false)
	aux := mount(t, true)

	// Files spread over both bricks.
	names := map[string]string{}
	for i := range 20 {
		name := fmt.Sprintf("f%02d", i)
		names[name] = "data of " + name
		if err := os.WriteFile(filepath.Join(plain.Dir, name), []byte(names[name]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	found := 0
	for name, data := range names {
		for _, b := range v.Bricks {
			p := filepath.Join(b.Path, name)
			if _, err := os.Lstat(p); err != nil {
				continue
			}
			g, err := glusterfs.BrickGFID(p)
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(aux.Dir, ".gfid", g.String()))
			if err != nil || string(got) != data {
				t.Errorf("%s by gfid %s: %q, %v", name, g, got, err)
			}
			found++
		}
	}
	if found != len(names) {
		t.Errorf("%d of %d files found on the bricks", found, len(names))
	}
	if _, err := os.Stat(filepath.Join(plain.Dir, ".gfid", "00000000-0000-0000-0000-000000000001")); err == nil {
		t.Error("plain mount resolves .gfid/")
	}

	// A rename to a name that hashes to the other brick leaves a linkto
	// file under the new name on that brick.
	for name := range names {
		if err := os.Rename(filepath.Join(plain.Dir, name), filepath.Join(plain.Dir, "renamed-"+name)); err != nil {
			t.Fatal(err)
		}
	}
	linkto := 0
	for _, b := range v.Bricks {
		ents, err := os.ReadDir(b.Path)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if glusterfs.BrickInternal(e.Name()) {
				continue
			}
			is, err := glusterfs.IsLinkto(filepath.Join(b.Path, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			fi, _ := e.Info()
			if is {
				linkto++
				if fi.Size() != 0 || fi.Mode()&os.ModeSticky == 0 {
					t.Errorf("linkto %s: %v %d bytes", e.Name(), fi.Mode(), fi.Size())
				}
			} else if fi.Mode().IsRegular() && fi.Size() == 0 {
				t.Errorf("empty %s on %s is not a linkto file: %v", e.Name(), b.Path, fi.Mode())
			}
		}
	}
	t.Logf("%d linkto files after renaming %d files", linkto, len(names))
	if linkto == 0 {
		t.Error("no linkto file after the renames")
	}

	// stime on a real brick root, next to GlusterFS's own xattrs.
	root := v.Bricks[0].Path
	slaveID := "396c3db8-0ab5-444f-9604-0ad69fd64519"
	if _, ok, err := glusterfs.Stime(root, v.ID, slaveID); ok || err != nil {
		t.Fatalf("stime before: %v %v", ok, err)
	}
	want := time.Unix(time.Now().Unix(), 0)
	if err := glusterfs.SetStime(root, v.ID, slaveID, want); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := glusterfs.Stime(root, v.ID, slaveID); !ok || err != nil || !got.Equal(want) {
		t.Errorf("stime = %v, %v, %v; want %v", got, ok, err, want)
	}
	if g, err := glusterfs.BrickGFID(root); err != nil || g.String() != "00000000-0000-0000-0000-000000000001" {
		t.Errorf("brick root gfid %v, %v", g, err)
	}

	// Close unmounts for good and reaps the client.
	if err := aux.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-aux.Exited():
	default:
		t.Error("client still running after Close")
	}
	if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), " "+aux.Dir+" ") {
		t.Errorf("%s still mounted", aux.Dir)
	}
}

// TestMasterGlusterFSChangelogs reads a real brick's changelogs with
// History and Rolled: the files written show up in the rolled-over
// changelogs, empty rollovers are indexed but not kept, and turning the
// changelog off and on again is a gap History and Rolled refuse to cross.
func TestMasterGlusterFSChangelogs(t *testing.T) {
	c := gluster.Start(t)
	// A 2 s rollover: at 1 s, two rollovers sometimes fell in one second on
	// a loaded machine, and a create went missing from the rolled
	// changelogs (both are named CHANGELOG.<that second>).
	v := c.Volume(t, "history", gluster.VolumeOpts{Bricks: 1, Changelog: true, RolloverTime: 2 * time.Second})
	brick := v.Bricks[0].Path
	htimes := waitGlob(t, filepath.Join(brick, glusterfs.ChangelogDir, "htime", "HTIME.*"), 10*time.Second)
	start, err := strconv.ParseInt(strings.TrimPrefix(filepath.Base(htimes[0]), "HTIME."), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	// History covers times a whole second after the changelog came on.
	since := time.Unix(start+1, 0)
	time.Sleep(time.Until(since.Add(100 * time.Millisecond)))
	if _, err := glusterfs.History(brick, time.Unix(start, 0), time.Now()); !errors.Is(err, glusterfs.ErrNoHistory) {
		t.Errorf("history from the second the changelog came on: %v, want ErrNoHistory", err)
	}

	m, err := glusterfs.Mount(t.Context(), glusterfs.MountConfig{VolfileServer: c.Host, Volume: v.Name, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	want := map[gfidpkg.GFID]string{}
	for i := range 3 {
		name := fmt.Sprintf("file%d", i)
		if err := os.WriteFile(filepath.Join(m.Dir, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		g, err := glusterfs.BrickGFID(filepath.Join(brick, name))
		if err != nil {
			t.Fatal(err)
		}
		want[g] = name
		time.Sleep(2100 * time.Millisecond) // spread over rollovers
	}

	// Wait until the live crawl has seen every create.
	var rolled []string
	created := map[gfidpkg.GFID]string{}
	for deadline := time.Now().Add(20 * time.Second); len(created) < len(want); {
		if time.Now().After(deadline) {
			t.Fatalf("creates seen %v, want %v (rolled %v)", created, want, rolled)
		}
		time.Sleep(200 * time.Millisecond)
		// History would have found none yet: Rolled from a second before.
		if rolled, err = glusterfs.Rolled(brick, since.Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
		created = map[gfidpkg.GFID]string{}
		for _, p := range rolled {
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			recs, err := changelog.ParseBrick(f, p)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if r.Fop == changelog.Create {
					created[r.GFID] = r.Name
				}
			}
		}
	}
	for g, name := range want {
		if created[g] != name {
			t.Errorf("create of %s (%s): %q", name, g, created[g])
		}
	}
	if len(rolled) < 2 {
		t.Errorf("writes 1.1 s apart rolled over into %d changelogs", len(rolled))
	}
	until := time.Now()
	hist, err := glusterfs.History(brick, since, until)
	if err != nil {
		t.Fatal(err)
	}
	// Rolled may have seen fewer (it ran earlier), never others.
	if !slices.Equal(hist[:len(rolled)], rolled) {
		t.Errorf("history %v\nrolled %v", hist, rolled)
	}
	last, _ := glusterfs.ChangelogEpoch(hist[len(hist)-1])
	if more, err := glusterfs.History(brick, last, until); err != nil || !slices.Equal(more, hist[len(hist)-1:]) {
		t.Errorf("history from the last one's epoch: %v, %v; want it alone", more, err)
	}
	if more, err := glusterfs.Rolled(brick, last); err != nil || len(more) != 0 {
		t.Errorf("rolled after the last one: %v, %v", more, err)
	}

	// Empty rollovers: in the index as changelog.<epoch>, not on disk.
	time.Sleep(4500 * time.Millisecond) // idle over two rollovers
	idx, err := os.ReadFile(htimes[0])
	if err != nil {
		t.Fatal(err)
	}
	empty, full := 0, 0
	for _, p := range strings.Split(strings.TrimSuffix(string(idx), "\x00"), "\x00") {
		_, statErr := os.Lstat(p)
		switch base := filepath.Base(p); {
		case strings.HasPrefix(base, "changelog."):
			empty++
			if statErr == nil {
				t.Errorf("empty rollover %s kept on disk", p)
			}
		case strings.HasPrefix(base, "CHANGELOG."):
			full++
			if statErr != nil {
				t.Error(statErr)
			}
		}
	}
	t.Logf("index: %d empty and %d non-empty rollovers", empty, full)
	if empty == 0 {
		t.Error("no empty rollover indexed")
	}
	// The last rollover, empty ones counted: an idle worker's stime follows it.
	lastRoll, ok, err := glusterfs.LastRollover(brick)
	if err != nil || !ok || lastRoll.Before(last) {
		t.Errorf("last rollover %v (ok %v, %v), want at or after the last changelog's %v", lastRoll, ok, err, last)
	}

	// Off, a change, on again: a new index, and a gap nobody may cross.
	v.Set(t, "changelog.changelog", "off")
	time.Sleep(1100 * time.Millisecond)
	if err := os.WriteFile(filepath.Join(m.Dir, "unrecorded"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	v.Set(t, "changelog.changelog", "on")
	waitGlob(t, filepath.Join(brick, glusterfs.ChangelogDir, "htime", "HTIME.*[0-9]"), 10*time.Second)
	for deadline := time.Now().Add(10 * time.Second); ; {
		hs, _ := filepath.Glob(filepath.Join(brick, glusterfs.ChangelogDir, "htime", "HTIME.*"))
		if len(hs) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("indexes %v after turning the changelog on again", hs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond)
	if _, err := glusterfs.History(brick, since, time.Now()); !errors.Is(err, glusterfs.ErrNoHistory) {
		t.Errorf("history across the gap: %v, want ErrNoHistory", err)
	} else {
		t.Log(err)
	}
	if _, err := glusterfs.Rolled(brick, last); !errors.Is(err, glusterfs.ErrNoHistory) {
		t.Errorf("rolled across the gap: %v, want ErrNoHistory", err)
	}
}
