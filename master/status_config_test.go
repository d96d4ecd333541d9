package master

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// restartable opens the work dir dir and a monitor over it, as a start of
// the master does, and closes them with the test or with stop.
func restartable(t *testing.T, cfg Config, dir string) (*monitor, func()) {
	t.Helper()
	wd, err := openWorkDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg.WorkDir = dir
	m, err := newMonitor(cfg, wd, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		wd.close()
		t.Fatal(err)
	}
	return m, func() { wd.close() }
}

func get(t *testing.T, m *monitor, key string) configValue {
	t.Helper()
	v, err := m.getConfig(key)
	if err != nil || len(v) != 1 {
		t.Fatalf("getConfig(%s) = %v, %v", key, v, err)
	}
	return v[0]
}

// TestLiveConfigPersists: config set outlives a restart, over the value the
// flags gave (source live); config reset gives back the configuration's
// value and source, and that too outlives a restart; checkpoint is a key.
func TestLiveConfigPersists(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "work")
	cfg := DefaultConfig()
	cfg.LogLevel = new(slog.LevelVar)
	cfg.ChangeInterval = 3 * time.Second
	cfg.Sources = map[string]string{"change-interval": "flag", "max-delete": "file"}

	m, stop := restartable(t, cfg, dir)
	for _, kv := range [][2]string{{"change-interval", "7"}, {"max-delete", "off"}, {"bandwidth-limit", "1MiB/s"}, {"log-level", "debug"}, {"checkpoint", "now"}} {
		if _, err := m.setConfig(kv[0], kv[1]); err != nil {
			t.Fatalf("set %s %s: %v", kv[0], kv[1], err)
		}
	}
	cp := get(t, m, "checkpoint").Value
	stop()

	cfg.LogLevel = new(slog.LevelVar) // a new process's logger
	m, stop = restartable(t, cfg, dir)
	for _, tt := range []struct{ key, value, source string }{
		{"change-interval", "7s", "live"},
		{"max-delete", "off", "live"},
		{"bandwidth-limit", "1MiB/s", "live"},
		{"log-level", "debug", "live"},
		{"checkpoint", cp, "live"},
		{"sync-jobs", "3", "default"},
		{"sync-xattrs", "true", "default"},
	} {
		if v := get(t, m, tt.key); v.Value != tt.value || v.Source != tt.source {
			t.Errorf("after a restart %s = %q from %s, want %q from %s", tt.key, v.Value, v.Source, tt.value, tt.source)
		}
	}
	if cp == "" || m.changeInterval() != 7*time.Second || cfg.LogLevel.Level() != slog.LevelDebug || !m.deleteLimit().Off {
		t.Fatalf("the restarted master runs with change-interval %s, log level %s, max-delete %s, checkpoint %q",
			m.changeInterval(), cfg.LogLevel.Level(), m.deleteLimit(), cp)
	}
	for _, tt := range []struct{ key, value, source string }{
		{"change-interval", "3s", "flag"},
		{"max-delete", DefaultDeleteLimit.String(), "file"},
		{"log-level", "info", "default"},
		{"checkpoint", "", "default"},
	} {
		v, err := m.resetConfig(tt.key)
		if err != nil || v.Value != tt.value || v.Source != tt.source || get(t, m, tt.key) != v {
			t.Errorf("reset %s = %+v, %v; want %q from %s", tt.key, v, err, tt.value, tt.source)
		}
	}
	if _, err := m.resetConfig("change-interval"); err != nil {
		t.Errorf("a second reset: %v", err)
	}
	for _, tt := range []struct {
		key string
		err error
	}{{"sync-jobs", errNotLive}, {"no-such-key", errUnknownKey}} {
		if _, err := m.resetConfig(tt.key); !errors.Is(err, tt.err) {
			t.Errorf("reset %s: %v, want %v", tt.key, err, tt.err)
		}
	}
	stop()

	m, stop = restartable(t, cfg, dir)
	defer stop()
	for _, tt := range []struct{ key, value, source string }{
		{"change-interval", "3s", "flag"},
		{"bandwidth-limit", "1MiB/s", "live"}, // not reset
		{"checkpoint", "", "default"},
	} {
		if v := get(t, m, tt.key); v.Value != tt.value || v.Source != tt.source {
			t.Errorf("after reset and restart %s = %q from %s, want %q from %s", tt.key, v.Value, v.Source, tt.value, tt.source)
		}
	}
}

// TestLiveFileRefused: a live file that does not read, or holds a key that
// is not live or a bad value, stops the start naming the file and the key.
func TestLiveFileRefused(t *testing.T) {
	for _, tt := range []struct{ name, content, want string }{
		{"not JSON", "{change-interval", "config-live.json"},
		{"not live", `{"sync-jobs": "4"}`, "sync-jobs cannot be changed"},
		{"unknown", `{"speed": "4"}`, `unknown key "speed"`},
		{"checkpoint", `{"checkpoint": "now"}`, `unknown key "checkpoint"`},
		{"bad value", `{"max-delete": "lots"}`, `max-delete: "lots"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "work")
			wd, err := openWorkDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer wd.close()
			if err := os.WriteFile(wd.path(liveFile), []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err = newMonitor(DefaultConfig(), wd, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("newMonitor = %v, want ErrConfig saying %q", err, tt.want)
			}
		})
	}
}

func TestParseCheckpointTime(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		in   string
		want time.Time
		err  bool
	}{
		{in: "now", want: now},
		{in: "2026-12-01T08:00:00Z", want: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)},
		{in: "1780000000", want: time.Unix(1780000000, 0)}, // gsyncd's epoch seconds
		{in: "yesterday", err: true},
		{in: "0", err: true},
		{in: "", err: true},
	} {
		got, err := parseCheckpointTime(tt.in, now)
		if (err != nil) != tt.err || !got.Equal(tt.want) {
			t.Errorf("parseCheckpointTime(%q) = %v, %v", tt.in, got, err)
		}
	}
}
