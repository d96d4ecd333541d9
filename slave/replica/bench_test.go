package replica

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// BenchmarkCreate measures CREATE of b.N files spread over directories of
// 200, as an initial sync of many small files does.
func BenchmarkCreate(b *testing.B) {
	r, err := Open(b.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	var dirs []ops.Entry
	for i := 0; i <= b.N/200; i++ {
		dirs = append(dirs, ops.Entry{Op: ops.OpMkdir, GFID: gfid.New(), Parent: gfid.Root, Name: fmt.Sprintf("d%03d", i), Mode: 0o40755})
	}
	if f := r.ApplyEntries(b.Context(), dirs); len(f) > 0 {
		b.Fatal(f)
	}
	files := make([]ops.Entry, b.N)
	for i := range files {
		files[i] = ops.Entry{Op: ops.OpCreate, GFID: gfid.New(), Parent: dirs[i/200].GFID, Name: fmt.Sprintf("f%05d", i), Mode: 0o100644}
	}
	b.ResetTimer()
	if f := r.ApplyEntries(b.Context(), files); len(f) > 0 {
		b.Fatal(f[0])
	}
}
