package ops

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"
)

func TestValidateName(t *testing.T) {
	tests := []struct {
		name    string
		wantErr string
		errno   error
	}{
		{name: "a"},
		{name: "with space and \xff\xfe bytes"},
		{name: "..."},
		{name: ".hidden"},
		{name: strings.Repeat("x", 255)},
		{name: "", wantErr: "empty", errno: ErrInvalid},
		{name: ".", wantErr: "not names", errno: ErrInvalid},
		{name: "..", wantErr: "not names", errno: ErrInvalid},
		{name: "a/b", wantErr: "'/'", errno: ErrInvalid},
		{name: "/", wantErr: "'/'", errno: ErrInvalid},
		{name: "a\x00b", wantErr: "NUL", errno: ErrInvalid},
		{name: strings.Repeat("x", 256), wantErr: "longer than 255", errno: ErrNameTooLong},
	}
	for _, tt := range tests {
		t.Run(truncName(tt.name), func(t *testing.T) {
			err := ValidateName(tt.name)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("ValidateName(%q) = %v, want nil", tt.name, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("ValidateName(%q) = %v, want error containing %q", tt.name, err, tt.wantErr)
			case tt.errno != nil && !errors.Is(err, tt.errno):
				t.Fatalf("ValidateName(%q) = %v, not %v", tt.name, err, tt.errno)
			}
		})
	}
}

func TestOpString(t *testing.T) {
	want := []string{"CREATE", "MKDIR", "MKNOD", "LINK", "SYMLINK", "RENAME", "UNLINK", "RMDIR"}
	for i, w := range want {
		if got := Op(i + 1).String(); got != w {
			t.Errorf("Op(%d) = %q, want %q", i+1, got, w)
		}
	}
	if got := Op(99).String(); got != "Op(99)" {
		t.Errorf("Op(99) = %q", got)
	}
}

func TestTypeOfMode(t *testing.T) {
	tests := []struct {
		mode uint32
		want FileType
		name string
	}{
		{0o100644, TypeRegular, "regular file"},
		{0o040755, TypeDir, "directory"},
		{0o120777, TypeSymlink, "symlink"},
		{0o010644, TypeFifo, "fifo"},
		{0o020666, TypeChar, "character device"},
		{0o060660, TypeBlock, "block device"},
		{0o140600, TypeSocket, "socket"},
		{0o644, 0, "FileType(0)"},
		{0o170000, 0, "FileType(0)"},
	}
	for _, tt := range tests {
		got := TypeOfMode(tt.mode)
		if got != tt.want || got.String() != tt.name {
			t.Errorf("TypeOfMode(%#o) = %v (%q), want %v (%q)", tt.mode, int(got), got, int(tt.want), tt.name)
		}
	}
}

func TestErrno(t *testing.T) {
	tests := []struct {
		err  error
		want syscall.Errno
	}{
		{nil, 0},
		{syscall.ESTALE, ErrStale},
		{fmt.Errorf("open: %w", &fs.PathError{Op: "open", Path: "x", Err: syscall.ENOTDIR}), ErrNotDir},
		{fmt.Errorf("stat: %w", fs.ErrNotExist), ErrNotFound},
		{ValidateName(strings.Repeat("x", 300)), ErrNameTooLong},
		{errors.New("something else"), syscall.EIO},
	}
	for _, tt := range tests {
		if got := Errno(tt.err); got != tt.want {
			t.Errorf("Errno(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	// A sentinel is the errno: errors.Is matches an error made from a
	// system call, and fs.ErrNotExist matches ErrNotFound.
	if err := fmt.Errorf("x: %w", syscall.ESTALE); !errors.Is(err, ErrStale) {
		t.Errorf("errors.Is(%v, ErrStale) = false", err)
	}
	if !errors.Is(ErrNotFound, fs.ErrNotExist) || !errors.Is(ErrExists, fs.ErrExist) {
		t.Error("ErrNotFound is not fs.ErrNotExist, or ErrExists not fs.ErrExist")
	}
}
