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
		m := newMutation(root, rng)
		op, err := m.apply(m.kind())
		if meaningless(err) {
			err = nil // the random pick did not make sense: not a mutation
		}
		if err != nil {
			return log, fmt.Errorf("%s: %w", op, err)
		}
		log = append(log, op)
	}
	return log, nil
}

// mutation is one change of Mutate: the tree and the directory a new name
// goes into.
type mutation struct {
	treePick
	dir string
}

func newMutation(root string, rng *rand.Rand) *mutation {
	m := &mutation{treePick: newTreePick(root, rng)}
	m.dir = m.pick(m.dirs)
	return m
}

// newName is a plain name or, one time in five, an odd one.
func (m *mutation) newName() string {
	if m.rng.IntN(5) == 0 {
		return OddNames[m.rng.IntN(len(OddNames)-1)] + fmt.Sprint(m.rng.IntN(100))
	}
	return fmt.Sprintf("m%d", m.rng.IntN(1000))
}

// kind draws the kind of mutation: a create when there is no file, a
// symlink or fifo when the tree lacks what the kind drawn needs.
func (m *mutation) kind() int {
	k := m.rng.IntN(16)
	switch {
	case len(m.files) == 0:
		return 0
	case k == 7 && len(m.files) < 2, (k == 8 || k == 10) && len(m.dirs) < 2:
		return 15
	}
	return k
}

// apply makes the mutation of kind k and says what it did.
func (m *mutation) apply(k int) (op string, err error) {
	switch k {
	case 0:
		return m.create()
	case 1:
		return m.mkdir()
	case 2:
		return m.append()
	case 3:
		return m.rewrite()
	case 4:
		return m.truncate()
	case 5:
		return m.renameFile()
	case 6:
		return m.renameOver()
	case 7:
		return m.swap()
	case 8:
		return m.renameDir()
	case 9:
		return m.delete()
	case 10:
		return m.removeTree()
	case 11:
		return m.toDir()
	case 12:
		return m.chmod()
	case 13:
		return m.chown()
	case 14:
		return m.hardlink()
	default:
		return m.special()
	}
}

func (m *mutation) create() (string, error) {
	p := filepath.Join(m.dir, m.newName())
	return "create " + p, os.WriteFile(m.abs(p), []byte(fmt.Sprint(m.rng.Int())), 0o644)
}

func (m *mutation) mkdir() (string, error) {
	p := filepath.Join(m.dir, m.newName())
	return "mkdir " + p, os.Mkdir(m.abs(p), 0o755)
}

func (m *mutation) append() (string, error) {
	p := m.pick(m.files)
	return "append " + p, appendTo(m.abs(p), "more")
}

func (m *mutation) rewrite() (string, error) {
	p := m.pick(m.files)
	return "rewrite same size and mtime " + p, rewriteSameSize(m.abs(p), m.rng)
}

func (m *mutation) truncate() (string, error) {
	p := m.pick(m.files)
	return "truncate " + p, os.Truncate(m.abs(p), int64(m.rng.IntN(10)))
}

func (m *mutation) renameFile() (string, error) {
	from, to := m.pick(m.files), filepath.Join(m.dir, m.newName())
	return "rename file " + from + " -> " + to, os.Rename(m.abs(from), m.abs(to))
}

func (m *mutation) renameOver() (string, error) {
	from, to := m.pick(m.files), m.pick(m.files)
	return "rename over " + from + " -> " + to, os.Rename(m.abs(from), m.abs(to))
}

// swap exchanges two files through a temporary name.
func (m *mutation) swap() (string, error) {
	a, b := m.pick(m.files), m.pick(m.files)
	tmp := m.abs(".swap-tmp")
	err := os.Rename(m.abs(a), tmp)
	if err == nil {
		if err = os.Rename(m.abs(b), m.abs(a)); err == nil {
			err = os.Rename(tmp, m.abs(b))
		}
	}
	return "swap " + a + " <-> " + b, err
}

func (m *mutation) renameDir() (string, error) {
	from := m.pick(m.dirs[1:])
	to := filepath.Join(m.pick(m.dirs), m.newName())
	err := os.Rename(m.abs(from), m.abs(to))
	if err != nil && (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST)) {
		err = nil // into its own subtree, or over a non-empty dir: not a mutation
	}
	return "rename dir " + from + " -> " + to, err
}

func (m *mutation) delete() (string, error) {
	p := m.pick(m.files)
	return "delete " + p, os.Remove(m.abs(p))
}

func (m *mutation) removeTree() (string, error) {
	p := m.pick(m.dirs[1:])
	return "rm -rf " + p, os.RemoveAll(m.abs(p))
}

func (m *mutation) toDir() (string, error) {
	p := m.pick(m.files)
	err := os.Remove(m.abs(p))
	if err == nil {
		err = os.Mkdir(m.abs(p), 0o700)
	}
	return "type change to dir " + p, err
}

func (m *mutation) chmod() (string, error) {
	p := m.pick(m.files)
	err := unix.Fchmodat(unix.AT_FDCWD, m.abs(p), uint32(m.rng.IntN(0o7777)), 0)
	if err != nil && errors.Is(err, unix.EOPNOTSUPP) {
		err = nil // a symlink
	}
	return "chmod " + p, err
}

func (m *mutation) chown() (op string, err error) {
	p := m.pick(m.files)
	if os.Geteuid() == 0 {
		err = os.Lchown(m.abs(p), m.rng.IntN(3000), m.rng.IntN(3000))
	}
	return "chown " + p, err
}

func (m *mutation) hardlink() (string, error) {
	from, to := m.pick(m.files), filepath.Join(m.dir, m.newName())
	return "hardlink " + from + " -> " + to, os.Link(m.abs(from), m.abs(to))
}

// special makes a symlink or a fifo, one time in two each.
func (m *mutation) special() (string, error) {
	p := filepath.Join(m.dir, m.newName())
	if m.rng.IntN(2) == 0 {
		return "symlink " + p, os.Symlink("target-"+fmt.Sprint(m.rng.IntN(10)), m.abs(p))
	}
	return "mkfifo " + p, unix.Mkfifo(m.abs(p), 0o600)
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
