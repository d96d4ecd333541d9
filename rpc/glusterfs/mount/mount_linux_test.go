package mount

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
)

func TestParseMountInfo(t *testing.T) {
	info := `22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
98 29 0:52 / /tmp/a\040b rw,nosuid,nodev,relatime shared:300 - fuse.glusterfs georep-gluster-host:/vol rw,user_id=0,group_id=0,default_permissions,allow_other,max_read=131072
99 29 0:53 / /tmp/c rw,relatime - tmpfs tmpfs rw
100 99 0:54 / /tmp/c rw,relatime - fuse.glusterfs h:/v rw
101 29 0:55 / /tmp/back\134slash rw,relatime - tmpfs tmpfs rw
`
	for _, tc := range []struct {
		dir  string
		want Info
	}{
		{"/proc", Info{true, "proc"}},
		{"/tmp/a b", Info{true, "fuse.glusterfs"}}, // octal escapes undone
		{`/tmp/a\040b`, Info{}},
		{"/tmp/c", Info{true, "fuse.glusterfs"}}, // the topmost
		{"/tmp/c/", Info{true, "fuse.glusterfs"}},
		{`/tmp/back\slash`, Info{true, "tmpfs"}},
		{"/tmp", Info{}},
	} {
		infos, err := mountinfo.GetMountsFromReader(strings.NewReader(info), onDir(tc.dir))
		if err != nil {
			t.Fatal(err)
		}
		if got := topmost(infos); got != tc.want {
			t.Errorf("%q: %+v, want %+v", tc.dir, got, tc.want)
		}
	}
	// This process's own table, through Lookup.
	if mi, err := Lookup("/proc"); err != nil || !mi.Mounted || mi.FSType != "proc" {
		t.Errorf("Lookup(/proc) = %+v, %v", mi, err)
	}
	if mi, err := Lookup(t.TempDir()); err != nil || mi.Mounted {
		t.Errorf("Lookup(a temporary directory) = %+v, %v", mi, err)
	}
}

func TestFindBinary(t *testing.T) {
	if p, err := FindBinary("/x/glusterfs", "glusterfs"); p != "/x/glusterfs" || err != nil {
		t.Errorf("an explicit path: %q, %v", p, err)
	}
	if p, err := FindBinary("", "sh"); err != nil || !filepath.IsAbs(p) {
		t.Errorf("sh: %q, %v", p, err)
	}
	if _, err := FindBinary("", "georep-no-such-binary"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("a missing binary: %v", err)
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
	base := Config{VolfileServer: "h", Volume: "v", Dir: t.TempDir(), GlusterfsPath: "/bin/true"}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
		is   error
	}{
		{"no volume", func(c *Config) { c.Volume = "" }, "required", nil},
		{"missing dir", func(c *Config) { c.Dir = filepath.Join(dir, "nope") }, "no such file", os.ErrNotExist},
		{"not a dir", func(c *Config) { c.Dir = file }, "not a directory", nil},
		{"mount point", func(c *Config) { c.Dir = "/proc" }, "already a mount point", ErrMounted},
		{"client fails", func(c *Config) {
			c.GlusterfsPath = fakeClient(t, `echo "$@" >&2; echo "0-glusterfsd: cannot reach the volfile server" >> "$(echo "$@" | sed 's/.*--log-file=\([^ ]*\).*/\1/')"; exit 1`)
		}, "cannot reach the volfile server", nil},
		{"client hangs", func(c *Config) {
			c.GlusterfsPath = fakeClient(t, `exec sleep 60`)
			c.Timeout = 300 * time.Millisecond
		}, "not mounted", context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.edit(&cfg)
			start := time.Now()
			m, err := Start(ctx, cfg)
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
