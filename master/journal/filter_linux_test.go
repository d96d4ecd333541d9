package journal

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// deepDir makes a chain of directories under root deeper than PATH_MAX and
// returns the handle of the deepest.
func deepDir(t *testing.T, root string) Handle {
	t.Helper()
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.Repeat("d", 200)
	for range 30 { // 30 × 201 bytes > PATH_MAX (4096)
		if err := unix.Mkdirat(fd, name, 0o755); err != nil {
			t.Fatal(err)
		}
		nfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		fd = nfd
	}
	defer unix.Close(fd)
	h, _, err := unix.NameToHandleAt(fd, "", unix.AT_EMPTY_PATH)
	if err != nil {
		t.Skipf("no file handles here: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	return Handle{Type: h.Type(), Bytes: h.Bytes()}
}

// A directory deeper than PATH_MAX has no readable path: the filter decides
// by its ancestors.
func TestFilterDeepDirectories(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("open_by_handle_at needs root (CAP_DAC_READ_SEARCH)")
	}
	base := t.TempDir()
	src, other, work := filepath.Join(base, "src"), filepath.Join(base, "other"), filepath.Join(base, "src", "work")
	for _, d := range []string{src, other, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mountFD, err := openMountFD(src)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(mountFD)
	f := newFilter(mountFD, src, []string{work}, slog.New(slog.DiscardHandler))
	for _, c := range []struct {
		root string
		want bool
	}{
		{src, true},
		{other, false},
		{work, false},
	} {
		if got := f.keep(deepDir(t, c.root)); got != c.want {
			t.Errorf("deep directory under %s: keep = %v, want %v", c.root, got, c.want)
		}
	}
}
