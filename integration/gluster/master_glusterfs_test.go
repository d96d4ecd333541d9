package gluster_test

import (
	"errors"
	"fmt"
	"testing"

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
