package harness

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/pkg/xattr"
	"golang.org/x/sys/unix"
)

// PopulateSmall fills root with a small tree for bursts of changes: a few
// directories two levels deep, regular files with user xattrs and old
// mtimes, hardlink groups spanning directories, and a few symlinks.
func PopulateSmall(root string, rng *rand.Rand) error {
	dirs := []string{"", "a", "a/x", "b", "b/y", "c", "c/z", "d"}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	var files []string
	for i := range 40 {
		p := filepath.Join(dirs[rng.IntN(len(dirs))], fmt.Sprintf("f%d", i))
		if err := os.WriteFile(filepath.Join(root, p), randContent(rng, rng.IntN(3000)), 0o644); err != nil {
			return err
		}
		if rng.IntN(3) == 0 {
			if err := xattr.Set(filepath.Join(root, p), "user.k", randContent(rng, 1+rng.IntN(20))); err != nil {
				return err
			}
		}
		if rng.IntN(2) == 0 {
			if err := setTimes(filepath.Join(root, p), rng); err != nil {
				return err
			}
		}
		files = append(files, p)
	}
	for i := range 10 {
		from := files[rng.IntN(len(files))]
		to := filepath.Join(dirs[rng.IntN(len(dirs))], fmt.Sprintf("h%d", i))
		if err := os.Link(filepath.Join(root, from), filepath.Join(root, to)); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	for i := range 3 {
		if err := os.Symlink(files[rng.IntN(len(files))], filepath.Join(root, fmt.Sprintf("s%d", i))); err != nil {
			return err
		}
	}
	return nil
}

// Burst applies n random changes to the tree under root, one after the
// other as fast as they go: creates, mkdirs, appends, truncates, same-size
// same-mtime rewrites, chmod, chown (as root), utime (old and new times,
// nanoseconds included, of files and directories), user xattrs set and
// removed, renames of files and directories (within and across parents,
// over existing names, swaps with RENAME_EXCHANGE), hardlinks into other
// directories, deletes of files, of one link of a group and of whole
// subtrees, and type changes at a name (file ↔ directory). Changes the
// random pick made meaningless (a rename into its own subtree, over a
// non-empty directory) are skipped. It returns a log of what it did.
func Burst(root string, rng *rand.Rand, n int) ([]string, error) {
	var log []string
	for range n {
		files, dirs := list(root)
		var regs []string
		for _, f := range files {
			if fi, err := os.Lstat(filepath.Join(root, f)); err == nil && fi.Mode().IsRegular() {
				regs = append(regs, f)
			}
		}
		pick := func(s []string) string { return s[rng.IntN(len(s))] }
		abs := func(p string) string { return filepath.Join(root, p) }
		newName := func() string { return fmt.Sprintf("n%d", rng.IntN(400)) }
		dir := pick(dirs)
		var op string
		var err error
		k := rng.IntN(22)
		switch {
		case len(regs) < 10 && k%3 == 0:
			k = 0 // keep some files around
		case len(files) > 250 && k%2 == 0:
			k = 17 // keep the tree small
		case len(dirs) > 40 && k%2 == 0:
			k = 18
		}
		if len(regs) == 0 && k != 1 {
			k = 0
		}
		switch k {
		case 0:
			p := filepath.Join(dir, newName())
			op = "create " + p
			err = os.WriteFile(abs(p), randContent(rng, rng.IntN(2000)), 0o644)
		case 1:
			p := filepath.Join(dir, newName())
			op = "mkdir " + p
			err = os.Mkdir(abs(p), 0o755)
		case 2:
			p := pick(regs)
			op = "append " + p
			err = appendTo(abs(p), string(randContent(rng, 1+rng.IntN(100))))
		case 3:
			p := pick(regs)
			op = "truncate " + p
			err = os.Truncate(abs(p), int64(rng.IntN(500)))
		case 4:
			p := pick(regs)
			op = "rewrite same size and mtime " + p
			err = rewriteSameSize(abs(p), rng)
		case 5:
			p := pick(append(regs, dirs[1:]...))
			op = "chmod " + p
			mode := uint32(rng.IntN(0o10000))
			if fi, e := os.Lstat(abs(p)); e == nil && fi.IsDir() {
				mode |= 0o700
			}
			err = unix.Fchmodat(unix.AT_FDCWD, abs(p), mode, 0)
		case 6:
			p := pick(files)
			op = "chown " + p
			if os.Geteuid() == 0 {
				err = os.Lchown(abs(p), rng.IntN(3000), rng.IntN(3000))
			}
		case 7, 8:
			p := pick(append(regs, dirs...))
			op = "utime " + p
			err = setTimes(abs(p), rng)
		case 9:
			p := pick(append(regs, dirs...))
			name := fmt.Sprintf("user.k%d", rng.IntN(3))
			if rng.IntN(3) == 0 {
				op = "removexattr " + name + " " + p
				err = xattr.Remove(abs(p), name)
				if errors.Is(err, xattr.ENOATTR) {
					err = nil
				}
			} else {
				op = "setxattr " + name + " " + p
				err = xattr.Set(abs(p), name, randContent(rng, rng.IntN(30)))
			}
		case 10:
			from, to := pick(files), filepath.Join(dir, newName())
			op = "rename file " + from + " -> " + to
			err = os.Rename(abs(from), abs(to))
		case 11:
			from, to := pick(files), pick(files)
			op = "rename over " + from + " -> " + to
			err = os.Rename(abs(from), abs(to))
		case 12:
			a, b := pick(append(files, dirs[1:]...)), pick(append(files, dirs[1:]...))
			op = "swap " + a + " <-> " + b
			err = unix.Renameat2(unix.AT_FDCWD, abs(a), unix.AT_FDCWD, abs(b), unix.RENAME_EXCHANGE)
		case 13, 14:
			if len(dirs) < 2 {
				continue
			}
			from := pick(dirs[1:])
			to := filepath.Join(pick(dirs), newName())
			if rng.IntN(3) == 0 {
				to = filepath.Join(filepath.Dir(from), newName())
			}
			op = "rename dir " + from + " -> " + to
			err = os.Rename(abs(from), abs(to))
		case 15, 16:
			from := pick(regs)
			to := pick(dirs)
			for range 3 {
				if to != filepath.Dir(from) {
					break
				}
				to = pick(dirs)
			}
			to = filepath.Join(to, newName())
			op = "hardlink " + from + " -> " + to
			err = os.Link(abs(from), abs(to))
		case 17:
			p := pick(files)
			op = "delete " + p
			err = os.Remove(abs(p))
		case 18:
			if len(dirs) < 2 {
				continue
			}
			p := pick(dirs[1:])
			op = "rm -rf " + p
			err = os.RemoveAll(abs(p))
		case 19:
			p := pick(files)
			op = "type change to dir " + p
			if err = os.Remove(abs(p)); err == nil {
				err = os.Mkdir(abs(p), 0o755)
			}
		case 20:
			if len(dirs) < 2 {
				continue
			}
			p := pick(dirs[1:])
			op = "type change to file " + p
			if err = os.RemoveAll(abs(p)); err == nil {
				err = os.WriteFile(abs(p), randContent(rng, rng.IntN(100)), 0o644)
			}
		default:
			p := filepath.Join(dir, newName())
			op = "symlink " + p
			err = os.Symlink(pick(files), abs(p))
		}
		if err != nil && (errors.Is(err, fs.ErrExist) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.EISDIR) ||
			errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EINVAL) ||
			errors.Is(err, unix.EPERM) || errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EOPNOTSUPP)) {
			continue // the random pick did not make sense: not a change
		}
		if err != nil {
			return log, fmt.Errorf("%s: %w", op, err)
		}
		log = append(log, op)
	}
	return log, nil
}

// setTimes sets random access and modification times of p (not following a
// symlink): in the past with nanoseconds, or now.
func setTimes(p string, rng *rand.Rand) error {
	ts := []unix.Timespec{{Nsec: unix.UTIME_NOW}, {Nsec: unix.UTIME_NOW}}
	if rng.IntN(4) != 0 {
		ts = []unix.Timespec{
			{Sec: 1e9 + rng.Int64N(7e8), Nsec: rng.Int64N(1e9)},
			{Sec: 1e9 + rng.Int64N(7e8), Nsec: rng.Int64N(1e9)},
		}
	}
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func randContent(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + rng.IntN(26))
	}
	return b
}
