package harness

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/pkg/xattr"
	"golang.org/x/sys/unix"
)

// OddNames are names a replica must reproduce byte for byte.
var OddNames = []string{
	"with space", "new\nline", "tab\there", "\xff\xfenot-utf8", "ünïcödé", "-leading-dash", "%41percent",
	"trailing space ", ".hidden", "a:b", "quote\"s", "back\\slash", strings.Repeat("n", 255),
}

// Populate fills root with a tree holding every file type the replica must
// reproduce: regular (empty, small, sparse), directories, symlinks (relative,
// absolute, dangling), fifos, char and block devices (as root), hardlink
// groups, setuid/setgid/sticky bits, odd names and user xattrs.
func Populate(root string, rng *rand.Rand) error {
	dirs := []string{"", "d1", "d1/sub", "d2", "deep"}
	deep := "deep"
	for i := range 30 {
		deep = filepath.Join(deep, fmt.Sprintf("l%d", i))
		dirs = append(dirs, deep)
	}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	write := func(p string, size int) error {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return os.WriteFile(filepath.Join(root, p), b, 0o644)
	}
	for i := range 40 {
		if err := write(filepath.Join(dirs[i%len(dirs)], fmt.Sprintf("f%d", i)), rng.IntN(20000)); err != nil {
			return err
		}
	}
	for i, n := range OddNames {
		if err := write(filepath.Join(dirs[i%3], n), rng.IntN(100)); err != nil {
			return err
		}
	}
	if err := os.Mkdir(filepath.Join(root, "d2", "dir with\nnewline"), 0o750); err != nil {
		return err
	}
	if err := write("empty", 0); err != nil {
		return err
	}
	// Sparse: a hole then data.
	f, err := os.Create(filepath.Join(root, "sparse"))
	if err != nil {
		return err
	}
	f.WriteAt([]byte("end"), 5<<20)
	f.Close()
	for _, l := range [][2]string{{"rel-link", "d1/f1"}, {"abs-link", "/etc/passwd"}, {"dangling", "no/such/file"}, {"d1/up", "../d2"}} {
		if err := os.Symlink(l[1], filepath.Join(root, l[0])); err != nil {
			return err
		}
	}
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o640); err != nil {
		return err
	}
	if err := bindSocket(filepath.Join(root, "d2", "socket")); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		if err := unix.Mknod(filepath.Join(root, "chardev"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err != nil {
			return err
		}
		if err := unix.Mknod(filepath.Join(root, "blockdev"), unix.S_IFBLK|0o600, int(unix.Mkdev(7, 42))); err != nil {
			return err
		}
		if err := os.Lchown(filepath.Join(root, "d1/f1"), 1234, 5678); err != nil {
			return err
		}
		if err := os.Lchown(filepath.Join(root, "rel-link"), 4321, 8765); err != nil {
			return err
		}
	}
	if err := os.Link(filepath.Join(root, "d1/f1"), filepath.Join(root, "d2/hardlink-of-f1")); err != nil {
		return err
	}
	if err := os.Link(filepath.Join(root, "d1/f1"), filepath.Join(root, "hardlink with space")); err != nil {
		return err
	}
	for p, m := range map[string]os.FileMode{"f0": 0o4755 | os.ModeSetuid, "d2/f3": 0o2750, "d1": 0o1777} {
		mode := uint32(m.Perm())
		if m&os.ModeSetuid != 0 {
			mode |= unix.S_ISUID
		}
		switch p {
		case "d2/f3":
			mode = 0o2750
		case "d1":
			mode = 0o1777
		}
		if err := unix.Chmod(filepath.Join(root, p), mode); err != nil {
			return err
		}
	}
	if err := xattr.Set(filepath.Join(root, "f0"), "user.color", []byte("blue")); err != nil {
		return err
	}
	if err := xattr.Set(filepath.Join(root, "d1"), "user.note", []byte{0, 1, 2}); err != nil {
		return err
	}
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	os.Chtimes(filepath.Join(root, "d2/f3"), old, old)
	return unix.Lutimes(filepath.Join(root, "abs-link"), []unix.Timeval{{Sec: 1e9}, {Sec: 1e9}})
}

// Mutate applies n random mutations to the tree under root: creates, writes
// (including same-size, same-mtime rewrites), truncates, appends, renames of
// files and directories (over existing names, swaps, into new parents),
// deletes (files, one link of a group, whole subtrees), type changes at the
// same name, chmod/chown, new hardlinks, symlinks and fifos. It returns a
// log of what it did.
func Mutate(root string, rng *rand.Rand, n int) ([]string, error) {
	var log []string
	for i := 0; i < n; i++ {
		files, dirs := list(root)
		pick := func(s []string) string { return s[rng.IntN(len(s))] }
		newName := func() string {
			if rng.IntN(5) == 0 {
				return OddNames[rng.IntN(len(OddNames)-1)] + fmt.Sprint(rng.IntN(100))
			}
			return fmt.Sprintf("m%d", rng.IntN(1000))
		}
		dir := pick(dirs)
		var op string
		var err error
		switch k := rng.IntN(16); {
		case k == 0 || len(files) == 0:
			p := filepath.Join(dir, newName())
			op = "create " + p
			err = os.WriteFile(filepath.Join(root, p), []byte(fmt.Sprint(rng.Int())), 0o644)
		case k == 1:
			p := filepath.Join(dir, newName())
			op = "mkdir " + p
			err = os.Mkdir(filepath.Join(root, p), 0o755)
		case k == 2:
			p := pick(files)
			op = "append " + p
			err = appendTo(filepath.Join(root, p), "more")
		case k == 3:
			p := pick(files)
			op = "rewrite same size and mtime " + p
			err = rewriteSameSize(filepath.Join(root, p), rng)
		case k == 4:
			p := pick(files)
			op = "truncate " + p
			err = os.Truncate(filepath.Join(root, p), int64(rng.IntN(10)))
		case k == 5:
			from, to := pick(files), filepath.Join(dir, newName())
			op = "rename file " + from + " -> " + to
			err = os.Rename(filepath.Join(root, from), filepath.Join(root, to))
		case k == 6:
			from, to := pick(files), pick(files)
			op = "rename over " + from + " -> " + to
			err = os.Rename(filepath.Join(root, from), filepath.Join(root, to))
		case k == 7 && len(files) > 1:
			a, b := pick(files), pick(files)
			op = "swap " + a + " <-> " + b
			tmp := filepath.Join(root, ".swap-tmp")
			if err = os.Rename(filepath.Join(root, a), tmp); err == nil {
				if err = os.Rename(filepath.Join(root, b), filepath.Join(root, a)); err == nil {
					err = os.Rename(tmp, filepath.Join(root, b))
				}
			}
		case k == 8 && len(dirs) > 1:
			from := pick(dirs[1:])
			to := filepath.Join(pick(dirs), newName())
			op = "rename dir " + from + " -> " + to
			err = os.Rename(filepath.Join(root, from), filepath.Join(root, to))
			if err != nil && (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST)) {
				err = nil // into its own subtree, or over a non-empty dir: not a mutation
			}
		case k == 9:
			p := pick(files)
			op = "delete " + p
			err = os.Remove(filepath.Join(root, p))
		case k == 10 && len(dirs) > 1:
			p := pick(dirs[1:])
			op = "rm -rf " + p
			err = os.RemoveAll(filepath.Join(root, p))
		case k == 11:
			p := pick(files)
			op = "type change to dir " + p
			if err = os.Remove(filepath.Join(root, p)); err == nil {
				err = os.Mkdir(filepath.Join(root, p), 0o700)
			}
		case k == 12:
			p := pick(files)
			op = "chmod " + p
			err = unix.Fchmodat(unix.AT_FDCWD, filepath.Join(root, p), uint32(rng.IntN(0o7777)), 0)
			if err != nil && errors.Is(err, unix.EOPNOTSUPP) {
				err = nil // a symlink
			}
		case k == 13:
			p := pick(files)
			op = "chown " + p
			if os.Geteuid() == 0 {
				err = os.Lchown(filepath.Join(root, p), rng.IntN(3000), rng.IntN(3000))
			}
		case k == 14:
			from, to := pick(files), filepath.Join(dir, newName())
			op = "hardlink " + from + " -> " + to
			err = os.Link(filepath.Join(root, from), filepath.Join(root, to))
		default:
			p := filepath.Join(dir, newName())
			if rng.IntN(2) == 0 {
				op = "symlink " + p
				err = os.Symlink("target-"+fmt.Sprint(rng.IntN(10)), filepath.Join(root, p))
			} else {
				op = "mkfifo " + p
				err = unix.Mkfifo(filepath.Join(root, p), 0o600)
			}
		}
		if err != nil && (errors.Is(err, fs.ErrExist) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.ELOOP)) {
			err = nil // the random pick did not make sense: not a mutation
		}
		if err != nil {
			return log, fmt.Errorf("%s: %w", op, err)
		}
		log = append(log, op)
	}
	return log, nil
}

func list(root string) (files, dirs []string) {
	dirs = []string{"."}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			dirs = append(dirs, rel)
		} else if d.Type().IsRegular() || d.Type()&fs.ModeSymlink != 0 {
			files = append(files, rel)
		}
		return nil
	})
	sort.Strings(files)
	sort.Strings(dirs)
	return files, dirs
}

func appendTo(p, s string) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// rewriteSameSize changes the content but restores size and mtime: rsync's
// quick check would miss it.
func rewriteSameSize(p string, rng *rand.Rand) error {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size == 0 {
		return nil
	}
	f, err := os.OpenFile(p, os.O_WRONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	b := make([]byte, st.Size)
	for i := range b {
		b[i] = byte(rng.IntN(256))
	}
	_, err = f.WriteAt(b, 0)
	f.Close()
	if err != nil {
		return err
	}
	return unix.UtimesNano(p, []unix.Timespec{st.Atim, st.Mtim})
}

// bindSocket leaves a unix socket inode at path (bound, then closed).
func bindSocket(path string) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Bind(fd, &unix.SockaddrUnix{Name: path})
}
