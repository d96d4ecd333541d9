package apply

import (
	"fmt"
	"testing"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

func TestIndependentRuns(t *testing.T) {
	p, q, a, b, c := gfid.New(), gfid.New(), gfid.New(), gfid.New(), gfid.New()
	create := func(g, parent gfid.GFID, name string) ops.Entry {
		return ops.Entry{Op: ops.OpCreate, GFID: g, Parent: parent, Name: name}
	}
	tests := []struct {
		name    string
		entries []ops.Entry
		want    string
	}{
		{"empty", nil, "[]"},
		{"one create", []ops.Entry{create(a, p, "a")}, "[[0 1]]"},
		{"independent creates", []ops.Entry{create(a, p, "a"), create(b, p, "b"), create(c, q, "a")}, "[[0 3]]"},
		{"same gfid twice", []ops.Entry{create(a, p, "a"), create(a, p, "b"), create(b, p, "c")}, "[[0 1] [1 3]]"},
		{"same name twice", []ops.Entry{create(a, p, "a"), create(b, p, "a")}, "[[0 1] [1 2]]"},
		{"parent created in the run", []ops.Entry{create(a, p, "a"), create(b, a, "b")}, "[[0 1] [1 2]]"},
		{"creates a parent of the run", []ops.Entry{create(b, a, "b"), create(a, p, "a")}, "[[0 1] [1 2]]"},
		{"mkdir is alone", []ops.Entry{create(a, p, "a"), {Op: ops.OpMkdir, GFID: b, Parent: p, Name: "d"}, create(c, p, "c")}, "[[0 1] [1 2] [2 3]]"},
		{"symlink and mknod join", []ops.Entry{
			{Op: ops.OpSymlink, GFID: a, Parent: p, Name: "s", Target: "t"},
			{Op: ops.OpMknod, GFID: b, Parent: p, Name: "f"},
			create(c, p, "c"),
		}, "[[0 3]]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fmt.Sprint(IndependentRuns(tt.entries)); got != tt.want {
				t.Errorf("IndependentRuns = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestIndependentEntryRuns(t *testing.T) {
	p, q, a, b, c, h := gfid.New(), gfid.New(), gfid.New(), gfid.New(), gfid.New(), gfid.New()
	create := func(g, parent gfid.GFID, name string) ops.Entry {
		return ops.Entry{Op: ops.OpCreate, GFID: g, Parent: parent, Name: name}
	}
	rename := func(g, parent gfid.GFID, name string, np gfid.GFID, nn string) ops.Entry {
		return ops.Entry{Op: ops.OpRename, GFID: g, Parent: parent, Name: name, NewParent: np, NewName: nn}
	}
	unlink := func(g, parent gfid.GFID, name string) ops.Entry {
		return ops.Entry{Op: ops.OpUnlink, GFID: g, Parent: parent, Name: name}
	}
	file := RenameFacts{Known: true}
	tests := []struct {
		name    string
		entries []ops.Entry
		facts   map[int]RenameFacts // of the RENAMEs; missing: not Known
		want    string
	}{
		{"empty", nil, nil, "[]"},
		{"renames to the park, unlinks, renames back", []ops.Entry{
			rename(a, p, "a", gfid.Park, a.String()), rename(b, p, "b", gfid.Park, b.String()),
			unlink(c, p, "c"),
			rename(a, gfid.Park, a.String(), q, "a2"), rename(b, gfid.Park, b.String(), q, "b2"),
		}, map[int]RenameFacts{0: file, 1: file, 3: file, 4: file}, "[[0 3] [3 5]]"},
		{"rename not known is alone", []ops.Entry{unlink(c, p, "c"), rename(a, p, "a", q, "a"), create(b, p, "b")},
			nil, "[[0 1] [1 2] [2 3]]"},
		{"directory rename is alone", []ops.Entry{unlink(c, p, "c"), rename(a, p, "a", q, "a"), create(b, p, "b")},
			map[int]RenameFacts{1: {Known: true, Dir: true}}, "[[0 1] [1 2] [2 3]]"},
		{"rename onto a name another entry frees", []ops.Entry{unlink(c, q, "x"), rename(a, p, "a", q, "x")},
			map[int]RenameFacts{1: file}, "[[0 1] [1 2]]"},
		{"rename from a name another entry takes", []ops.Entry{rename(a, p, "a", q, "a"), create(b, p, "a")},
			map[int]RenameFacts{0: file}, "[[0 1] [1 2]]"},
		{"rename replacing an inode another entry links", []ops.Entry{
			rename(a, p, "a", q, "x"), {Op: ops.OpLink, GFID: h, Parent: p, Name: "h2"},
		}, map[int]RenameFacts{0: {Known: true, Replaces: h}}, "[[0 1] [1 2]]"},
		{"rename replacing an inode nothing else names", []ops.Entry{
			rename(a, p, "a", q, "x"), {Op: ops.OpLink, GFID: b, Parent: p, Name: "b2"},
		}, map[int]RenameFacts{0: {Known: true, Replaces: h}}, "[[0 2]]"},
		{"rename into a directory made in the run", []ops.Entry{
			{Op: ops.OpMkdir, GFID: c, Parent: p, Name: "d"}, rename(a, p, "a", c, "a"),
		}, map[int]RenameFacts{1: file}, "[[0 1] [1 2]]"},
		{"rmdir of a directory an entry empties", []ops.Entry{
			unlink(a, c, "a"), {Op: ops.OpRmdir, GFID: c, Parent: p, Name: "d"},
		}, nil, "[[0 1] [1 2]]"},
		{"mkdirs and creates in distinct places", []ops.Entry{
			{Op: ops.OpMkdir, GFID: a, Parent: p, Name: "d1"}, {Op: ops.OpMkdir, GFID: b, Parent: p, Name: "d2"}, create(c, q, "f"),
		}, nil, "[[0 3]]"},
		{"same gfid unlinked at two names", []ops.Entry{unlink(a, p, "a"), unlink(a, q, "a")}, nil, "[[0 1] [1 2]]"},
		{"rename to its own name", []ops.Entry{unlink(c, p, "c"), rename(a, p, "a", p, "a")},
			map[int]RenameFacts{1: file}, "[[0 1] [1 2]]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fmt.Sprint(IndependentEntryRuns(tt.entries, func(i int) RenameFacts { return tt.facts[i] }))
			if got != tt.want {
				t.Errorf("IndependentEntryRuns = %s, want %s", got, tt.want)
			}
		})
	}
}
