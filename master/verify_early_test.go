package master

import (
	"testing"

	"github.com/georep/georep/rpc/gfid"
)

// TestEarlyVerify: the comparison made while a pass crawls is used only
// when neither side changed while it ran; then it repairs what verify
// after the pass would have (a stray name purged, a lost one recreated by
// the next pass). When the pass applied something, or the catalog
// committed anything meanwhile, it is refused and verify compares again.
func TestEarlyVerify(t *testing.T) {
	tests := []struct {
		name    string
		changed bool // the pass applied something
		commit  bool // the catalog commits while the comparison runs
		usable  bool
	}{
		{"nothing changed", false, false, true},
		{"the pass applied something", true, false, false},
		{"the catalog committed meanwhile", false, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tw := newTestWorker(t)
			tw.write(t, "d/keep", "1")
			tw.write(t, "d/lost", "2")
			tw.crawlAndProcess(t)
			// Damage the slave behind the catalog's back.
			d, _ := tw.slave.Lookup(gfid.Root, "d")
			tw.slave.Remove(d, "lost")
			tw.slave.put(t, d, "stray", gfid.New())

			open := &opening{done: make(chan struct{})}
			early := tw.startEarlyVerify(t.Context(), open)
			defer early.stop()
			if tt.commit {
				tw.write(t, "d/new", "3")
				tw.noVerify = true
				tw.crawlAndProcess(t)
				tw.noVerify = false
			}
			close(open.done)
			v := early.take(tt.changed, tw.cat.Writes)
			if (v != nil) != tt.usable {
				t.Fatalf("early comparison usable: %v, want %v", v != nil, tt.usable)
			}
			if v != nil && v.found != 2 {
				t.Errorf("early comparison found %d differences, want 2 (stray, lost)", v.found)
			}
			tw.verified = false
			found, err := tw.verifyOnceFrom(t.Context(), v)
			if err != nil {
				t.Fatal(err)
			}
			if found != 2 {
				t.Errorf("verify found %d differences, want 2", found)
			}
			tw.noVerify = true
			tw.crawlAndProcess(t) // recreates what was lost
			want := []string{"d", "d/keep", "d/lost"}
			if tt.commit {
				want = append(want, "d/new")
			}
			assertPaths(t, tw.slave.paths(), want...)
		})
	}
}
