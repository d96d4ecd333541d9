package gluster

import (
	"context"
	"os"
	"testing"

	"github.com/georep/georep/master/glusterfs"
)

// Mount mounts the volume with the GlusterFS FUSE client on a temporary
// directory and returns it; extra are more glusterfs arguments. The client
// is unmounted, and waited for, when the test ends.
func (v *Volume) Mount(t testing.TB, extra ...string) string {
	t.Helper()
	return v.mount(t, false, extra)
}

// AuxMount is Mount with --aux-gfid-mount: every inode of the volume is also
// reachable as <mount>/.gfid/<gfid>, the way gsyncd reaches a master's files
// (gsyncd adds --acl and --client-pid=-1, which extra can pass).
func (v *Volume) AuxMount(t testing.TB, extra ...string) string {
	t.Helper()
	return v.mount(t, true, extra)
}

// mount runs the client with glusterfs.Mount, georep's own: in the
// foreground, our child, unmounted without MNT_DETACH.
func (v *Volume) mount(t testing.TB, aux bool, extra []string) string {
	t.Helper()
	point := t.TempDir()
	m, err := glusterfs.Mount(context.Background(), glusterfs.MountConfig{VolfileServer: v.host, Volume: v.Name,
		Dir: point, AuxGFID: aux, LogFile: t.TempDir() + "/glusterfs.log", GlusterfsPath: bin("glusterfs"), ExtraArgs: extra,
		Timeout: readyTimeout})
	if err != nil {
		t.Fatalf("gluster: %v", err)
	}
	// Registered after the temporary directories, so it runs before they are
	// removed: never remove through a live mount.
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(m.LogFile)
			t.Logf("glusterfs client of %s on %s:\n%s", v.Name, point, tail(string(log), 40))
		}
		if err := m.Close(); err != nil {
			t.Errorf("gluster: %v", err)
		}
	})
	return m.Dir
}
