package ops

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/georep/georep/rpc/gfid"
)

func TestValidateEntry(t *testing.T) {
	g, p := gfid.New(), gfid.New()
	reservedErr := errors.New("reserved")
	reserved := func(parent gfid.GFID, name string) error {
		if parent == gfid.Root && name == ".own" {
			return reservedErr
		}
		return nil
	}
	for _, tc := range []struct {
		name string
		e    Entry
		want error // an errno, reservedErr, or nil
	}{
		{"create", Entry{Op: OpCreate, GFID: g, Parent: p, Name: "f", Mode: syscall.S_IFREG | 0o644}, nil},
		{"create without type", Entry{Op: OpCreate, GFID: g, Parent: p, Name: "f"}, nil},
		{"unknown op", Entry{Op: Op(99), GFID: g, Parent: p, Name: "f"}, syscall.EINVAL},
		{"zero gfid", Entry{Op: OpCreate, Parent: p, Name: "f"}, syscall.EINVAL},
		{"root gfid", Entry{Op: OpMkdir, GFID: gfid.Root, Parent: p, Name: "d"}, syscall.EPERM},
		{"park gfid", Entry{Op: OpMkdir, GFID: gfid.Park, Parent: p, Name: "d"}, syscall.EPERM},
		{"zero parent", Entry{Op: OpCreate, GFID: g, Name: "f"}, syscall.EINVAL},
		{"name with slash", Entry{Op: OpCreate, GFID: g, Parent: p, Name: "a/b"}, syscall.EINVAL},
		{"name too long is EINVAL", Entry{Op: OpCreate, GFID: g, Parent: p, Name: strings.Repeat("n", 256)}, syscall.EINVAL},
		{"dotdot", Entry{Op: OpUnlink, GFID: g, Parent: p, Name: ".."}, syscall.EINVAL},
		{"reserved name", Entry{Op: OpCreate, GFID: g, Parent: gfid.Root, Name: ".own"}, reservedErr},
		{"reserved name elsewhere", Entry{Op: OpCreate, GFID: g, Parent: p, Name: ".own"}, nil},
		{"rename to reserved", Entry{Op: OpRename, GFID: g, Parent: p, Name: "a", NewParent: gfid.Root, NewName: ".own"}, reservedErr},
		{"rename to bad name", Entry{Op: OpRename, GFID: g, Parent: p, Name: "a", NewParent: p, NewName: ""}, syscall.EINVAL},
		{"rename to zero parent", Entry{Op: OpRename, GFID: g, Parent: p, Name: "a", NewName: "b"}, syscall.EINVAL},
		{"create of a dir mode", Entry{Op: OpCreate, GFID: g, Parent: p, Name: "f", Mode: syscall.S_IFDIR}, syscall.EINVAL},
		{"mkdir of a file mode", Entry{Op: OpMkdir, GFID: g, Parent: p, Name: "d", Mode: syscall.S_IFREG}, syscall.EINVAL},
		{"mknod fifo", Entry{Op: OpMknod, GFID: g, Parent: p, Name: "p", Mode: syscall.S_IFIFO}, nil},
		{"mknod dir", Entry{Op: OpMknod, GFID: g, Parent: p, Name: "p", Mode: syscall.S_IFDIR}, syscall.EINVAL},
		{"mknod symlink", Entry{Op: OpMknod, GFID: g, Parent: p, Name: "p", Mode: syscall.S_IFLNK}, syscall.EINVAL},
		{"symlink", Entry{Op: OpSymlink, GFID: g, Parent: p, Name: "l", Target: "../x"}, nil},
		{"symlink empty", Entry{Op: OpSymlink, GFID: g, Parent: p, Name: "l"}, syscall.EINVAL},
		{"symlink NUL", Entry{Op: OpSymlink, GFID: g, Parent: p, Name: "l", Target: "a\x00b"}, syscall.EINVAL},
		{"symlink PATH_MAX", Entry{Op: OpSymlink, GFID: g, Parent: p, Name: "l", Target: strings.Repeat("t", syscall.PathMax)}, syscall.EINVAL},
	} {
		err := ValidateEntry(tc.e, reserved)
		switch {
		case tc.want == nil && err != nil:
			t.Errorf("%s: %v, want nil", tc.name, err)
		case tc.want != nil && !errors.Is(err, tc.want):
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if err := ValidateEntry(Entry{Op: OpCreate, GFID: g, Parent: gfid.Root, Name: ".own"}, nil); err != nil {
		t.Errorf("nil reserved: %v", err)
	}
}
