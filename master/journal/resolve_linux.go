package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/eintr"
)

var (
	// ErrStale is returned by Resolver.Open for a directory that no longer
	// exists.
	ErrStale = errors.New("directory no longer exists")
	// ErrOutside is returned by Resolver.Open for a directory that is no
	// longer beneath the source (moved out of it).
	ErrOutside = errors.New("directory is outside the source")
)

// canonical makes path absolute and resolves its symbolic links, as the
// kernel reports the path of an open descriptor.
func canonical(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

// within reports whether path is root or beneath it.
func within(path, root string) bool {
	if root == "/" {
		return strings.HasPrefix(path, "/")
	}
	return path == root || strings.HasPrefix(path, root+"/")
}

// openHandle opens the directory h names on the filesystem of mountFD with
// flags and returns its descriptor and current path. A directory that is
// gone is ErrStale.
func openHandle(mountFD int, h Handle, flags int) (int, string, error) {
	if len(h.Bytes) == 0 || len(h.Bytes) > maxHandleBytes {
		return -1, "", fmt.Errorf("open by handle %s: %w", h, unix.EINVAL)
	}
	var fd int
	err := eintr.Retry(func() (err error) {
		fd, err = unix.OpenByHandleAt(mountFD, unix.NewFileHandle(h.Type, h.Bytes), flags|unix.O_CLOEXEC)
		return err
	})
	switch {
	case errors.Is(err, unix.ESTALE), errors.Is(err, unix.ENOENT):
		return -1, "", fmt.Errorf("open by handle %s: %w", h, ErrStale)
	case err != nil:
		return -1, "", fmt.Errorf("open by handle %s: %w", h, err)
	}
	path, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		unix.Close(fd)
		return -1, "", fmt.Errorf("open by handle %s: %w", h, err)
	}
	// A removed directory's path ends in " (deleted)"; so may a real
	// name: a link count of 0 tells them apart.
	var st unix.Stat_t
	if err := eintr.Retry(func() error { return unix.Fstat(fd, &st) }); err != nil {
		unix.Close(fd)
		return -1, "", fmt.Errorf("open by handle %s: fstat: %w", h, err)
	}
	if st.Nlink == 0 {
		unix.Close(fd)
		return -1, "", fmt.Errorf("open by handle %s (%s): %w", h, path, ErrStale)
	}
	return fd, path, nil
}

// openMountFD opens dir as the mount descriptor of open_by_handle_at(2),
// which refuses an O_PATH descriptor (EBADF).
func openMountFD(dir string) (int, error) {
	return unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

// Resolver turns the directory handles of journal records into open
// directories of the source. It holds a descriptor of the source (the mount
// descriptor for open_by_handle_at(2), which needs CAP_DAC_READ_SEARCH) and
// may be used by several goroutines at once.
type Resolver struct {
	source  string
	mountFD int
}

// NewResolver opens source (made absolute, symbolic links resolved).
func NewResolver(source string) (*Resolver, error) {
	src, err := canonical(source)
	if err != nil {
		return nil, fmt.Errorf("journal resolver: source: %w", err)
	}
	var fd int
	err = eintr.Retry(func() (err error) {
		fd, err = openMountFD(src)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("journal resolver: open %s: %w", src, err)
	}
	return &Resolver{source: src, mountFD: fd}, nil
}

// Source is the resolved source path.
func (r *Resolver) Source() string { return r.source }

// Open opens the directory h names, O_RDONLY|O_DIRECTORY, so that the caller
// can fstatat(2) and openat(2) names in it and must close it, and returns its
// path relative to the source ("." for the source itself). It fails with
// ErrStale when the directory no longer exists and ErrOutside when it is no
// longer beneath the source.
func (r *Resolver) Open(h Handle) (fd int, rel string, err error) {
	fd, path, err := openHandle(r.mountFD, h, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return -1, "", err
	}
	rel, ok := relPath(path, r.source)
	if !ok {
		unix.Close(fd)
		return -1, "", fmt.Errorf("open by handle %s (%s): %w", h, path, ErrOutside)
	}
	return fd, rel, nil
}

// relPath returns path relative to root, if it is within it.
func relPath(path, root string) (string, bool) {
	switch {
	case !within(path, root):
		return "", false
	case path == root:
		return ".", true
	case root == "/":
		return path[1:], true
	}
	return path[len(root)+1:], true
}

// Close closes the source descriptor. It must not run concurrently with Open.
func (r *Resolver) Close() error {
	if r.mountFD < 0 {
		return nil
	}
	err := unix.Close(r.mountFD)
	r.mountFD = -1
	if err != nil {
		return fmt.Errorf("journal resolver: %w", err)
	}
	return nil
}
