package gluster_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/georep/georep/integration/gluster"
	"github.com/georep/georep/master/glusterfs"
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
