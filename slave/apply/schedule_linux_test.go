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
