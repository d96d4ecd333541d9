package gluster

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func TestParseVolumeInfo(t *testing.T) {
	// Captured from GlusterFS 10.3: gluster volume info capture --xml.
	data, err := os.ReadFile("testdata/volume-info.xml")
	if err != nil {
		t.Fatal(err)
	}
	infos, err := parseVolumeInfo(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 {
		t.Fatalf("got %d volumes", len(infos))
	}
	got := infos[0]
	want := VolumeInfo{
		Name: "capture", ID: "2d0baf35-14b8-4b37-8dab-b6bd67345242", Status: "Started", Type: "Replicate",
		BrickCount: 2, DistCount: 1, ReplicaCount: 2,
		Bricks: []Brick{{"georep-gluster-host", "/tmp/cap/b0"}, {"georep-gluster-host", "/tmp/cap/b1"}},
	}
	opts := got.Options
	got.Options = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if len(opts) != 6 || opts["changelog.changelog"] != "on" || opts["transport.address-family"] != "inet" {
		t.Errorf("options %v", opts)
	}

	// The CLI exits 0 with --xml even when the operation failed.
	data, err = os.ReadFile("testdata/volume-info-missing.xml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseVolumeInfo(data); err == nil || !strings.Contains(err.Error(), "Volume does not exist") {
		t.Errorf("missing volume: err %v", err)
	}
}

func TestBricksOnline(t *testing.T) {
	// Captured from GlusterFS 10.3 (gluster volume status capture --xml),
	// then edited: brick b1 made offline the way the CLI shows a dead brick.
	data, err := os.ReadFile("testdata/volume-status.xml")
	if err != nil {
		t.Fatal(err)
	}
	up := &Volume{Name: "capture", Bricks: []Brick{{"georep-gluster-host", "/tmp/cap/b0"}}}
	if err := up.bricksOnline(data); err != nil {
		t.Errorf("b0: %v", err)
	}
	down := &Volume{Name: "capture", Bricks: []Brick{{"georep-gluster-host", "/tmp/cap/b0"}, {"georep-gluster-host", "/tmp/cap/b1"}}}
	if err := down.bricksOnline(data); err == nil || !strings.Contains(err.Error(), "/tmp/cap/b1") {
		t.Errorf("b0+b1: err %v, want b1 offline", err)
	}
}

func TestLayout(t *testing.T) {
	for _, tc := range []struct {
		opts            VolumeOpts
		bricks, replica int
		wantErr         bool
	}{
		{VolumeOpts{}, 1, 1, false},
		{VolumeOpts{Bricks: 3}, 3, 1, false},
		{VolumeOpts{Replica: 2}, 2, 2, false},
		{VolumeOpts{Bricks: 4, Replica: 2}, 4, 2, false},
		{VolumeOpts{Bricks: 3, Replica: 2}, 0, 0, true},
		{VolumeOpts{Bricks: -1}, 0, 0, true},
		{VolumeOpts{Replica: -2}, 0, 0, true},
	} {
		b, r, err := tc.opts.layout()
		if (err != nil) != tc.wantErr || b != tc.bricks || r != tc.replica {
			t.Errorf("%+v: %d bricks, replica %d, err %v", tc.opts, b, r, err)
		}
	}
}

func TestVolumeName(t *testing.T) {
	valid := regexp.MustCompile(`^georep-[A-Za-z0-9_-]{1,32}-[0-9a-f]{8}$`)
	for _, name := range []string{"smoke", "Test/sub test", strings.Repeat("x", 100), "ünï"} {
		if got := volumeName(name); !valid.MatchString(got) {
			t.Errorf("volumeName(%q) = %q", name, got)
		}
	}
	if volumeName("a") == volumeName("a") {
		t.Error("two volumes of one name are not unique")
	}
}
