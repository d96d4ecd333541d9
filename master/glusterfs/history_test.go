package glusterfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// rollover is one HTIME entry of a fake brick: its epoch and whether it had
// records (a CHANGELOG file is then written, unless missing).
type rollover struct {
	epoch   int64
	full    bool
	missing bool
}

// fakeBrick lays out a brick's changelog directory: one HTIME file per
// period (keyed by its start), recorded under recordedBrick as GlusterFS
// would have written them.
func fakeBrick(t *testing.T, periods map[int64][]rollover) string {
	t.Helper()
	brick := t.TempDir()
	const recordedBrick = "/srv/elsewhere/brick" // History rebases recorded paths
	base := filepath.Join(brick, ChangelogDir)
	if err := os.MkdirAll(filepath.Join(base, "htime"), 0o755); err != nil {
		t.Fatal(err)
	}
	for start, rs := range periods {
		var idx strings.Builder
		for _, r := range rs {
			day := time.Unix(r.epoch, 0).UTC().Format("2006/01/02")
			name := fmt.Sprintf("changelog.%d", r.epoch)
			if r.full {
				name = fmt.Sprintf("CHANGELOG.%d", r.epoch)
				if !r.missing {
					dir := filepath.Join(base, day)
					os.MkdirAll(dir, 0o755)
					if err := os.WriteFile(filepath.Join(dir, name), []byte("GlusterFS Changelog | version: v1.2 | encoding : 2\n"), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			fmt.Fprintf(&idx, "%s/%s/%s/%s\x00", recordedBrick, ChangelogDir, day, name)
		}
		if err := os.WriteFile(filepath.Join(base, "htime", fmt.Sprintf("HTIME.%d", start)), []byte(idx.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return brick
}

func epochs(t *testing.T, paths []string) []int64 {
	t.Helper()
	var es []int64
	for _, p := range paths {
		e, err := ChangelogEpoch(p)
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, e.Unix())
	}
	return es
}

const t0 = 1795678238 // 2026-11-26

func TestHistory(t *testing.T) {
	brick := fakeBrick(t, map[int64][]rollover{
		t0: {{t0, false, false}, {t0 + 3, true, false}, {t0 + 4, true, false}, {t0 + 6, false, false},
			{t0 + 6, true, false}, {t0 + 6, false, false}, {t0 + 9, true, false}, {t0 + 12, false, false}},
		// off from t0+12 to t0+20
		t0 + 20: {{t0 + 21, false, false}, {t0 + 22, true, false}, {t0 + 25, true, false}},
		// turned off and on again within one second
		t0 + 25: {{t0 + 27, true, false}, {t0 + 86400, true, false}},
	})
	sec := func(n int64) time.Time { return time.Unix(t0+n, 0) }
	for _, tc := range []struct {
		name         string
		since, until time.Time
		want         []int64 // offsets from t0
		err          error
	}{
		{"all of period one", sec(1), sec(12), []int64{3, 4, 6, 9}, nil},
		{"since's own second included", sec(3), sec(6), []int64{3, 4, 6}, nil},
		{"fractional since", sec(3).Add(time.Millisecond), sec(6), []int64{3, 4, 6}, nil},
		{"until's second included", sec(4), sec(6).Add(time.Millisecond), []int64{4, 6}, nil},
		{"nothing", sec(10), sec(12), nil, nil},
		{"since = start of the index", sec(0), sec(12), nil, ErrNoHistory},
		{"before the changelog was on", sec(-100), sec(5), nil, ErrNoHistory},
		{"zero since", time.Time{}, sec(5), nil, ErrNoHistory},
		{"across the gap", sec(5), sec(22), nil, ErrNoHistory},
		{"in the gap", sec(15), sec(22), nil, ErrNoHistory},
		{"period two, then three (no gap)", sec(21), sec(30), []int64{22, 25, 27}, nil},
		{"into the next day, live period", sec(26), sec(86400 + 100), []int64{27, 86400}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := History(brick, tc.since, tc.until)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var want []int64
			for _, o := range tc.want {
				want = append(want, t0+o)
			}
			if es := epochs(t, got); !slices.Equal(es, want) {
				t.Errorf("epochs %v, want %v", es, want)
			}
			for _, p := range got {
				if !strings.HasPrefix(p, brick+"/") {
					t.Errorf("%s not under the brick", p)
				}
			}
		})
	}
}

func TestHistoryMissingChangelog(t *testing.T) {
	brick := fakeBrick(t, map[int64][]rollover{
		t0: {{t0 + 1, true, false}, {t0 + 2, true, true}, {t0 + 3, true, false}},
	})
	if _, err := History(brick, time.Unix(t0+1, 0), time.Unix(t0+3, 0)); !errors.Is(err, ErrNoHistory) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("err = %v", err)
	}
	got, err := History(brick, time.Unix(t0+3, 0), time.Unix(t0+3, 0))
	if err != nil || len(got) != 1 {
		t.Errorf("after the missing one: %v, %v", got, err)
	}
}

func TestHistoryNoIndex(t *testing.T) {
	if _, err := History(t.TempDir(), time.Unix(t0, 0), time.Unix(t0+1, 0)); !errors.Is(err, ErrNoHistory) {
		t.Errorf("err = %v", err)
	}
}

// TestHistoryFixture reads the HTIME index GlusterFS 10.3 wrote (the
// fixture kept with the changelog reader's): its changelogs are not on disk
// here, so History reports them missing.
func TestHistoryFixture(t *testing.T) {
	src, err := os.ReadFile("../changelog/testdata/gluster/HTIME.1795570049")
	if err != nil {
		t.Fatal(err)
	}
	brick := t.TempDir()
	dir := filepath.Join(brick, ChangelogDir, "htime")
	os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, "HTIME.1795570049"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := History(brick, time.Unix(1795570050, 0), time.Unix(1795570100, 0)); !errors.Is(err, ErrNoHistory) || !strings.Contains(err.Error(), "CHANGELOG.1795570073") {
		t.Errorf("err = %v", err)
	}
	if got, err := History(brick, time.Unix(1795570074, 0), time.Unix(1795570080, 0)); err != nil || len(got) != 0 {
		t.Errorf("empty rollovers only: %v, %v", got, err)
	}
}

func TestRolled(t *testing.T) {
	brick := fakeBrick(t, map[int64][]rollover{
		t0: {{t0 + 3, true, false}, {t0 + 4, false, false}, {t0 + 6, true, false}, {t0 + 86400*2, true, false}},
	})
	now := time.Unix(t0+86400*2+5, 0)
	for _, tc := range []struct {
		after time.Time
		want  []int64
	}{
		{time.Unix(t0, 0), []int64{3, 6, 86400 * 2}},
		{time.Unix(t0+3, 0), []int64{6, 86400 * 2}},
		{time.Unix(t0+3, 1), []int64{3, 6, 86400 * 2}},
		{time.Unix(t0+6, 1), []int64{6, 86400 * 2}},
		{time.Unix(t0+86400*2, 0), nil},
	} {
		got, err := rolled(brick, tc.after, now)
		if err != nil {
			t.Fatal(err)
		}
		var want []int64
		for _, o := range tc.want {
			want = append(want, t0+o)
		}
		if es := epochs(t, got); !slices.Equal(es, want) {
			t.Errorf("after %v: %v, want %v", tc.after.Unix()-t0, es, want)
		}
	}
	// A period that began after `after`: the changelog was off meanwhile.
	if _, err := rolled(brick, time.Unix(t0-1, 0), now); !errors.Is(err, ErrNoHistory) {
		t.Errorf("err = %v", err)
	}
	// No changelog directory at all: nothing rolled yet.
	if got, err := Rolled(t.TempDir(), time.Now()); err != nil || len(got) != 0 {
		t.Errorf("empty brick: %v, %v", got, err)
	}
}

func TestChangelogEpoch(t *testing.T) {
	if e, err := ChangelogEpoch("/b/.glusterfs/changelogs/2026/11/26/CHANGELOG.1795678241"); err != nil || e.Unix() != 1795678241 {
		t.Errorf("%v, %v", e, err)
	}
	for _, bad := range []string{"CHANGELOG", "changelog.1", "CHANGELOG.x", "CHANGELOG.-1"} {
		if _, err := ChangelogEpoch(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
