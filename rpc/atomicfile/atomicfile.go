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

// write writes path in root; errors name it as shown.
func write(root *os.Root, path string, data []byte, perm fs.FileMode, shown string) error {
	dir, base := filepath.Split(path)
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	tmp := filepath.Join(dir, "."+base+".tmp-"+hex.EncodeToString(suffix[:]))
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", shown, err)
	}
	renamed := false
	defer func() {
		if !renamed {
			_ = root.Remove(tmp)
		}
	}()
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
	if err := root.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", shown, err)
	}
	renamed = true
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
