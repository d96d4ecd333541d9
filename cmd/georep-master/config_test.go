package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/georep/georep/cmd/internal/cli"
)

// TestInvalidValuesRefusedAtStart: a bad value, from a flag, the
// environment or the config file, is refused before anything starts, with
// the key, the value and what is allowed.
func TestInvalidValuesRefusedAtStart(t *testing.T) {
	src := t.TempDir()
	base := []string{"--source", src, "--work-dir", t.TempDir(), "--slave", "127.0.0.1:1"}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		file string // config file contents (YAML)
		want string
	}{
		{name: "flag out of range", args: []string{"--sync-jobs", "65"}, want: "sync-jobs: 65 is outside 1..64"},
		{name: "flag not a number", args: []string{"--sync-jobs", "many"}, want: `"many"`},
		{name: "env not a duration", env: map[string]string{"GEOREP_CHANGE_INTERVAL": "soon"}, want: `change-interval: "soon" is not a valid duration`},
		{name: "env too short", env: map[string]string{"GEOREP_CHANGE_INTERVAL": "10ms"}, want: "change-interval: 10ms is shorter than 100ms"},
		{name: "file detector", file: "change-detector: inotify\n", want: `change-detector: "inotify" is not one of changelog, xsync`},
		{name: "file not a bool", file: "ignore-deletes: maybe\n", want: `ignore-deletes: "maybe" is not a valid bool`},
		{name: "file unknown key", file: "sync_jobs: 3\n", want: "unknown keys sync_jobs"},
		{name: "log level", args: []string{"--log-level", "loud"}, want: `log-level: "loud" is not one of debug, info, warn, error`},
		{name: "log format", args: []string{"--log-format", "xml"}, want: `log-format: "xml" is not one of text, json`},
		{name: "small file size", args: []string{"--small-file-size", "-1"}, want: "small-file-size: -1 is outside 0..4194304"},
		{name: "max-delete flag", args: []string{"--max-delete", "lots"}, want: `max-delete: "lots" is not a percentage (50%), a count (1000) or off`},
		{name: "max-delete env percent", env: map[string]string{"GEOREP_MAX_DELETE": "150%"}, want: `max-delete: "150%" is not a percentage in (0,100]%`},
		{name: "max-delete file", file: "max-delete: -3\n", want: `max-delete: "-3"`},
		{name: "accept-new-source env", env: map[string]string{"GEOREP_ACCEPT_NEW_SOURCE": "sure"}, want: `accept-new-source: "sure" is not a valid bool`},
		{name: "bandwidth-limit flag", args: []string{"--bandwidth-limit", "fast"}, want: `bandwidth-limit: "fast" is not a rate such as 20MiB/s`},
		{name: "bandwidth-limit env too low", env: map[string]string{"GEOREP_BANDWIDTH_LIMIT": "10B/s"}, want: `bandwidth-limit: "10B/s" is below the least of 1KiB/s`},
		{name: "dry-run without oneshot", args: []string{"--dry-run"}, want: "dry-run: goes with --oneshot"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			args := append(append([]string(nil), base...), tc.args...)
			if tc.file != "" {
				p := filepath.Join(t.TempDir(), "master.yaml")
				if err := os.WriteFile(p, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", p)
			}
			err := startErr(args)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("start with %v: err = %v, want one saying %q", args, err, tc.want)
			}
		})
	}
	if err := startErr(append(base, "--status-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--bandwidth-limit", "20MiB/s")); err != nil {
		t.Fatalf("valid configuration refused: %v", err)
	}
}

// startErr is what main checks before starting the master.
func startErr(args []string) error {
	v, err := cli.Load(flags(), args)
	if err != nil {
		return err
	}
	if _, _, err := cli.LoggerLevel(v, io.Discard); err != nil {
		return err
	}
	cfg, err := config(v)
	if err != nil {
		return err
	}
	return cfg.Validate()
}
