package gluster

import (
	"fmt"
	"testing"

	"github.com/georep/georep/slave/apply/applytest"
	"github.com/georep/georep/slave/glusterfs"
)

// TestSlaveGlusterFSParallelCreatesMatchSerial checks the engine's parallel
// creates against applying one entry at a time on the GlusterFS backend,
// each replica a fresh volume.
func TestSlaveGlusterFSParallelCreatesMatchSerial(t *testing.T) {
	c := Start(t)
	n := 0
	applytest.ParallelCreatesMatchSerial(t, func(t *testing.T) (applytest.Replica, string) {
		n++
		vol := c.Volume(t, fmt.Sprintf("slavepar%d", n), VolumeOpts{})
		v, err := glusterfs.Open(t.Context(), glusterfs.Config{Volume: vol.Name, VolfileServer: Host, StateDir: t.TempDir()}, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := v.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return v, v.Root()
	})
}

// TestSlaveGlusterFSParallelEntriesMatchSerial checks the engine's
// independent entry ops of every kind side by side (Config.ParallelEntries)
// against applying one entry at a time on the GlusterFS backend.
func TestSlaveGlusterFSParallelEntriesMatchSerial(t *testing.T) {
	c := Start(t)
	n := 0
	applytest.ParallelEntriesMatchSerial(t, func(t *testing.T) (applytest.Replica, string) {
		n++
		vol := c.Volume(t, fmt.Sprintf("slavepe%d", n), VolumeOpts{})
		v, err := glusterfs.Open(t.Context(), glusterfs.Config{Volume: vol.Name, VolfileServer: Host, StateDir: t.TempDir()}, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := v.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return v, v.Root()
	})
}
