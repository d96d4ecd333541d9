package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/georep/georep/integration/harness"
)

// unprivilegedSite prepares a master to run as the unprivileged user 65534
// through setpriv: a source, a replica and a work dir it owns, under
// directories it may traverse. It skips without root or setpriv.
func unprivilegedSite(t *testing.T) (setpriv, src, replica, work string) {
	t.Helper()
	harness.RequireRoot(t, "runs the master as the unprivileged user 65534")
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not found: cannot drop privileges")
	}
	base := t.TempDir()
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src, replica, work = filepath.Join(base, "src"), filepath.Join(base, "replica"), filepath.Join(base, "work")
	for _, d := range []string{src, replica, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(work, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	return setpriv, src, replica, work
}
