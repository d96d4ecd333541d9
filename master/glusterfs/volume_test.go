package glusterfs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testNode = "4baabd54-c9ae-4352-8e1d-b1a454214ecb"

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseVolumeInfo(t *testing.T) {
	tests := []struct {
		file          string
		name, typ     string
		status        string
		replica, disp int
		bricks        []string // host:path
		sets          []int
		servable      bool
	}{
		{
			file: "volume-info-dist-rep-2x2.xml", name: "capdr", typ: "Distributed-Replicate", status: "Started",
			replica: 2,
			bricks: []string{"georep-gluster-host:/tmp/cap/b0", "georep-gluster-host:/tmp/cap/b1",
				"georep-gluster-host:/tmp/cap/b2", "georep-gluster-host:/tmp/cap/b3"},
			sets: []int{0, 0, 1, 1}, servable: true,
		},
		{
			file: "volume-info-dist-created.xml", name: "capdist", typ: "Distribute", status: "Created",
			replica: 1,
			bricks:  []string{"georep-gluster-host:/tmp/cap/d0", "georep-gluster-host:/tmp/cap/d1"},
			sets:    []int{0, 1},
		},
		{
			file: "volume-info-disperse.xml", name: "capec", typ: "Disperse", status: "Created",
			replica: 1, disp: 3,
			bricks: []string{"georep-gluster-host:/tmp/cap/e0", "georep-gluster-host:/tmp/cap/e1", "georep-gluster-host:/tmp/cap/e2"},
			sets:   []int{0, 0, 0},
		},
		{
			file: "volume-info-replica2.xml", name: "capture", typ: "Replicate", status: "Started",
			replica: 2,
			bricks:  []string{"georep-gluster-host:/tmp/cap/b0", "georep-gluster-host:/tmp/cap/b1"},
			sets:    []int{0, 0}, servable: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			vols, err := ParseVolumeInfo(readTestdata(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if len(vols) != 1 {
				t.Fatalf("%d volumes, want 1", len(vols))
			}
			v := vols[0]
			if v.Name != tc.name || v.Type != tc.typ || v.Status != tc.status || v.ReplicaCount != tc.replica || v.DisperseCount != tc.disp {
				t.Errorf("volume %+v", v)
			}
			if len(v.ID) != 36 {
				t.Errorf("id %q", v.ID)
			}
			var got []string
			for i, b := range v.Bricks {
				got = append(got, b.String())
				if b.Index != i || b.ReplicaSet != tc.sets[i] {
					t.Errorf("brick %d: index %d, set %d, want set %d", i, b.Index, b.ReplicaSet, tc.sets[i])
				}
				if b.HostUUID == "" {
					t.Errorf("brick %d: no host uuid", i)
				}
			}
			if strings.Join(got, " ") != strings.Join(tc.bricks, " ") {
				t.Errorf("bricks %v, want %v", got, tc.bricks)
			}
			if err := v.Servable(); (err == nil) != tc.servable || (err != nil && !errors.Is(err, ErrNotServable)) {
				t.Errorf("Servable() = %v, want servable %v", err, tc.servable)
			}
		})
	}
}

func TestParseVolumeInfoAll(t *testing.T) {
	vols, err := ParseVolumeInfo(readTestdata(t, "volume-info-all.xml"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range vols {
		names = append(names, v.Name)
	}
	if len(vols) != 4 {
		t.Fatalf("volumes %v, want 4", names)
	}
}

func TestParseVolumeInfoErrors(t *testing.T) {
	_, err := ParseVolumeInfo(readTestdata(t, "volume-info-missing.xml"))
	var ce *CLIError
	if !errors.As(err, &ce) || !errors.Is(err, ErrNoVolume) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing volume: %v", err)
	}

	good := string(readTestdata(t, "volume-info-dist-rep-2x2.xml"))
	for _, tc := range []struct{ name, old, new string }{
		{"not xml", good, "gluster: command not found"},
		{"bad id", "<id>a25c04a0-5fac-42d0-a9b3-64589592fabd</id>", "<id>nope</id>"},
		{"brick count", "<brickCount>4</brickCount>", "<brickCount>5</brickCount>"},
		{"set size", "<replicaCount>2</replicaCount>", "<replicaCount>3</replicaCount>"},
		{"brick name", "<name>georep-gluster-host:/tmp/cap/b0</name>", "<name>/tmp/cap/b0</name>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseVolumeInfo([]byte(strings.Replace(good, tc.old, tc.new, 1))); err == nil {
				t.Error("no error")
			}
		})
	}
}

func TestServable(t *testing.T) {
	for _, tc := range []struct {
		v    Volume
		want string // substring of the error, "" for servable
	}{
		{Volume{Name: "a", Type: "Distribute", Status: "Started"}, ""},
		{Volume{Name: "a", Type: "Replicate", Status: "Stopped"}, "not Started"},
		{Volume{Name: "a", Type: "Distribute", Status: "Created"}, "not Started"},
		{Volume{Name: "a", Type: "Disperse", Status: "Started", DisperseCount: 3}, "erasure-coded"},
		{Volume{Name: "a", Type: "Distributed-Disperse", Status: "Started", DisperseCount: 3}, "erasure-coded"},
	} {
		err := tc.v.Servable()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrNotServable)) {
			t.Errorf("%+v: Servable() = %v, want %q", tc.v, err, tc.want)
		}
	}
}

func TestLocalBricks(t *testing.T) {
	vols, err := ParseVolumeInfo(readTestdata(t, "volume-info-dist-rep-2x2.xml"))
	if err != nil {
		t.Fatal(err)
	}
	v := vols[0]
	v.Bricks[1].HostUUID = "11111111-1111-1111-1111-111111111111"
	got := v.LocalBricks(strings.ToUpper(testNode))
	if len(got) != 3 || got[0].Index != 0 || got[1].Index != 2 || got[2].Index != 3 {
		t.Errorf("LocalBricks = %+v", got)
	}
	if got := v.LocalBricks("22222222-2222-2222-2222-222222222222"); len(got) != 0 {
		t.Errorf("LocalBricks of another node = %+v", got)
	}
}

func TestParseBrickName(t *testing.T) {
	for _, tc := range []struct{ in, host, path string }{
		{"h:/b", "h", "/b"},
		{"h.example:/data/brick1/", "h.example", "/data/brick1"},
		{"fe80::1:/b", "fe80::1", "/b"},
		{"h:b", "", ""},
		{":/b", "", ""},
	} {
		b, err := parseBrickName(tc.in)
		if (err != nil) != (tc.host == "") || b.Host != tc.host || b.Path != tc.path {
			t.Errorf("parseBrickName(%q) = %+v, %v", tc.in, b, err)
		}
	}
}

func TestReadNodeUUID(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ content, want string }{
		{"UUID=4BAABD54-c9ae-4352-8e1d-b1a454214ecb\noperating-version=100000\n", testNode},
		{"operating-version=100000\nUUID=" + testNode, testNode},
		{"operating-version=100000\n", ""},
		{"UUID=nope\n", ""},
	} {
		p := filepath.Join(dir, "glusterd.info")
		if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := ReadNodeUUID(p)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("%q: %q, %v; want %q", tc.content, got, err, tc.want)
		}
	}
	if _, err := ReadNodeUUID(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestGetVolumeFakeCLI runs GetVolume against a shell script standing in for
// the gluster CLI.
func TestGetVolumeFakeCLI(t *testing.T) {
	dir := t.TempDir()
	fake := func(t *testing.T, script string) string {
		t.Helper()
		p := filepath.Join(dir, t.Name()[strings.LastIndexByte(t.Name(), '/')+1:])
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, _ := filepath.Abs(filepath.Join("testdata", "volume-info-dist-rep-2x2.xml"))
	missing, _ := filepath.Abs(filepath.Join("testdata", "volume-info-missing.xml"))
	ctx := context.Background()

	t.Run("ok", func(t *testing.T) {
		args := filepath.Join(dir, "args")
		cli := fake(t, `echo "$@" > `+args+`; cat `+good)
		v, err := GetVolume(ctx, cli, "localhost", "capdr")
		if err != nil || v.Name != "capdr" || len(v.Bricks) != 4 {
			t.Fatalf("GetVolume = %+v, %v", v, err)
		}
		b, _ := os.ReadFile(args)
		if got := strings.TrimSpace(string(b)); got != "--mode=script --xml volume info capdr" {
			t.Errorf("args %q", got)
		}
	})
	t.Run("remote", func(t *testing.T) {
		args := filepath.Join(dir, "args")
		cli := fake(t, `echo "$@" > `+args+`; cat `+good)
		// 192.0.2.1 (TEST-NET-1) is nobody's interface address.
		if _, err := GetVolume(ctx, cli, "192.0.2.1", "capdr"); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(args)
		if !strings.Contains(string(b), "--remote-host=192.0.2.1") {
			t.Errorf("args %q", b)
		}
	})
	t.Run("missing", func(t *testing.T) {
		_, err := GetVolume(ctx, fake(t, `cat `+missing), "", "nosuch")
		if !errors.Is(err, ErrNoVolume) || !strings.Contains(err.Error(), "nosuch") || !strings.Contains(err.Error(), "Volume does not exist") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("other name", func(t *testing.T) {
		_, err := GetVolume(ctx, fake(t, `cat `+good), "", "other")
		if err == nil || !strings.Contains(err.Error(), "other") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("cli fails", func(t *testing.T) {
		_, err := GetVolume(ctx, fake(t, `echo "Connection failed. Please check if gluster daemon is operational." >&2; exit 1`), "", "v1")
		if err == nil || !strings.Contains(err.Error(), "gluster daemon is operational") || !strings.Contains(err.Error(), "v1") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("no binary", func(t *testing.T) {
		_, err := GetVolume(ctx, filepath.Join(dir, "nonexistent"), "", "v1")
		if err == nil || !strings.Contains(err.Error(), "v1") {
			t.Errorf("err = %v", err)
		}
	})
}
