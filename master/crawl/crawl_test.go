package crawl

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/georep/georep/master/catalog"
	"github.com/georep/georep/master/changelog"
	"github.com/georep/georep/rpc/gfid"
	"golang.org/x/sys/unix"
)

// env is a source tree, a catalog and a simulated slave kept in step.
type env struct {
	t    *testing.T
	src  string
	cfg  Config
	cat  *catalog.Catalog
	sim  *sim
	prev *Snapshot // the snapshot of the last crawl
	old  *Snapshot // the one before it
	log  *slog.Logger
}

func newEnv(t *testing.T) *env {
	t.Helper()
	work := t.TempDir()
	src := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Open(filepath.Join(work, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	return &env{t: t, src: src, cat: cat, sim: newSim(),
		cfg: Config{Source: src, ChangelogDir: filepath.Join(work, "xsync")},
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func (e *env) p(rel string) string { return filepath.Join(e.src, rel) }

// crawl runs Hybrid, replays its records on the simulated slave (each must
// be valid where it stands), checks that the slave then matches the tree,
// and commits.
func (e *env) crawl() *Result {
	e.t.Helper()
	res, err := Hybrid(e.t.Context(), e.cfg, e.cat, e.log)
	if err != nil {
		e.t.Fatalf("Hybrid: %v", err)
	}
	if (res.Changelog == "") != (len(res.Records) == 0) {
		e.t.Fatalf("changelog %q with %d records", res.Changelog, len(res.Records))
	}
	if res.Changelog != "" {
		b, err := os.ReadFile(res.Changelog)
		if err != nil {
			e.t.Fatal(err)
		}
		recs, err := changelog.Parse(bytes.NewReader(b), res.Changelog)
		if err != nil || !reflect.DeepEqual(recs, res.Records) {
			e.t.Fatalf("changelog file does not hold the records: %v", err)
		}
	}
	for i, r := range res.Records {
		if err := e.sim.apply(r); err != nil {
			e.t.Fatalf("record %d %q is invalid: %v\n%s", i, e.describe(res, r), err, strings.Join(e.lines(res), "\n"))
		}
	}
	if d := e.sim.diffNames(res.Snapshot, e.cfg.IgnoreDeletes); d != "" {
		e.t.Fatalf("slave differs from the tree after replay:\n%s\nrecords:\n%s", d, strings.Join(e.lines(res), "\n"))
	}
	if err := res.Commit(e.cat, nil, nil); err != nil {
		e.t.Fatal(err)
	}
	e.old, e.prev = e.prev, res.Snapshot
	return res
}

// label names g by its path in the new snapshot, else in the previous one.
func (e *env) label(res *Result, g gfid.GFID) string {
	switch g {
	case gfid.Root:
		return ""
	case gfid.Park:
		return "PARK"
	}
	for _, s := range []*Snapshot{res.Snapshot, e.prev, e.old} {
		if s == nil {
			continue
		}
		if p, ok := s.Path(g); ok {
			rel, _ := filepath.Rel(e.src, p)
			return "/" + rel
		}
	}
	return g.String()
}

func (e *env) describe(res *Result, r changelog.Record) string {
	switch r.Kind {
	case changelog.Data:
		return "D " + e.label(res, r.GFID)
	case changelog.Meta:
		l := e.label(res, r.GFID)
		if l == "" {
			l = "/"
		}
		return "M " + string(r.Fop) + " " + l
	}
	ent := func(p gfid.GFID, name string) string {
		if p == gfid.Park {
			return "PARK"
		}
		return e.label(res, p) + "/" + name
	}
	s := string(r.Fop) + " " + ent(r.Parent, r.Name)
	if r.Fop == changelog.Rename {
		s += " " + ent(r.NewParent, r.NewName)
	}
	return s
}

func (e *env) lines(res *Result) []string {
	var out []string
	for _, r := range res.Records {
		out = append(out, e.describe(res, r))
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	must(t, os.WriteFile(path, []byte(data), 0o644))
}

func TestInitialTreeOfEveryType(t *testing.T) {
	e := newEnv(t)
	long := strings.Repeat("L", 255)
	must(t, os.MkdirAll(e.p("d/sub"), 0o755))
	write(t, e.p("d/f"), "hello")
	write(t, e.p("new\nline \xff%"), "x")
	must(t, os.Link(e.p("d/f"), e.p("hard")))
	must(t, os.Symlink("d/f", e.p("sym")))
	must(t, unix.Mkfifo(e.p("fifo"), 0o640))
	must(t, unix.Mknod(e.p("chr"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))))
	must(t, unix.Mknod(e.p("blk"), unix.S_IFBLK|0o600, int(unix.Mkdev(7, 0))))
	l, err := listenUnix(e.p("sock"))
	must(t, err)
	defer l.Close()
	write(t, e.p("d/sub/"+long), "")

	res := e.crawl()
	got := e.lines(res)
	// Discovery order: a directory's entries by name, then its subdirectories
	// depth first; the first name met is a hardlink group's CREATE.
	want := []string{
		"MKDIR /d",
		"MKDIR /d/sub",
		"MKNOD /blk",
		"MKNOD /chr",
		"MKNOD /fifo",
		"CREATE /hard",
		"LINK /d/f",
		"CREATE /new\nline \xff%",
		"MKNOD /sock",
		"SYMLINK /sym",
		"CREATE /d/sub/" + long,
		"M SETATTR /",
		"M SETATTR /blk",
		"M SETATTR /chr",
		"M SETATTR /d",
		"M SETATTR /fifo",
		"M SETATTR /sock",
		"M SETATTR /sym",
		"M SETATTR /d/sub",
		"D /hard",
		"D /new\nline \xff%",
		"D /d/sub/" + long,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if res.Stats.Dirs != 3 || res.Stats.Files != 8 || res.Stats.Bytes != 6 || res.Stats.New != 10 || res.Stats.Data != 3 {
		t.Fatalf("stats %+v", res.Stats)
	}
	// The snapshot answers for the records.
	var fg gfid.GFID
	for _, r := range res.Records {
		if r.Fop == changelog.Create && r.Name == "hard" {
			fg = r.GFID
		}
	}
	n, ok := res.Snapshot.Lookup(fg)
	if !ok || n.Type != catalog.TypeReg || n.Size != 5 || len(n.Links) != 2 {
		t.Fatalf("Lookup(f) = %+v %v", n, ok)
	}
	if p, _ := res.Snapshot.Path(fg); p != e.p("hard") {
		t.Fatalf("Path(f) = %q", p)
	}
	if p, _ := res.Snapshot.Path(gfid.Root); p != e.src {
		t.Fatalf("Path(root) = %q", p)
	}
	kids := res.Snapshot.Children(gfid.Root)
	if len(kids) != 8 || kids["hard"] != fg || res.Snapshot.Children(kids["d"])["f"] != fg {
		t.Fatalf("Children(root) = %v", kids)
	}
	for _, r := range res.Records {
		if r.Fop == changelog.Mknod && r.Name == "chr" {
			cn, _ := res.Snapshot.Lookup(r.GFID)
			if cn.Rdev != unix.Mkdev(1, 3) || r.Mode != unix.S_IFCHR|0o600 {
				t.Fatalf("chr: rdev %x mode %o", cn.Rdev, r.Mode)
			}
		}
		if r.Fop == changelog.Symlink {
			sn, _ := res.Snapshot.Lookup(r.GFID)
			if sn.Target != "d/f" {
				t.Fatalf("symlink target %q", sn.Target)
			}
		}
	}
	// A second crawl of an unchanged tree writes nothing.
	if res := e.crawl(); len(res.Records) != 0 || res.Changelog != "" {
		t.Fatalf("unchanged tree produced %q", e.lines(res))
	}
}

func TestChanges(t *testing.T) {
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		setup  func(t *testing.T, e *env)
		change func(t *testing.T, e *env)
		want   []string
		ignore bool
	}{
		{
			name:   "rename file",
			setup:  func(t *testing.T, e *env) { write(t, e.p("a"), "x") },
			change: func(t *testing.T, e *env) { must(t, os.Rename(e.p("a"), e.p("b"))) },
			want:   []string{"RENAME /a /b", "M SETATTR /", "D /b"}, // nothing in the way: no park
		},
		{
			name:  "rename file into a new directory",
			setup: func(t *testing.T, e *env) { write(t, e.p("a"), "x") },
			change: func(t *testing.T, e *env) {
				must(t, os.Mkdir(e.p("n"), 0o755))
				must(t, os.Rename(e.p("a"), e.p("n/a")))
			},
			want: []string{"RENAME /a PARK", "MKDIR /n", "RENAME PARK /n/a", "M SETATTR /", "M SETATTR /n", "D /n/a"},
		},
		{
			name: "chain of renames",
			setup: func(t *testing.T, e *env) {
				write(t, e.p("a"), "a")
				write(t, e.p("b"), "b")
			},
			change: func(t *testing.T, e *env) {
				must(t, os.Rename(e.p("b"), e.p("c")))
				must(t, os.Rename(e.p("a"), e.p("b")))
			},
			// b's new name is free: straight there; a's is b's old name: parked.
			want: []string{"RENAME /a PARK", "RENAME /b /c", "RENAME PARK /b", "M SETATTR /", "D /b", "D /c"},
		},
		{
			name: "rename dir with subtree",
			setup: func(t *testing.T, e *env) {
				must(t, os.MkdirAll(e.p("d/s"), 0o755))
				write(t, e.p("d/s/f"), "x")
			},
			change: func(t *testing.T, e *env) { must(t, os.Rename(e.p("d"), e.p("e"))) },
			want:   []string{"RENAME /d PARK", "RENAME PARK /e", "M SETATTR /"},
		},
		{
			name: "rename over an existing name",
			setup: func(t *testing.T, e *env) {
				write(t, e.p("a"), "a")
				write(t, e.p("b"), "b")
			},
			change: func(t *testing.T, e *env) { must(t, os.Rename(e.p("a"), e.p("b"))) },
			want:   []string{"RENAME /a PARK", "UNLINK /b", "RENAME PARK /b", "M SETATTR /", "D /b"},
		},
		{
			name: "swap two names",
			setup: func(t *testing.T, e *env) {
				write(t, e.p("a"), "a")
				must(t, os.Mkdir(e.p("b"), 0o755))
			},
			change: func(t *testing.T, e *env) {
				must(t, os.Rename(e.p("a"), e.p("t")))
				must(t, os.Rename(e.p("b"), e.p("a")))
				must(t, os.Rename(e.p("t"), e.p("b")))
			},
			want: []string{"RENAME /a PARK", "RENAME /b PARK", "RENAME PARK /a", "RENAME PARK /b", "M SETATTR /", "D /b"},
		},
		{
			name:   "delete file",
			setup:  func(t *testing.T, e *env) { write(t, e.p("a"), "a") },
			change: func(t *testing.T, e *env) { must(t, os.Remove(e.p("a"))) },
			want:   []string{"UNLINK /a", "M SETATTR /"},
		},
		{
			name: "delete one link of a hardlink group",
			setup: func(t *testing.T, e *env) {
				write(t, e.p("a"), "a")
				must(t, os.Link(e.p("a"), e.p("b")))
				must(t, os.Link(e.p("a"), e.p("c")))
			},
			change: func(t *testing.T, e *env) { must(t, os.Remove(e.p("b"))) },
			want:   []string{"UNLINK /b", "M SETATTR /", "D /a"}, // unlink changes the inode's ctime
		},
		{
			name: "rm -rf a subtree",
			setup: func(t *testing.T, e *env) {
				must(t, os.MkdirAll(e.p("d/s/t"), 0o755))
				write(t, e.p("d/f"), "f")
				write(t, e.p("d/s/t/g"), "g")
				must(t, os.Symlink("x", e.p("d/s/l")))
				write(t, e.p("keep"), "k")
			},
			change: func(t *testing.T, e *env) { must(t, os.RemoveAll(e.p("d"))) },
			want:   []string{"UNLINK /d/f", "UNLINK /d/s/l", "UNLINK /d/s/t/g", "RMDIR /d/s/t", "RMDIR /d/s", "RMDIR /d", "M SETATTR /"},
		},
		{
			name:  "type change at same name",
			setup: func(t *testing.T, e *env) { write(t, e.p("a"), "a"); must(t, os.Mkdir(e.p("d"), 0o755)) },
			change: func(t *testing.T, e *env) {
				must(t, os.Remove(e.p("a")))
				must(t, os.Mkdir(e.p("a"), 0o700))
				must(t, os.Remove(e.p("d")))
				must(t, os.Symlink("a", e.p("d")))
			},
			want: []string{"UNLINK /a", "RMDIR /d", "MKDIR /a", "SYMLINK /d", "M SETATTR /", "M SETATTR /a", "M SETATTR /d"},
		},
		{
			name:  "truncate",
			setup: func(t *testing.T, e *env) { write(t, e.p("a"), "hello") },
			change: func(t *testing.T, e *env) {
				must(t, os.Truncate(e.p("a"), 2))
				must(t, os.Chtimes(e.p("a"), old, old))
			},
			want: []string{"M SETATTR /a", "D /a"},
		},
		{
			name:  "append",
			setup: func(t *testing.T, e *env) { write(t, e.p("a"), "hello") },
			change: func(t *testing.T, e *env) {
				f, err := os.OpenFile(e.p("a"), os.O_APPEND|os.O_WRONLY, 0)
				must(t, err)
				f.WriteString("more")
				f.Close()
			},
			want: []string{"M SETATTR /a", "D /a"},
		},
		{
			name: "overwrite with same size and mtime",
			setup: func(t *testing.T, e *env) {
				write(t, e.p("a"), "hello")
				must(t, os.Chtimes(e.p("a"), old, old))
			},
			change: func(t *testing.T, e *env) {
				time.Sleep(10 * time.Millisecond) // let ctime move on coarse clocks
				write(t, e.p("a"), "world")
				must(t, os.Chtimes(e.p("a"), old, old))
			},
			want: []string{"D /a"},
		},
		{
			name:  "chmod and chown",
			setup: func(t *testing.T, e *env) { write(t, e.p("a"), "a"); must(t, os.Mkdir(e.p("d"), 0o755)) },
			change: func(t *testing.T, e *env) {
				must(t, os.Chmod(e.p("a"), 0o600))
				must(t, os.Lchown(e.p("d"), 1234, 5678))
			},
			want: []string{"M SETATTR /a", "M SETATTR /d", "D /a"},
		},
		{
			name:  "new hardlink",
			setup: func(t *testing.T, e *env) { must(t, os.Mkdir(e.p("d"), 0o755)); write(t, e.p("a"), "a") },
			change: func(t *testing.T, e *env) {
				must(t, os.Link(e.p("a"), e.p("d/b")))
			},
			want: []string{"LINK /d/b", "M SETATTR /d", "D /a"},
		},
		{
			name: "dir moved under its former child",
			setup: func(t *testing.T, e *env) {
				must(t, os.MkdirAll(e.p("a/b"), 0o755))
				write(t, e.p("a/f"), "f")
			},
			change: func(t *testing.T, e *env) {
				must(t, os.Rename(e.p("a/b"), e.p("b")))
				must(t, os.Rename(e.p("a"), e.p("b/a")))
			},
			want: []string{"RENAME /a PARK", "RENAME /b/a/b PARK", "RENAME PARK /b", "RENAME PARK /b/a", "M SETATTR /", "M SETATTR /b", "M SETATTR /b/a"},
		},
		{
			name: "file moved out of a dir deleted in the same pass",
			setup: func(t *testing.T, e *env) {
				must(t, os.MkdirAll(e.p("d"), 0o755))
				write(t, e.p("d/f"), "f")
				write(t, e.p("d/g"), "g")
			},
			change: func(t *testing.T, e *env) {
				must(t, os.Rename(e.p("d/f"), e.p("f")))
				must(t, os.RemoveAll(e.p("d")))
			},
			want: []string{"RENAME /d/f /f", "UNLINK /d/g", "RMDIR /d", "M SETATTR /", "D /f"},
		},
		{
			name: "ignore deletes",
			setup: func(t *testing.T, e *env) {
				must(t, os.MkdirAll(e.p("d/s"), 0o755))
				write(t, e.p("d/s/f"), "f")
				write(t, e.p("d/g"), "g")
				write(t, e.p("a"), "a")
				must(t, os.Mkdir(e.p("x"), 0o755))
				write(t, e.p("x/y"), "y")
				write(t, e.p("m"), "m")
			},
			change: func(t *testing.T, e *env) {
				must(t, os.RemoveAll(e.p("d")))
				must(t, os.Remove(e.p("a")))
				must(t, os.RemoveAll(e.p("x")))
				write(t, e.p("x"), "x") // needs the name: the old x goes, with its content
				must(t, os.Rename(e.p("m"), e.p("n")))
			},
			ignore: true,
			want:   []string{"RENAME /m /n", "UNLINK /x/y", "RMDIR /x", "CREATE /x", "M SETATTR /", "D /n", "D /x"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.cfg.IgnoreDeletes = tt.ignore
			tt.setup(t, e)
			e.crawl()
			tt.change(t, e)
			res := e.crawl()
			if got := e.lines(res); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if res := e.crawl(); len(res.Records) != 0 {
				t.Fatalf("third crawl of an unchanged tree: %q", e.lines(res))
			}
		})
	}
}

func TestXattrs(t *testing.T) {
	e := newEnv(t)
	e.cfg.SyncXattrs = true
	write(t, e.p("a"), "a")
	if err := unix.Setxattr(e.p("a"), "user.color", []byte("blue"), 0); err != nil {
		t.Skipf("user xattrs not supported here: %v", err)
	}
	res := e.crawl()
	if got, want := e.lines(res), []string{"CREATE /a", "M SETATTR /", "M SETXATTR /a", "D /a"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("records %q, want %q", got, want)
	}
	n, _ := res.Snapshot.Lookup(res.Records[0].GFID)
	if string(n.Xattrs["user.color"]) != "blue" || len(n.XattrHash) == 0 {
		t.Fatalf("xattrs %v hash %x", n.Xattrs, n.XattrHash)
	}
	must(t, unix.Removexattr(e.p("a"), "user.color"))
	if got, want := e.lines(e.crawl()), []string{"M SETXATTR /a", "D /a"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("records %q, want %q", got, want)
	}
}

func TestFailedGFIDsAreRedone(t *testing.T) {
	e := newEnv(t)
	write(t, e.p("a"), "a")
	write(t, e.p("b"), "b")
	res, err := Hybrid(t.Context(), e.cfg, e.cat, e.log)
	must(t, err)
	failed := map[gfid.GFID]bool{}
	for _, r := range res.Records {
		if r.Name == "b" {
			failed[r.GFID] = true
		}
	}
	must(t, res.Commit(e.cat, failed, nil))
	res2, err := Hybrid(t.Context(), e.cfg, e.cat, e.log)
	must(t, err)
	var got []string
	for _, r := range res2.Records {
		got = append(got, r.String())
	}
	bg := res.Snapshot.Children(gfid.Root)["b"]
	if res2.Snapshot.Children(gfid.Root)["b"] != bg {
		t.Fatal("failed gfid got a new identity")
	}
	want := []string{
		"E " + bg.String() + " CREATE 33188 0 0 " + gfid.Root.String() + "/b",
		"M " + gfid.Root.String() + " SETATTR",
		"D " + bg.String(),
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("second crawl: %q", got)
	}
}

func TestDeepAndWideTree(t *testing.T) {
	e := newEnv(t)
	// Deeper than PATH_MAX and than the open-directory budget, with a
	// sibling at every level so that every ancestor stays pending.
	fd, err := unix.Open(e.src, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	must(t, err)
	name := strings.Repeat("d", 40)
	const depth = 150
	for i := 0; i < depth; i++ {
		must(t, unix.Mkdirat(fd, name, 0o755))
		must(t, unix.Mkdirat(fd, "z", 0o755))
		nfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		must(t, err)
		unix.Close(fd)
		fd = nfd
	}
	unix.Close(fd)
	res := e.crawl()
	if res.Stats.Dirs != 2*depth+1 {
		t.Fatalf("crawled %d dirs, want %d", res.Stats.Dirs, 2*depth+1)
	}
	if res := e.crawl(); len(res.Records) != 0 {
		t.Fatalf("recrawl: %d records", len(res.Records))
	}
	// Clean up what os.RemoveAll might not manage.
	t.Cleanup(func() { removeTree(e.src) })
}

func TestCancel(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < 3; i++ {
		must(t, os.MkdirAll(e.p(strings.Repeat("x/", i+1)), 0o755))
	}
	ctx, cancel := withCancel(t)
	cancel()
	if _, err := Hybrid(ctx, e.cfg, e.cat, e.log); err == nil {
		t.Fatal("cancelled crawl succeeded")
	}
}

func TestReservedTopLevelNameSkipped(t *testing.T) {
	src := t.TempDir()
	os.Mkdir(filepath.Join(src, ReservedName), 0o755)
	os.Mkdir(filepath.Join(src, "sub"), 0o755)
	os.Mkdir(filepath.Join(src, "sub", ReservedName), 0o755) // only the top level is reserved
	cat, err := catalog.Open(filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	res, err := Hybrid(t.Context(), Config{Source: src, ChangelogDir: t.TempDir()}, cat, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res.Snapshot.Children(gfid.Root)[ReservedName]; ok {
		t.Fatal("top-level .georep crawled")
	}
	sub := res.Snapshot.Children(gfid.Root)["sub"]
	if _, ok := res.Snapshot.Children(sub)[ReservedName]; !ok {
		t.Fatal("sub/.georep not crawled")
	}
}
