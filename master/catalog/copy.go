package catalog

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Copy copies the catalog at src to dst, which must not exist, for a look
// that must not change the original (the dry run crawls against the copy).
// It copies the store's files, and whatever a crash left beside them
// (src.new, src.v1: an interrupted creation or migration), so that
// Open(dst) finds the same catalog, migrated there if src is of schema 1.
// It reads src and writes nothing there; src must not be open meanwhile
// (an open store changes its files). With no catalog at src it returns an
// error wrapping fs.ErrNotExist.
func Copy(src, dst string) error {
	copied := false
	for _, suffix := range []string{"", ".new", ".v1"} {
		err := copyTree(src+suffix, dst+suffix)
		if errors.Is(err, fs.ErrNotExist) && !exists(src+suffix) {
			continue
		}
		if err != nil {
			return fmt.Errorf("catalog: copy %s to %s: %w", src+suffix, dst+suffix, err)
		}
		copied = true
	}
	if !copied {
		return fmt.Errorf("catalog: copy %s: %w", src, fs.ErrNotExist)
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// copyTree copies a regular file, or a directory of them (recursively).
func copyTree(src, dst string) error {
	st, err := os.Lstat(src)
	if err != nil {
		return err
	}
	switch {
	case st.Mode().IsRegular():
		return copyFile(src, dst)
	case !st.IsDir():
		return fmt.Errorf("%s: a %s", src, st.Mode().Type())
	}
	if err := os.Mkdir(dst, 0o700); err != nil {
		return err
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := copyTree(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}
