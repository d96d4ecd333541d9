package gluster

import (
	"testing"

	"github.com/georep/georep/rpc/ops/opstest"
	"github.com/georep/georep/slave/glusterfs"
)

// TestSlaveConformanceGlusterFS runs the replica conformance suite against
// the slave's GlusterFS backend on a fresh volume it mounts itself.
func TestSlaveConformanceGlusterFS(t *testing.T) {
	c := Start(t)
	vol := c.Volume(t, "slaveconf", VolumeOpts{})
	opstest.Run(t, opstest.Caps{Root: true, AuxGFIDRoot: true}, func(t *testing.T) opstest.Backend {
		v, err := glusterfs.Open(t.Context(), glusterfs.Config{Volume: vol.Name, VolfileServer: Host, StateDir: t.TempDir()}, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := v.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return v
	})
}
