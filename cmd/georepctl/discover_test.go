package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/georep/georep/master/glusterfs"
)

// fixtureVolume is a getVolume that parses a `gluster volume info --xml`
// fixture.
func fixtureVolume(t *testing.T, path string) getVolume {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return func(ctx context.Context, cliPath, volfileServer, name string) (*glusterfs.Volume, error) {
		vols, err := glusterfs.ParseVolumeInfo(b)
		if err != nil {
			return nil, err
		}
		for i := range vols {
			if vols[i].Name == name {
				return &vols[i], nil
			}
		}
		return nil, glusterfs.ErrNoVolume
	}
}

func TestDiscoverMasters(t *testing.T) {
	tests := []struct {
		name    string
		fixture string
		volume  string
		port    int
		want    []string
		wantErr string
	}{
		{name: "three nodes, an arbiter, IPv6", fixture: "testdata/volume-info-3nodes.xml", volume: "mvol", port: 7101,
			want: []string{"node1.example.net:7101", "Node2.example.net:7101", "[fd00::3]:7101"}},
		{name: "one node holding every brick", fixture: "../../master/glusterfs/testdata/volume-info-dist-rep-2x2.xml", volume: "capdr", port: 7200,
			want: []string{"georep-gluster-host:7200"}},
		{name: "no such volume", fixture: "testdata/volume-info-3nodes.xml", volume: "other", port: 7101,
			wantErr: "finding the masters of volume other: volume does not exist"},
		{name: "unknown to glusterd", fixture: "../../master/glusterfs/testdata/volume-info-missing.xml", volume: "nosuch", port: 7101,
			wantErr: "Volume does not exist"},
		{name: "bad port", fixture: "testdata/volume-info-3nodes.xml", volume: "mvol", port: 70000, wantErr: "--status-port 70000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := discoverMasters(t.Context(), fixtureVolume(t, tc.fixture), "", tc.volume, tc.port)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("discoverMasters = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestGlusterVolumeFlag runs georepctl --gluster-volume against a script
// standing in for the gluster CLI, answering with a two-node volume whose
// nodes are fake masters on 127.0.0.1 and 127.0.0.2 at one port.
func TestGlusterVolumeFlag(t *testing.T) {
	a, b := newFakeMaster("n1", "/tmp/cap/b0"), newFakeMaster("n2", "/tmp/cap/b1")
	aa := a.serve(t, "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(aa)
	lis, err := net.Listen("tcp", net.JoinHostPort("127.0.0.2", port))
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.2:%s: %v", port, err)
	}
	lis.Close()
	b.serve(t, net.JoinHostPort("127.0.0.2", port))

	xml, err := os.ReadFile("../../master/glusterfs/testdata/volume-info-replica2.xml")
	if err != nil {
		t.Fatal(err)
	}
	xml = []byte(strings.NewReplacer("georep-gluster-host:/tmp/cap/b0", "127.0.0.1:/tmp/cap/b0",
		"georep-gluster-host:/tmp/cap/b1", "127.0.0.2:/tmp/cap/b1").Replace(string(xml)))
	dir := t.TempDir()
	info, args := filepath.Join(dir, "info.xml"), filepath.Join(dir, "args")
	if err := os.WriteFile(info, xml, 0o644); err != nil {
		t.Fatal(err)
	}
	cli := filepath.Join(dir, "gluster")
	if err := os.WriteFile(cli, []byte("#!/bin/sh\necho \"$@\" > "+args+"\ncat "+info+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	code, out, errs := ctl(t, "--gluster-volume", "capture", "--gluster-cli", cli, "--status-port", port, "status")
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	contains(t, "status", out, "127.0.0.1:"+port+"  n1", "127.0.0.2:"+port+"  n2", "2 of 2 nodes answered")
	if got, _ := os.ReadFile(args); strings.TrimSpace(string(got)) != "--mode=script --xml volume info capture" {
		t.Errorf("gluster CLI args %q", got)
	}

	code, _, errs = ctl(t, "--gluster-volume", "nosuch", "--gluster-cli", cli, "status")
	if code != exitError || !strings.Contains(errs, "finding the masters of volume nosuch") {
		t.Errorf("an unknown volume: exit %d\n%s", code, errs)
	}
}
