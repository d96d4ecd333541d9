package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/georep/georep/integration/harness"
)

// configRow returns the SOURCE and VALUE of key in config get's table.
func configRow(t *testing.T, target []string, key string) (value, source string) {
	t.Helper()
	code, out := ctl(t, append(target, "config", "get")...)
	if code != 0 {
		t.Fatalf("config get: exit %d\n%s", code, out)
	}
	for line := range strings.SplitSeq(out, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == key {
			return f[1], f[2]
		}
	}
	t.Fatalf("config get has no row %s:\n%s", key, out)
	return "", ""
}

// TestConfigLive: config set (gsyncd's integer seconds, checkpoint now)
// outlives a restart of the real master, over its flag, with source live;
// config reset gives back the flag's value; a key that is not live is
// refused; the defaults are gsyncd's.
func TestConfigLive(t *testing.T) {
	harness.RequireRsync(t)
	base := t.TempDir()
	src, replica, work := filepath.Join(base, "src"), filepath.Join(base, "replica"), filepath.Join(base, "work")
	for _, d := range []string{src, replica} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	slave := harness.StartSlave(t, replica, "--insecure")
	args := harness.MasterArgs(slave.Addr, src, work, "--change-interval", "3")
	m := harness.StartMasterProc(t, nil, args...)
	target := []string{"--work-dir", work}
	waitStatus(t, m, target, "an Active worker that has synced", activeSynced)

	for _, tt := range []struct{ key, value, source string }{
		{"change-interval", "3s", "flag"}, {"sync-xattrs", "true", "default"}, {"sync-acls", "true", "default"},
		{"checkpoint", `""`, "default"},
	} {
		if v, s := configRow(t, target, tt.key); v != tt.value || s != tt.source {
			t.Errorf("at start %s = %s from %s, want %s from %s", tt.key, v, s, tt.value, tt.source)
		}
	}
	if code, out := ctl(t, append(target, "config", "set", "change-interval", "7")...); code != 0 || !strings.Contains(out, "change-interval = 7s") {
		t.Fatalf("config set change-interval 7: exit %d\n%s", code, out)
	}
	if code, out := ctl(t, append(target, "config", "set", "checkpoint", "now")...); code != 0 {
		t.Fatalf("config set checkpoint now: exit %d\n%s", code, out)
	}
	cp, _ := configRow(t, target, "checkpoint")
	if code, out := ctl(t, append(target, "config", "set", "sync-xattrs", "false")...); code == 0 || !strings.Contains(out, "sync-xattrs cannot be changed while the master runs") {
		t.Errorf("config set sync-xattrs false: want a refusal, got exit %d\n%s", code, out)
	}

	m.Kill()
	m = harness.StartMasterProc(t, nil, args...)
	waitStatus(t, m, target, "an Active worker after the restart", activeSynced)
	if !strings.Contains(m.Log(), "configuration kept from georepctl config set") {
		t.Errorf("the restarted master does not log the kept key:\n%s", lastLines(m.Log(), 20))
	}
	for _, tt := range []struct{ key, value, source string }{
		{"change-interval", "7s", "live"}, {"checkpoint", cp, "live"},
	} {
		if v, s := configRow(t, target, tt.key); v != tt.value || s != tt.source {
			t.Errorf("after a restart %s = %s from %s, want %s from %s", tt.key, v, s, tt.value, tt.source)
		}
	}
	if code, out := ctl(t, append(target, "config", "reset", "change-interval")...); code != 0 || !strings.Contains(out, "change-interval = 3s (reset: flag)") {
		t.Errorf("config reset change-interval: exit %d\n%s", code, out)
	}
	if code, out := ctl(t, append(target, "config", "!checkpoint")...); code != 0 {
		t.Errorf("config '!checkpoint': exit %d\n%s", code, out)
	}
	for _, tt := range []struct{ key, value, source string }{
		{"change-interval", "3s", "flag"}, {"checkpoint", `""`, "default"},
	} {
		if v, s := configRow(t, target, tt.key); v != tt.value || s != tt.source {
			t.Errorf("after reset %s = %s from %s, want %s from %s", tt.key, v, s, tt.value, tt.source)
		}
	}
}
