package glusterfs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseMountInfo(t *testing.T) {
	info := []byte(`22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
98 29 0:52 / /tmp/a\040b rw,nosuid,nodev,relatime shared:300 - fuse.glusterfs georep-gluster-host:/vol rw,user_id=0,group_id=0,default_permissions,allow_other,max_read=131072
99 29 0:53 / /tmp/c rw,relatime - tmpfs tmpfs rw
100 99 0:54 / /tmp/c rw,relatime - fuse.glusterfs h:/v rw
`)
	for _, tc := range []struct {
		dir  string
		want mountEntry
	}{
		{"/proc", mountEntry{true, "proc"}},
		{"/tmp/a b", mountEntry{true, "fuse.glusterfs"}},
		{`/tmp/a\040b`, mountEntry{}},
		{"/tmp/c", mountEntry{true, "fuse.glusterfs"}}, // the topmost
		{"/tmp", mountEntry{}},
	} {
		if got := parseMountInfo(info, tc.dir); got != tc.want {
			t.Errorf("%q: %+v, want %+v", tc.dir, got, tc.want)
		}
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 8}
	b.Write([]byte("0123"))
	b.Write([]byte("456789ab"))
	if got := b.String(); got != "456789ab" {
		t.Errorf("%q", got)
	}
	if got := tailLines("a\nb\nc\n", 2); got != "b\nc" {
		t.Errorf("%q", got)
	}
}

// fakeClient writes a shell script standing in for glusterfs.
func fakeClient(t *testing.T, script string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "glusterfs")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMountFailures(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	base := MountConfig{VolfileServer: "h", Volume: "v", Dir: t.TempDir(), GlusterfsPath: "/bin/true"}
	for _, tc := range []struct {
		name string
		edit func(*MountConfig)
		want string
		is   error
	}{
		{"no volume", func(c *MountConfig) { c.Volume = "" }, "required", nil},
		{"missing dir", func(c *MountConfig) { c.Dir = filepath.Join(dir, "nope") }, "no such file", os.ErrNotExist},
		{"not a dir", func(c *MountConfig) { c.Dir = file }, "not a directory", nil},
		{"mount point", func(c *MountConfig) { c.Dir = "/proc" }, "already a mount point", ErrMounted},
		{"client fails", func(c *MountConfig) {
			c.GlusterfsPath = fakeClient(t, `echo "$@" >&2; echo "0-glusterfsd: cannot reach the volfile server" >> "$(echo "$@" | sed 's/.*--log-file=\([^ ]*\).*/\1/')"; exit 1`)
		}, "cannot reach the volfile server", nil},
		{"client hangs", func(c *MountConfig) {
			c.GlusterfsPath = fakeClient(t, `exec sleep 60`)
			c.Timeout = 300 * time.Millisecond
		}, "not mounted", context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.edit(&cfg)
			start := time.Now()
			m, err := Mount(ctx, cfg)
			if err == nil {
				m.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
			if time.Since(start) > 10*time.Second {
				t.Errorf("took %v", time.Since(start))
			}
		})
	}
	// The failing client's temporary log is removed.
	left, _ := filepath.Glob(filepath.Join(os.TempDir(), "georep-glusterfs-v-*.log"))
	if len(left) > 0 {
		t.Errorf("temporary logs left: %v", left)
	}
}
func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		`/tmp/plain`:         "/tmp/plain",
		`/tmp/with\040space`: "/tmp/with space",
		`/tmp/back\134slash`: `/tmp/back\slash`,
		`/tmp/trailing\04`:   `/tmp/trailing\04`,
	} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}
