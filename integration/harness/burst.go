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
		b := newBurstChange(root, rng)
		op, err := b.apply(b.kind())
		if op == "" || meaningless(err, unix.EOPNOTSUPP) {
			continue // the random pick did not make sense: not a change
		}
		if err != nil {
			return log, fmt.Errorf("%s: %w", op, err)
		}
		log = append(log, op)
	}
	return log, nil
}

// treePick is the tree under root as one random change sees it: its
// files (regular files and symlinks) and directories ("." first), and the
// random source every choice is drawn from, in order, so that a seed
// gives the same changes.
type treePick struct {
	root        string
	rng         *rand.Rand
	files, dirs []string
}

func newTreePick(root string, rng *rand.Rand) treePick {
	files, dirs := list(root)
	return treePick{root: root, rng: rng, files: files, dirs: dirs}
}

func (t *treePick) pick(s []string) string { return s[t.rng.IntN(len(s))] }

func (t *treePick) abs(p string) string { return filepath.Join(t.root, p) }

// burstChange is one change of a Burst: the tree, its regular files and
// the directory a new name goes into.
type burstChange struct {
	treePick
	regs []string
	dir  string
}

func newBurstChange(root string, rng *rand.Rand) *burstChange {
	b := &burstChange{treePick: newTreePick(root, rng)}
	for _, f := range b.files {
		if fi, err := os.Lstat(b.abs(f)); err == nil && fi.Mode().IsRegular() {
			b.regs = append(b.regs, f)
		}
	}
	b.dir = b.pick(b.dirs)
	return b
}

func (b *burstChange) newName() string { return fmt.Sprintf("n%d", b.rng.IntN(400)) }

// kind draws the kind of change, steered to keep some files around and the
// tree small.
func (b *burstChange) kind() int {
	k := b.rng.IntN(22)
	switch {
	case len(b.regs) < 10 && k%3 == 0:
		k = 0 // keep some files around
	case len(b.files) > 250 && k%2 == 0:
		k = 17 // keep the tree small
	case len(b.dirs) > 40 && k%2 == 0:
		k = 18
	}
	if len(b.regs) == 0 && k != 1 {
		k = 0
	}
	return k
}

// apply makes the change of kind k and says what it did; op is "" when
// there was nothing to do it to.
func (b *burstChange) apply(k int) (op string, err error) {
	switch k {
	case 0:
		return b.create()
	case 1:
		return b.mkdir()
	case 2:
		return b.append()
	case 3:
		return b.truncate()
	case 4:
		return b.rewrite()
	case 5:
		return b.chmod()
	case 6:
		return b.chown()
	case 7, 8:
		return b.utime()
	case 9:
		return b.xattr()
	case 10:
		return b.renameFile()
	case 11:
		return b.renameOver()
	case 12:
		return b.swap()
	case 13, 14:
		return b.renameDir()
	case 15, 16:
		return b.hardlink()
	case 17:
		return b.delete()
	case 18:
		return b.removeTree()
	case 19:
		return b.toDir()
	case 20:
		return b.toFile()
	default:
		return b.symlink()
	}
}

func (b *burstChange) create() (string, error) {
	p := filepath.Join(b.dir, b.newName())
	return "create " + p, os.WriteFile(b.abs(p), randContent(b.rng, b.rng.IntN(2000)), 0o644)
}

func (b *burstChange) mkdir() (string, error) {
	p := filepath.Join(b.dir, b.newName())
	return "mkdir " + p, os.Mkdir(b.abs(p), 0o755)
}

func (b *burstChange) append() (string, error) {
	p := b.pick(b.regs)
	return "append " + p, appendTo(b.abs(p), string(randContent(b.rng, 1+b.rng.IntN(100))))
}

func (b *burstChange) truncate() (string, error) {
	p := b.pick(b.regs)
	return "truncate " + p, os.Truncate(b.abs(p), int64(b.rng.IntN(500)))
}

func (b *burstChange) rewrite() (string, error) {
	p := b.pick(b.regs)
	return "rewrite same size and mtime " + p, rewriteSameSize(b.abs(p), b.rng)
}

func (b *burstChange) chmod() (string, error) {
	p := b.pick(append(b.regs, b.dirs[1:]...))
	mode := uint32(b.rng.IntN(0o10000))
	if fi, e := os.Lstat(b.abs(p)); e == nil && fi.IsDir() {
		mode |= 0o700
	}
	return "chmod " + p, unix.Fchmodat(unix.AT_FDCWD, b.abs(p), mode, 0)
}

func (b *burstChange) chown() (op string, err error) {
	p := b.pick(b.files)
	if os.Geteuid() == 0 {
		err = os.Lchown(b.abs(p), b.rng.IntN(3000), b.rng.IntN(3000))
	}
	return "chown " + p, err
}

func (b *burstChange) utime() (string, error) {
	p := b.pick(append(b.regs, b.dirs...))
	return "utime " + p, setTimes(b.abs(p), b.rng)
}

func (b *burstChange) xattr() (string, error) {
	p := b.pick(append(b.regs, b.dirs...))
	name := fmt.Sprintf("user.k%d", b.rng.IntN(3))
	if b.rng.IntN(3) == 0 {
		err := xattr.Remove(b.abs(p), name)
		if errors.Is(err, xattr.ENOATTR) {
			err = nil
		}
		return "removexattr " + name + " " + p, err
	}
	return "setxattr " + name + " " + p, xattr.Set(b.abs(p), name, randContent(b.rng, b.rng.IntN(30)))
}

func (b *burstChange) renameFile() (string, error) {
	from, to := b.pick(b.files), filepath.Join(b.dir, b.newName())
	return "rename file " + from + " -> " + to, os.Rename(b.abs(from), b.abs(to))
}

func (b *burstChange) renameOver() (string, error) {
	from, to := b.pick(b.files), b.pick(b.files)
	return "rename over " + from + " -> " + to, os.Rename(b.abs(from), b.abs(to))
}

func (b *burstChange) swap() (string, error) {
	x, y := b.pick(append(b.files, b.dirs[1:]...)), b.pick(append(b.files, b.dirs[1:]...))
	return "swap " + x + " <-> " + y, unix.Renameat2(unix.AT_FDCWD, b.abs(x), unix.AT_FDCWD, b.abs(y), unix.RENAME_EXCHANGE)
}

// renameDir moves a directory under another one or, one time in three,
// within its parent.
func (b *burstChange) renameDir() (string, error) {
	if len(b.dirs) < 2 {
		return "", nil
	}
	from := b.pick(b.dirs[1:])
	to := filepath.Join(b.pick(b.dirs), b.newName())
	if b.rng.IntN(3) == 0 {
		to = filepath.Join(filepath.Dir(from), b.newName())
	}
	return "rename dir " + from + " -> " + to, os.Rename(b.abs(from), b.abs(to))
}

// hardlink links a regular file into another directory (three tries to
// draw one).
func (b *burstChange) hardlink() (string, error) {
	from := b.pick(b.regs)
	to := b.pick(b.dirs)
	for range 3 {
		if to != filepath.Dir(from) {
			break
		}
		to = b.pick(b.dirs)
	}
	to = filepath.Join(to, b.newName())
	return "hardlink " + from + " -> " + to, os.Link(b.abs(from), b.abs(to))
}

func (b *burstChange) delete() (string, error) {
	p := b.pick(b.files)
	return "delete " + p, os.Remove(b.abs(p))
}

func (b *burstChange) removeTree() (string, error) {
	if len(b.dirs) < 2 {
		return "", nil
	}
	p := b.pick(b.dirs[1:])
	return "rm -rf " + p, os.RemoveAll(b.abs(p))
}

func (b *burstChange) toDir() (string, error) {
	p := b.pick(b.files)
	err := os.Remove(b.abs(p))
	if err == nil {
		err = os.Mkdir(b.abs(p), 0o755)
	}
	return "type change to dir " + p, err
}

func (b *burstChange) toFile() (string, error) {
	if len(b.dirs) < 2 {
		return "", nil
	}
	p := b.pick(b.dirs[1:])
	err := os.RemoveAll(b.abs(p))
	if err == nil {
		err = os.WriteFile(b.abs(p), randContent(b.rng, b.rng.IntN(100)), 0o644)
	}
	return "type change to file " + p, err
}

func (b *burstChange) symlink() (string, error) {
	p := filepath.Join(b.dir, b.newName())
	return "symlink " + p, os.Symlink(b.pick(b.files), b.abs(p))
}

// meaningless reports an error that says the random pick did not make
// sense (a name taken or gone, a rename into its own subtree or over a
// non-empty directory, a type at a name not what the change needs), or
// is one of also.
func meaningless(err error, also ...error) bool {
	if err == nil {
		return false
	}
	for _, e := range append([]error{fs.ErrExist, fs.ErrNotExist, unix.EISDIR, unix.ENOTDIR, unix.ENOTEMPTY, unix.EINVAL, unix.EPERM, unix.ELOOP}, also...) {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
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
