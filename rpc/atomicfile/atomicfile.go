// Package atomicfile replaces small state files (the master's work dir, the
// slave's .georep, certificates) so that a crash leaves either the old or
// the new content, never a mix or nothing: write a temporary file beside
// the target, fsync it, rename it over the target, fsync the directory.
// gsyncd's counterpart is syncdutils.py's atomic_file / the stime writes.
package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Write replaces path with data, created with permissions perm (not
// reduced by the umask).
func Write(path string, data []byte, perm fs.FileMode) error {
	r, err := os.OpenRoot(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer r.Close()
	return write(r, filepath.Base(path), data, perm, path)
}

// WriteIn is Write for path (slash-separated) relative to root, never
// leaving it: how the slave writes inside the replica it confines.
func WriteIn(root *os.Root, path string, data []byte, perm fs.FileMode) error {
	return write(root, path, data, perm, path)
}

// CreateIn is WriteIn for a file that must be written once: it links the
// temporary file to path, which fails with fs.ErrExist when path exists
// (another process was first: several slave nodes share one volume's
// state), and never replaces it.
func CreateIn(root *os.Root, path string, data []byte, perm fs.FileMode) error {
	return writeWith(root, path, data, perm, path, func(tmp string) error { return root.Link(tmp, path) })
}

// write writes path in root; errors name it as shown.
func write(root *os.Root, path string, data []byte, perm fs.FileMode, shown string) error {
	return writeWith(root, path, data, perm, shown, func(tmp string) error { return root.Rename(tmp, path) })
}

// writeWith writes a temporary file beside path and puts it in place with
// place (a rename, or a link); the temporary name is removed in any case.
func writeWith(root *os.Root, path string, data []byte, perm fs.FileMode, shown string, place func(tmp string) error) error {
	dir, base := filepath.Split(path)
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	tmp := filepath.Join(dir, "."+base+".tmp-"+hex.EncodeToString(suffix[:]))
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", shown, err)
	}
	defer func() { _ = root.Remove(tmp) }()
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", shown, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", shown, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", shown, err)
	}
	if err := place(tmp); err != nil {
		return fmt.Errorf("put %s in place: %w", shown, err)
	}
	// The rename is durable once the directory is.
	if dir == "" {
		dir = "."
	}
	d, err := root.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory of %s: %w", shown, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("sync directory of %s: %w", shown, err)
	}
	return nil
}
