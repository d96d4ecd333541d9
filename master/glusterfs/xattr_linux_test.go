package glusterfs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/gfid"
)

const (
	masterVol = "a25c04a0-5fac-42d0-a9b3-64589592fabd"
	slaveVol  = "396c3db8-0ab5-444f-9604-0ad69fd64519"
)

// trustedDir returns a directory whose file system takes trusted.* xattrs,
// skipping the test when that is not possible (not root).
func trustedDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Lsetxattr(dir, "trusted.georep-probe", []byte("x"), 0); err != nil {
		t.Skipf("trusted.* xattrs unavailable here (need root and a file system that takes them): %v", err)
	}
	return dir
}

func TestTimeEncoding(t *testing.T) {
	for _, tc := range []struct {
		t    time.Time
		want []byte
	}{
		{time.Unix(0, 0), []byte{0, 0, 0, 0, 0, 0, 0, 0}},
		{time.Unix(1795570073, 5), []byte{0x6b, 0x06, 0x39, 0x99, 0, 0, 0, 5}},
		{time.Unix(1<<32-1, 999999999), []byte{0xff, 0xff, 0xff, 0xff, 0x3b, 0x9a, 0xc9, 0xff}},
	} {
		b, err := EncodeTime(tc.t)
		if err != nil || !bytes.Equal(b, tc.want) {
			t.Errorf("EncodeTime(%v) = %x, %v; want %x", tc.t, b, err, tc.want)
		}
		back, err := DecodeTime(b)
		if err != nil || !back.Equal(tc.t) {
			t.Errorf("DecodeTime(%x) = %v, %v", b, back, err)
		}
	}
	for _, bad := range []time.Time{time.Unix(-1, 0), time.Unix(1<<32, 0)} {
		if _, err := EncodeTime(bad); !errors.Is(err, ErrBadXattr) {
			t.Errorf("EncodeTime(%v): %v", bad, err)
		}
	}
	for _, bad := range [][]byte{nil, {1, 2, 3}, {0, 0, 0, 1, 0x3b, 0x9a, 0xca, 0}, make([]byte, 9)} {
		if _, err := DecodeTime(bad); !errors.Is(err, ErrBadXattr) {
			t.Errorf("DecodeTime(%x): %v", bad, err)
		}
	}
}

func TestKeys(t *testing.T) {
	if got := StimeKey(masterVol, slaveVol); got != "trusted.glusterfs."+masterVol+"."+slaveVol+".stime" {
		t.Error(got)
	}
	if got := EntryStimeKey(masterVol, slaveVol); got != "trusted.glusterfs."+masterVol+"."+slaveVol+".entry_stime" {
		t.Error(got)
	}
	if got := XTimeKey(masterVol); got != "trusted.glusterfs."+masterVol+".xtime" {
		t.Error(got)
	}
}

func TestStimeRoundTrip(t *testing.T) {
	dir := trustedDir(t)
	for _, f := range []struct {
		name string
		get  func(string, string, string) (time.Time, bool, error)
		set  func(string, string, string, time.Time) error
		key  string
	}{
		{"stime", Stime, SetStime, StimeKey(masterVol, slaveVol)},
		{"entry_stime", EntryStime, SetEntryStime, EntryStimeKey(masterVol, slaveVol)},
	} {
		t.Run(f.name, func(t *testing.T) {
			if got, ok, err := f.get(dir, masterVol, slaveVol); ok || err != nil || !got.IsZero() {
				t.Fatalf("unset: %v, %v, %v", got, ok, err)
			}
			want := time.Unix(1795570073, 0)
			if err := f.set(dir, masterVol, slaveVol, want); err != nil {
				t.Fatal(err)
			}
			got, ok, err := f.get(dir, masterVol, slaveVol)
			if !ok || err != nil || !got.Equal(want) {
				t.Fatalf("got %v, %v, %v; want %v", got, ok, err, want)
			}
			// gsyncd's own encoding: struct.pack('!II', sec, 0).
			raw := make([]byte, 16)
			n, err := unix.Lgetxattr(dir, f.key, raw)
			if err != nil || !bytes.Equal(raw[:n], []byte{0x6b, 0x06, 0x39, 0x99, 0, 0, 0, 0}) {
				t.Errorf("raw %s = %x, %v", f.key, raw[:n], err)
			}
			// Another session's mark is another key.
			if _, ok, _ := f.get(dir, masterVol, masterVol); ok {
				t.Error("stime of another session found")
			}
		})
	}
	if err := unix.Lsetxattr(dir, StimeKey(masterVol, masterVol), []byte{1, 2, 3}, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Stime(dir, masterVol, masterVol); !errors.Is(err, ErrBadXattr) {
		t.Errorf("short stime: %v", err)
	}
	if _, _, err := Stime(filepath.Join(dir, "missing"), masterVol, slaveVol); !errors.Is(err, unix.ENOENT) {
		t.Errorf("missing brick root: %v", err)
	}
	xt := time.Unix(1795570000, 123)
	b, _ := EncodeTime(xt)
	if err := unix.Lsetxattr(dir, XTimeKey(masterVol), b, 0); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := XTime(dir, masterVol); !ok || err != nil || !got.Equal(xt) {
		t.Errorf("XTime = %v, %v, %v", got, ok, err)
	}
}

func TestBrickGFID(t *testing.T) {
	dir := trustedDir(t)
	g := gfid.New()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", filepath.Join(dir, "s")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(file, GFIDXattr, g[:], 0); err != nil {
		t.Fatal(err)
	}
	if got, err := BrickGFID(file); err != nil || got != g {
		t.Errorf("BrickGFID = %v, %v", got, err)
	}
	d, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(d)
	if got, err := BrickGFIDAt(d, "f"); err != nil || got != g {
		t.Errorf("BrickGFIDAt = %v, %v", got, err)
	}
	// A symlink is not followed: it has no gfid of its own here. (On a
	// brick, trusted.* xattrs of symlinks are allowed; on tmpfs they may be
	// refused with EPERM.)
	if _, err := BrickGFID(filepath.Join(dir, "s")); !errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.EPERM) {
		t.Errorf("BrickGFID(symlink) = %v, want ENODATA", err)
	}
	if _, err := BrickGFIDAt(d, "s"); !errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.EPERM) {
		t.Errorf("BrickGFIDAt(symlink) = %v, want ENODATA", err)
	}
	if err := unix.Lsetxattr(file, GFIDXattr, g[:8], 0); err != nil {
		t.Fatal(err)
	}
	if _, err := BrickGFID(file); !errors.Is(err, ErrBadXattr) {
		t.Errorf("short gfid: %v", err)
	}
}

func TestIsLinkto(t *testing.T) {
	dir := trustedDir(t)
	d, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(d)
	mk := func(name string, mode os.FileMode, data string, linkto bool) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if linkto {
			if err := unix.Lsetxattr(p, LinktoXattr, []byte("vol-client-1\x00"), 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	mk("linkto", os.ModeSticky, "", true)
	mk("sticky-no-xattr", os.ModeSticky, "", false)
	mk("xattr-not-sticky", 0o644, "", true)
	mk("sticky-and-perms", os.ModeSticky|0o600, "", true)
	mk("sticky-with-data", os.ModeSticky, "data", true)
	if err := os.Mkdir(filepath.Join(dir, "dir"), 0o755|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"linkto", true},
		{"sticky-no-xattr", false},
		{"xattr-not-sticky", false},
		{"sticky-and-perms", false},
		{"sticky-with-data", false},
		{"dir", false},
		{"missing", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := IsLinkto(filepath.Join(dir, tc.name))
			if err != nil || got != tc.want {
				t.Errorf("IsLinkto = %v, %v; want %v", got, err, tc.want)
			}
			var stx unix.Statx_t
			if err := unix.Statx(d, tc.name, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_TYPE|unix.STATX_MODE|unix.STATX_SIZE, &stx); err != nil {
				if tc.name == "missing" {
					return
				}
				t.Fatal(err)
			}
			got, err = IsLinktoAt(d, tc.name, &stx)
			if err != nil || got != tc.want {
				t.Errorf("IsLinktoAt = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestBrickInternal(t *testing.T) {
	for name, want := range map[string]bool{
		".glusterfs": true, ".trashcan": true, ".glusterfs-anonymous-inode-a25c04a0-5fac-42d0-a9b3-64589592fabd": true,
		"glusterfs": false, ".glusterfsx": false, "data": false, ".shard": false, "lost+found": false,
	} {
		if got := BrickInternal(name); got != want {
			t.Errorf("BrickInternal(%q) = %v", name, got)
		}
	}
}
