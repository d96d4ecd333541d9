package gluster_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/georep/georep/integration/gluster"
)

// TestClusterSmoke checks what georep's GlusterFS tests rely on: volumes of
// each layout can be created, started and mounted, bricks carry gfids, the
// changelog translator writes changelogs, and an aux-gfid mount resolves
// gfids.
func TestClusterSmoke(t *testing.T) {
	c := gluster.Start(t)

	t.Run("changelog", func(t *testing.T) {
		v := c.Volume(t, "smoke", gluster.VolumeOpts{Bricks: 1, Changelog: true, RolloverTime: time.Second})
		if info := v.Info(t); info.Status != "Started" || info.Options["changelog.changelog"] != "on" || v.ID == "" {
			t.Fatalf("volume info: %+v (id %q)", info, v.ID)
		}
		brick := v.Bricks[0]
		changelogs := filepath.Join(brick.Path, ".glusterfs", "changelogs")
		// The changelog translator opens its HTIME index when the brick starts.
		htimes := waitGlob(t, filepath.Join(changelogs, "htime", "HTIME.*"), 10*time.Second)
		t.Logf("index %s", htimes[0])

		mnt := v.Mount(t)
		write(t, filepath.Join(mnt, "a.txt"), "alpha")
		if err := os.Mkdir(filepath.Join(mnt, "dir"), 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(mnt, "dir", "b.txt"), "bravo")
		gfidA := gfid(t, brick, "a.txt")
		if err := os.Rename(filepath.Join(mnt, "a.txt"), filepath.Join(mnt, "dir", "a-renamed.txt")); err != nil {
			t.Fatal(err)
		}
		if got := gfid(t, brick, "dir/a-renamed.txt"); got != gfidA {
			t.Errorf("gfid after rename %s, before %s", got, gfidA)
		}
		if _, err := os.Lstat(filepath.Join(brick.Path, "a.txt")); !os.IsNotExist(err) {
			t.Errorf("a.txt still on the brick after the rename: %v", err)
		}
		gfidDir, gfidB := gfid(t, brick, "dir"), gfid(t, brick, "dir/b.txt")
		if gfidA == gfidB || gfidA == gfidDir || gfidB == gfidDir {
			t.Errorf("gfids not distinct: %s %s %s", gfidA, gfidDir, gfidB)
		}

		// Changes are journalled into CHANGELOG, which the translator rolls
		// over (when not empty) into <changelogs>/YYYY/MM/DD/CHANGELOG.<epoch>;
		// the writes above may be spread over several.
		name := regexp.MustCompile(`^\d{4}/\d{2}/\d{2}/CHANGELOG\.\d+$`)
		want := []string{"E" + gfidB, "D" + gfidB, "E" + gfidDir}
		deadline := time.Now().Add(30 * time.Second)
		for {
			var all []byte
			rolled := 0
			filepath.WalkDir(changelogs, func(p string, d fs.DirEntry, err error) error {
				rel, _ := filepath.Rel(changelogs, p)
				if err != nil || !d.Type().IsRegular() || !name.MatchString(rel) {
					return nil
				}
				b, err := os.ReadFile(p)
				if err != nil {
					t.Error(err)
				}
				if !bytes.HasPrefix(b, []byte("GlusterFS Changelog | version: v1.")) {
					t.Errorf("%s starts with %q", p, b[:min(len(b), 60)])
				}
				if rolled == 0 {
					t.Logf("changelog %s: %q", rel, b[:min(len(b), 120)])
				}
				rolled++
				all = append(all, b...)
				return nil
			})
			missing := slices.DeleteFunc(slices.Clone(want), func(r string) bool { return bytes.Contains(all, []byte(r)) })
			if len(missing) == 0 {
				t.Logf("%d changelogs rolled over", rolled)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("records %q not in the %d changelogs under %s after 30s:\n%s", missing, rolled, changelogs, listTree(changelogs))
			}
			time.Sleep(200 * time.Millisecond)
		}

		aux := v.AuxMount(t)
		fi, err := os.Stat(filepath.Join(aux, ".gfid", gfidB))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.Mode().IsRegular() || fi.Size() != int64(len("bravo")) {
			t.Errorf(".gfid/%s: mode %v size %d, want the 5-byte file dir/b.txt", gfidB, fi.Mode(), fi.Size())
		}
		if fi, err := os.Stat(filepath.Join(aux, ".gfid", gfidDir)); err != nil || !fi.IsDir() {
			t.Errorf(".gfid/%s (dir): %v, %v", gfidDir, fi, err)
		}
		if got, err := os.ReadFile(filepath.Join(aux, ".gfid", gfidA)); err != nil || string(got) != "alpha" {
			t.Errorf(".gfid/%s (dir/a-renamed.txt): %q, %v", gfidA, got, err)
		}
	})

	t.Run("distribute", func(t *testing.T) {
		v := c.Volume(t, "dist", gluster.VolumeOpts{Bricks: 2})
		if info := v.Info(t); info.Type != "Distribute" || info.BrickCount != 2 || len(info.Bricks) != 2 {
			t.Fatalf("volume info: %+v", info)
		}
		mnt := v.Mount(t)
		if err := os.Mkdir(filepath.Join(mnt, "d"), 0o755); err != nil {
			t.Fatal(err)
		}
		const n = 20
		for i := range n {
			write(t, filepath.Join(mnt, "d", fmt.Sprintf("f%02d", i)), "x")
		}
		// A directory exists on every brick with one gfid; a file on one.
		if g0, g1 := gfid(t, v.Bricks[0], "d"), gfid(t, v.Bricks[1], "d"); g0 != g1 {
			t.Errorf("directory d has gfid %s on brick 0, %s on brick 1", g0, g1)
		}
		perBrick := make([]int, 2)
		for i := range n {
			on := 0
			for j, b := range v.Bricks {
				if _, err := os.Lstat(filepath.Join(b.Path, "d", fmt.Sprintf("f%02d", i))); err == nil {
					on++
					perBrick[j]++
				}
			}
			if on != 1 {
				t.Errorf("f%02d is on %d bricks", i, on)
			}
		}
		t.Logf("files per brick: %v", perBrick)
	})

	t.Run("replica", func(t *testing.T) {
		v := c.Volume(t, "repl", gluster.VolumeOpts{Bricks: 2, Replica: 2})
		if info := v.Info(t); info.Type != "Replicate" || info.ReplicaCount != 2 || len(info.Bricks) != 2 {
			t.Fatalf("volume info: %+v", info)
		}
		mnt := v.Mount(t)
		write(t, filepath.Join(mnt, "r.txt"), "replicated")
		var gfids []string
		for _, b := range v.Bricks {
			got, err := os.ReadFile(filepath.Join(b.Path, "r.txt"))
			if err != nil || string(got) != "replicated" {
				t.Errorf("r.txt on %s: %q, %v", b.Path, got, err)
			}
			gfids = append(gfids, gfid(t, b, "r.txt"))
		}
		if gfids[0] != gfids[1] {
			t.Errorf("r.txt has gfids %v on the two replicas", gfids)
		}
	})
}

func write(t *testing.T, p, data string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func gfid(t *testing.T, b gluster.Brick, rel string) string {
	t.Helper()
	g, err := b.GFID(rel)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func waitGlob(t *testing.T, pattern string, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		if len(m) > 0 {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing matches %s after %v", pattern, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func listTree(root string) string {
	var b strings.Builder
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		fmt.Fprintln(&b, p, err)
		return nil
	})
	return b.String()
}
