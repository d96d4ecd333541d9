package main

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/viper"

	"github.com/georep/georep/cmd/internal/cli"
	"github.com/georep/georep/master"
)

func TestExampleConfigLoads(t *testing.T) {
	v, err := cli.Load(flags(), []string{"--config", "../../deploy/config/master-data.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := mustConfig(t, v)
	if cfg.Source != "/data" || cfg.SyncJobs != 3 || cfg.ChangeInterval != 5*time.Second || !cfg.SyncXattrs {
		t.Fatalf("example config read as %+v", cfg)
	}
}

func TestEnvironmentAndInvalidValues(t *testing.T) {
	t.Setenv("GEOREP_SYNC_JOBS", "0")
	t.Setenv("GEOREP_SOURCE", t.TempDir())
	v, err := cli.Load(flags(), []string{"--work-dir", t.TempDir(), "--slave", "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	err = mustConfig(t, v).Validate()
	if err == nil || !strings.Contains(err.Error(), "sync-jobs: 0 is outside 1..64") {
		t.Fatalf("Validate() = %v, want the key, the value and what is allowed", err)
	}
}

func TestSmallFileSize(t *testing.T) {
	v, err := cli.Load(flags(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustConfig(t, v).SmallFileSize; got != 256<<10 {
		t.Fatalf("default small-file-size %d, want 262144", got)
	}
	t.Setenv("GEOREP_SMALL_FILE_SIZE", "4194305")
	t.Setenv("GEOREP_SOURCE", t.TempDir())
	v, err = cli.Load(flags(), []string{"--work-dir", t.TempDir(), "--slave", "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	err = mustConfig(t, v).Validate()
	if err == nil || !strings.Contains(err.Error(), "small-file-size: 4194305 is outside 0..4194304") {
		t.Fatalf("Validate() = %v", err)
	}
	if _, err := cli.Load(flags(), []string{"--small-file-size", "0"}); err != nil {
		t.Fatalf("small-file-size 0 (disabled): %v", err)
	}
}

func TestSourceMustBeDirectory(t *testing.T) {
	v, err := cli.Load(flags(), []string{"--source", "/etc/hostname", "--work-dir", t.TempDir(), "--slave", "x:1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := mustConfig(t, v).Validate(); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("Validate() = %v", err)
	}
}

// TestUnparsableValuesRefused: a value from the environment or a file that
// does not parse is an error naming the key, never a silent zero value.
func TestUnparsableValuesRefused(t *testing.T) {
	for key, val := range map[string]string{
		"GEOREP_IGNORE_DELETES":  "yes",
		"GEOREP_SYNC_JOBS":       "abc",
		"GEOREP_CHANGE_INTERVAL": "5x",
	} {
		t.Run(key, func(t *testing.T) {
			t.Setenv(key, val)
			_, err := cli.Load(flags(), nil)
			if err == nil || !strings.Contains(err.Error(), "is not a valid") {
				t.Fatalf("%s=%s: err = %v", key, val, err)
			}
		})
	}
	t.Setenv("GEOREP_IGNORE_DELETES", "true")
	t.Setenv("GEOREP_CHANGE_INTERVAL", "5") // gsyncd's integer seconds
	v, err := cli.Load(flags(), nil)
	if err != nil || !mustConfig(t, v).IgnoreDeletes || mustConfig(t, v).ChangeInterval != 5*time.Second {
		t.Fatalf("GEOREP_IGNORE_DELETES=true, GEOREP_CHANGE_INTERVAL=5: %v", err)
	}
}

// mustConfig is config for a test whose values all parse.
func mustConfig(t *testing.T, v *viper.Viper) master.Config {
	t.Helper()
	cfg, err := config(v)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
