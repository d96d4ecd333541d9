package slavefake_test

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/georep/georep/master/slavefake"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
	"github.com/georep/georep/rpc/ops/opstest"
)

// slaveAPI is the master's slave (master/slave.go), spelled out here
// because it is unexported there: the fake must keep implementing it.
type slaveAPI interface {
	EntryOps(ctx context.Context, entries []ops.Entry) ([]ops.Failure, error)
	MetaOps(ctx context.Context, metas []ops.Meta) ([]ops.Failure, error)
	WriteFiles(ctx context.Context, files []ops.FileData) ([]ops.Failure, error)
	Entries(ctx context.Context, dir gfid.GFID) ([]ops.DirEntry, error)
	Purge(ctx context.Context, parent gfid.GFID, name string, only gfid.GFID) (uint64, error)
	SetXtime(ctx context.Context, g gfid.GFID, t time.Time) error
}

var _ slaveAPI = (*slavefake.Slave)(nil)

// TestConformance runs the replica conformance suite against the fake. It
// holds any owner and device (Root) and no file on disk (InMemory).
func TestConformance(t *testing.T) {
	opstest.Run(t, opstest.Caps{Root: true, InMemory: true}, func(t *testing.T) opstest.Backend {
		return &backend{Slave: slavefake.New(gfid.New()), t: t}
	})
}

// backend is opstest's Backend on the fake: a call that fails whole (which
// the fake never does for a batch) fails the test and every item of the
// batch with EIO.
type backend struct {
	*slavefake.Slave
	t *testing.T
}

var (
	_ opstest.Backend  = (*backend)(nil)
	_ opstest.Contents = (*backend)(nil)
)

func (b *backend) batchFailed(call string, n int, err error) []ops.Failure {
	b.t.Errorf("%s: the call failed whole: %v", call, err)
	fs := make([]ops.Failure, n)
	for i := range fs {
		fs[i] = ops.Failure{Index: i, Errno: syscall.EIO, Message: err.Error()}
	}
	return fs
}

func (b *backend) ApplyEntries(ctx context.Context, entries []ops.Entry) []ops.Failure {
	fs, err := b.EntryOps(ctx, entries)
	if err != nil {
		return b.batchFailed("EntryOps", len(entries), err)
	}
	return fs
}

func (b *backend) ApplyMeta(ctx context.Context, metas []ops.Meta) []ops.Failure {
	fs, err := b.MetaOps(ctx, metas)
	if err != nil {
		return b.batchFailed("MetaOps", len(metas), err)
	}
	return fs
}

func (b *backend) WriteFiles(ctx context.Context, files []ops.FileData) []ops.Failure {
	fs, err := b.Slave.WriteFiles(ctx, files)
	if err != nil {
		return b.batchFailed("WriteFiles", len(files), err)
	}
	return fs
}

func (b *backend) SetXtime(ctx context.Context, g gfid.GFID, volumeID string, sec int64, nsec int32) error {
	return b.SetVolumeXtime(ctx, g, volumeID, sec, nsec)
}

// DataDir is empty: the fake holds no files (Caps.InMemory).
func (b *backend) DataDir() string { return "" }

// TestMasterSide checks what the master's tests use beyond the suite:
// SetXtime with the slave's own volume, Paths, and errors a caller tests
// with errors.Is.
func TestMasterSide(t *testing.T) {
	vol := gfid.New()
	s := slavefake.New(vol)
	ctx := t.Context()
	d, f := gfid.New(), gfid.New()
	fails, err := s.EntryOps(ctx, []ops.Entry{
		{Op: ops.OpMkdir, GFID: d, Parent: gfid.Root, Name: "d", Mode: syscall.S_IFDIR | 0o755},
		{Op: ops.OpCreate, GFID: f, Parent: d, Name: "f", Mode: syscall.S_IFREG | 0o644},
		{Op: ops.OpCreate, GFID: gfid.New(), Parent: d, Name: "f", Mode: syscall.S_IFREG | 0o644},
	})
	if err != nil || len(fails) != 1 || fails[0].Index != 2 || fails[0].Errno != syscall.EEXIST || fails[0].Existing != f {
		t.Fatalf("EntryOps: %+v, %v", fails, err)
	}
	if got, want := s.Paths(), []string{"d", "d/f"}; !slices.Equal(got, want) {
		t.Fatalf("Paths %q, want %q", got, want)
	}
	at := time.Unix(1700000000, 42)
	if err := s.SetXtime(ctx, d, at); err != nil {
		t.Fatal(err)
	}
	if sec, nsec, ok, err := s.Xtime(ctx, d, vol.String()); err != nil || !ok || sec != at.Unix() || int(nsec) != at.Nanosecond() {
		t.Fatalf("Xtime: %d.%d %v %v", sec, nsec, ok, err)
	}
	if _, err := s.Entries(ctx, gfid.New()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Entries of an unknown gfid: %v", err)
	}
	if _, err := s.Entries(ctx, f); !errors.Is(err, ops.ErrNotDir) {
		t.Fatalf("Entries of a file: %v", err)
	}
	ctx2, cancel := context.WithCancel(ctx)
	cancel()
	fails, _ = s.EntryOps(ctx2, []ops.Entry{{Op: ops.OpUnlink, GFID: f, Parent: d, Name: "f"}})
	if len(fails) != 1 || fails[0].Errno != syscall.ECANCELED {
		t.Fatalf("EntryOps after cancel: %+v", fails)
	}
}

// TestDamageHelpers checks Lookup, Put and Remove, with which the
// master's tests damage the slave behind the master's back.
func TestDamageHelpers(t *testing.T) {
	s := slavefake.New(gfid.New())
	ctx := t.Context()
	d, f := gfid.New(), gfid.New()
	if fails, _ := s.EntryOps(ctx, []ops.Entry{
		{Op: ops.OpMkdir, GFID: d, Parent: gfid.Root, Name: "d", Mode: syscall.S_IFDIR | 0o755},
		{Op: ops.OpCreate, GFID: f, Parent: d, Name: "f", Mode: syscall.S_IFREG | 0o644},
	}); len(fails) > 0 {
		t.Fatal(fails)
	}
	if g, ok := s.Lookup(d, "f"); !ok || g != f {
		t.Fatalf("Lookup d/f = %s %v, want %s", g, ok, f)
	}
	if _, ok := s.Lookup(d, "nothing"); ok {
		t.Fatal("Lookup of a free name found one")
	}
	if _, ok := s.Lookup(f, "x"); ok {
		t.Fatal("Lookup in a file found a name")
	}
	stray := gfid.New()
	if err := s.Put(d, "stray", stray); err != nil {
		t.Fatal(err)
	}
	if a, err := s.Stat(ctx, stray); err != nil || a.Type != ops.TypeRegular {
		t.Fatalf("Put of an unknown gfid: %+v, %v; want a regular file", a, err)
	}
	other := gfid.New()
	if err := s.Put(d, "f", other); err != nil {
		t.Fatal(err)
	}
	if g, _ := s.Lookup(d, "f"); g != other {
		t.Fatalf("Put over d/f: it holds %s, want %s", g, other)
	}
	if _, err := s.Stat(ctx, f); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the inode Put replaced is still known: %v", err)
	}
	if err := s.Put(gfid.New(), "x", gfid.New()); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("Put in an unknown directory: %v", err)
	}
	if !s.Remove(gfid.Root, "d") || s.Remove(gfid.Root, "d") {
		t.Fatal("Remove of d: want true once, then false")
	}
	for _, g := range []gfid.GFID{d, stray, other} {
		if _, err := s.Stat(ctx, g); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Remove of d left %s: %v", g, err)
		}
	}
	if p := s.Paths(); len(p) != 0 {
		t.Fatalf("Paths after Remove: %q", p)
	}
}
