package master

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/master/crawl"
	"github.com/georep/georep/master/glusterfs"
	"github.com/georep/georep/rpc/gfid"
)

func TestParseDeleteLimit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want DeleteLimit
		bad  bool
	}{
		{in: "50%", want: DeleteLimit{Percent: 50}},
		{in: "0.5%", want: DeleteLimit{Percent: 0.5}},
		{in: "100%", want: DeleteLimit{Percent: 100}},
		{in: "1000", want: DeleteLimit{Count: 1000}},
		{in: "0", want: DeleteLimit{Count: 0}},
		{in: "off", want: DeleteLimit{Off: true}},
		{in: " 20% ", want: DeleteLimit{Percent: 20}},
		{in: "0%", bad: true},
		{in: "101%", bad: true},
		{in: "-1", bad: true},
		{in: "lots", bad: true},
		{in: "", bad: true},
		{in: "OFF", bad: true},
	} {
		got, err := ParseDeleteLimit(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseDeleteLimit(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseDeleteLimit(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if back, err := ParseDeleteLimit(got.String()); err != nil || back != got {
			t.Errorf("%v does not round-trip through %q: %v, %v", got, got.String(), back, err)
		}
	}
}

func TestDeleteLimitCheck(t *testing.T) {
	for _, tc := range []struct {
		limit          string
		deletes, total int64
		refused        bool
	}{
		{"50%", 0, 0, false},
		{"50%", 99, 100, false},   // below the floor of a percentage
		{"50%", 100, 1000, false}, // 10%
		{"50%", 500, 1000, false}, // exactly the limit
		{"50%", 501, 1000, true},
		{"50%", 150, 150, true},
		{"10%", 200, 1000, true},
		{"1000", 1000, 1, false},
		{"1000", 1001, 1000000, true},
		{"0", 1, 1000000, true}, // a count has no floor
		{"off", 1 << 40, 1, false},
	} {
		l, err := ParseDeleteLimit(tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		err = l.check("the pass", tc.deletes, tc.total)
		if got := err != nil; got != tc.refused {
			t.Errorf("max-delete %s, %d deletes of %d: refused = %v (%v), want %v", tc.limit, tc.deletes, tc.total, got, err, tc.refused)
		}
		var g *GuardError
		if err != nil && (!errors.Is(err, ErrGuard) || !errors.As(err, &g) || g.Guard != guardMaxDelete ||
			!strings.Contains(err.Error(), fmt.Sprint(tc.deletes)) || !strings.Contains(err.Error(), "max-delete "+tc.limit)) {
			t.Errorf("refusal %v does not name the guard, the count and the limit", err)
		}
	}
}

// TestGuardSource: the first pass records the source; a source whose root
// was replaced (a directory where a mount was) or that is empty while the
// catalog knows entries is refused until accept-new-source, which lifts it
// once and is recorded.
func TestGuardSource(t *testing.T) {
	tw := newTestWorker(t)
	tw.write(t, "d/a", "1")
	tw.write(t, "b", "2")
	if err := tw.guardSource(); err != nil {
		t.Fatalf("first pass: %v", err)
	}
	if _, err := os.Stat(tw.wd.path("source-identity")); err != nil {
		t.Fatalf("identity not recorded: %v", err)
	}
	tw.crawlAndProcess(t)
	if err := tw.guardSource(); err != nil {
		t.Fatalf("same source refused: %v", err)
	}

	// The source root replaced by another directory (an unmounted
	// filesystem leaves its mount point behind).
	if err := os.Rename(tw.src, tw.src+".real"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(tw.src, 0o755); err != nil {
		t.Fatal(err)
	}
	tw.write(t, "other", "3")
	for _, w := range []*worker{tw.worker, {cfg: tw.cfg, log: tw.log, wd: tw.wd, cat: tw.cat}} { // in memory and from the record
		err := w.guardSource()
		var g *GuardError
		if !errors.As(err, &g) || g.Guard != guardSourceIdentity || !strings.Contains(err.Error(), "root inode") ||
			!strings.Contains(err.Error(), "--accept-new-source") {
			t.Fatalf("replaced source root: err = %v, want a source-identity refusal saying how to proceed", err)
		}
	}

	// Back where it was: accepted again without anything.
	os.RemoveAll(tw.src)
	if err := os.Rename(tw.src+".real", tw.src); err != nil {
		t.Fatal(err)
	}
	if err := tw.guardSource(); err != nil {
		t.Fatalf("the recorded source back in place: %v", err)
	}

	// Emptied: refused as empty-source.
	os.RemoveAll(filepath.Join(tw.src, "d"))
	os.Remove(filepath.Join(tw.src, "b"))
	err := tw.guardSource()
	var g *GuardError
	if !errors.As(err, &g) || g.Guard != guardEmptySource {
		t.Fatalf("empty source: err = %v, want empty-source", err)
	}

	// Accepted once, recorded, and not again.
	tw.acceptSource = true
	if err := tw.guardSource(); err != nil {
		t.Fatalf("accepted empty source: %v", err)
	}
	log, err := os.ReadFile(tw.wd.path("guard.log"))
	if err != nil || !bytes.Contains(log, []byte(`"action":"accept-new-source"`)) || !bytes.Contains(log, []byte("empty")) {
		t.Fatalf("guard.log = %q, %v; want the acceptance recorded", log, err)
	}
	if err := tw.guardSource(); !errors.Is(err, ErrGuard) {
		t.Fatalf("accept-new-source lifted the guard for more than one pass: %v", err)
	}
}

// TestApplyRefusesMassDelete: a pass deleting more than max-delete applies
// nothing (the slave and the catalog keep everything); raised, it runs.
func TestApplyRefusesMassDelete(t *testing.T) {
	tw := newTestWorker(t)
	tw.failures, _ = loadFailures(tw.wd.path("failures"))
	for i := range 300 {
		tw.write(t, fmt.Sprintf("f%03d", i), "x")
	}
	tw.crawlAndProcess(t)
	for i := range 200 {
		os.Remove(filepath.Join(tw.src, fmt.Sprintf("f%03d", i)))
	}
	res, err := crawl.Hybrid(t.Context(), crawl.Config{Source: tw.src, ChangelogDir: tw.wd.path("xsync")}, tw.cat, tw.log)
	if err != nil {
		t.Fatal(err)
	}
	err = tw.apply(t.Context(), res, true)
	var g *GuardError
	if !errors.As(err, &g) || g.Guard != guardMaxDelete || !strings.Contains(g.Detail, "200 entries") {
		t.Fatalf("apply: %v, want a max-delete refusal of 200 deletes", err)
	}
	if n := len(tw.slave.entries(t, gfid.Root)); n != 300 {
		t.Fatalf("the slave holds %d names after a refused pass, want all 300", n)
	}
	if _, err := os.Stat(res.Changelog); !os.IsNotExist(err) {
		t.Fatalf("refused changelog left behind: %v", err)
	}
	tw.cfg.MaxDelete = DeleteLimit{Off: true}
	tw.crawlAndProcess(t)
	if n := len(tw.slave.entries(t, gfid.Root)); n != 100 {
		t.Fatalf("the slave holds %d names after max-delete off, want 100", n)
	}
}

// TestGuardBrickIdentity: a brick worker records its volume's id and the
// brick's trusted.glusterfs.volume-id; a brick directory without it (its
// filesystem not mounted) or with another volume's is refused.
func TestGuardBrickIdentity(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: sets trusted.* xattrs like glusterd on a brick root")
	}
	tw := newTestWorker(t)
	vol := gfid.New()
	tw.brick = &brickState{path: tw.src, volumeID: vol.String()}
	if err := unix.Setxattr(tw.src, glusterfs.VolumeIDXattr, vol[:], 0); err != nil {
		t.Skipf("trusted xattrs not supported here: %v", err)
	}
	tw.write(t, "a", "1")
	if err := tw.guardSource(); err != nil {
		t.Fatalf("first pass: %v", err)
	}
	for _, tc := range []struct {
		name  string
		set   func() error
		words string
	}{
		{"volume-id removed (brick not mounted)", func() error { return unix.Removexattr(tw.src, glusterfs.VolumeIDXattr) },
			"brick trusted.glusterfs.volume-id none, recorded " + vol.String()},
		{"another volume's brick", func() error { o := gfid.New(); return unix.Setxattr(tw.src, glusterfs.VolumeIDXattr, o[:], 0) },
			"brick trusted.glusterfs.volume-id"},
	} {
		if err := tc.set(); err != nil {
			t.Fatal(err)
		}
		err := tw.guardSource()
		var g *GuardError
		if !errors.As(err, &g) || g.Guard != guardSourceIdentity || !strings.Contains(err.Error(), tc.words) {
			t.Errorf("%s: err = %v, want source-identity saying %q", tc.name, err, tc.words)
		}
	}
	if err := unix.Setxattr(tw.src, glusterfs.VolumeIDXattr, vol[:], 0); err != nil {
		t.Fatal(err)
	}
	if err := tw.guardSource(); err != nil {
		t.Fatalf("brick back: %v", err)
	}
}
