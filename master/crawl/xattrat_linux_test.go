package crawl

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pkg/xattr"
	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/xattrat"
)

// TestUserXattrsAt checks that the *xattrat path reads what the procfs path
// reads: user.* attributes with values long and empty, none, a symlink not
// followed, a vanished name.
func TestUserXattrsAt(t *testing.T) {
	if !xattrat.Available() {
		t.Skip("no listxattrat/getxattrat on this kernel")
	}
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	with := filepath.Join(dir, "with")
	for _, p := range []string{plain, with} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	long := strings.Repeat("v", 1000) // past the first buffer
	if err := xattr.LSet(with, "user.a", []byte("1")); err != nil {
		if strings.Contains(err.Error(), "not supported") {
			t.Skip("no user xattrs here:", err)
		}
		t.Fatal(err)
	}
	if err := xattr.LSet(with, "user.long", []byte(long)); err != nil {
		t.Fatal(err)
	}
	for i := range 15 { // a listing past the first buffer
		if err := xattr.LSet(with, "user.long-name-"+strings.Repeat("n", 10)+string(rune('a'+i)), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := xattr.LSet(with, "user.empty", nil); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("with", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	procfs := func(name string) (map[string][]byte, error) { return userXattrsProc(fd, name) }
	for _, name := range []string{"plain", "with", "link", ".", "gone"} {
		got, gerr := userXattrsAt(fd, name)
		want, werr := procfs(name)
		if (gerr == nil) != (werr == nil) || (gerr != nil && !vanished(gerr)) {
			t.Fatalf("%s: errors %v (xattrat), %v (procfs)", name, gerr, werr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: xattrat %d attributes, procfs %d", name, len(got), len(want))
		}
		if _, empty := got["user.empty"]; name == "with" && (len(got) != 18 || string(got["user.a"]) != "1" || string(got["user.long"]) != long || !empty) {
			t.Errorf("with: %d attributes, user.a %q, user.empty there: %v", len(got), got["user.a"], empty)
		}
	}
}
