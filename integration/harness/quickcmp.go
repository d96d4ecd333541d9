package harness

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// QuickCompare compares the source tree src with the replica dst (whose
// top-level .georep is ignored) by names, types, modes, owners, sizes,
// modification times and symlink targets, one directory at a time, without
// reading contents or keeping more than the listings of the directories being
// walked: a cheap check to poll on a big tree before a Compare. It returns the
// first difference it finds, "" when it finds none.
func QuickCompare(src, dst string) (string, error) {
	return quickDir(src, dst, ".")
}

func quickDir(src, dst, rel string) (string, error) {
	if d, err := quickEntry(src, dst, rel); d != "" || err != nil {
		return d, err
	}
	a, err := readNames(filepath.Join(src, rel))
	if err != nil {
		return "", err
	}
	b, err := readNames(filepath.Join(dst, rel))
	if err != nil {
		return fmt.Sprintf("%q: cannot list on the replica: %v", rel, err), nil
	}
	if rel == "." {
		b = slices.DeleteFunc(b, func(n string) bool { return n == ".georep" })
	}
	if !slices.Equal(a, b) {
		for _, n := range a {
			if _, ok := slices.BinarySearch(b, n); !ok {
				return fmt.Sprintf("%q: missing on the replica", filepath.Join(rel, n)), nil
			}
		}
		for _, n := range b {
			if _, ok := slices.BinarySearch(a, n); !ok {
				return fmt.Sprintf("%q: on the replica only", filepath.Join(rel, n)), nil
			}
		}
	}
	for _, n := range a {
		p := filepath.Join(rel, n)
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(src, p), &st); err != nil {
			return "", fmt.Errorf("lstat %s: %w", filepath.Join(src, p), err)
		}
		var d string
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			d, err = quickDir(src, dst, p)
		} else {
			d, err = quickEntry(src, dst, p)
		}
		if d != "" || err != nil {
			return d, err
		}
	}
	return "", nil
}

func quickEntry(src, dst, rel string) (string, error) {
	var x, y unix.Stat_t
	if err := unix.Lstat(filepath.Join(src, rel), &x); err != nil {
		return "", fmt.Errorf("lstat %s: %w", filepath.Join(src, rel), err)
	}
	if err := unix.Lstat(filepath.Join(dst, rel), &y); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Sprintf("%q: missing on the replica", rel), nil
		}
		return "", fmt.Errorf("lstat %s: %w", filepath.Join(dst, rel), err)
	}
	switch {
	case x.Mode != y.Mode:
		return fmt.Sprintf("%q: mode %o on the source, %o on the replica", rel, x.Mode, y.Mode), nil
	case x.Uid != y.Uid || x.Gid != y.Gid:
		return fmt.Sprintf("%q: owner %d:%d on the source, %d:%d on the replica", rel, x.Uid, x.Gid, y.Uid, y.Gid), nil
	case x.Mode&unix.S_IFMT == unix.S_IFREG && x.Size != y.Size:
		return fmt.Sprintf("%q: %d bytes on the source, %d on the replica", rel, x.Size, y.Size), nil
	case x.Mtim != y.Mtim:
		return fmt.Sprintf("%q: mtime %d.%09d on the source, %d.%09d on the replica", rel, x.Mtim.Sec, x.Mtim.Nsec, y.Mtim.Sec, y.Mtim.Nsec), nil
	}
	if x.Mode&unix.S_IFMT == unix.S_IFLNK {
		a, err := os.Readlink(filepath.Join(src, rel))
		if err != nil {
			return "", err
		}
		if b, _ := os.Readlink(filepath.Join(dst, rel)); a != b {
			return fmt.Sprintf("%q: symlink target %q on the source, %q on the replica", rel, a, b), nil
		}
	}
	return "", nil
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}
