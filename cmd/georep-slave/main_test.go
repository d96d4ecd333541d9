package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/georep/georep/cmd/internal/cli"
)

func TestExampleConfigLoads(t *testing.T) {
	v, err := cli.Load(flags(), []string{"--config", "../../deploy/config/slave.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config(v)
	if cfg.Listen != "0.0.0.0:7100" || cfg.Root != "/srv/replica" || cfg.Lease != time.Minute {
		t.Fatalf("example config read as %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestPrecedence: flag > environment > file > default.
func TestPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "slave.yaml")
	os.WriteFile(file, []byte("root: /from-file\nmax-batch: 7\nlease: 5s\n"), 0o600)
	t.Setenv("GEOREP_MAX_BATCH", "8")
	t.Setenv("GEOREP_LEASE", "6s")
	v, err := cli.Load(flags(), []string{"--config", file, "--lease", "9s"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config(v)
	if cfg.Root != "/from-file" || cfg.MaxBatch != 8 || cfg.Lease != 9*time.Second || cfg.Listen != "127.0.0.1:7100" {
		t.Fatalf("got %+v", cfg)
	}
}

func TestUnknownKeyRefused(t *testing.T) {
	file := filepath.Join(t.TempDir(), "slave.yaml")
	os.WriteFile(file, []byte("root: /r\nsync-jobz: 3\n"), 0o600)
	_, err := cli.Load(flags(), []string{"--config", file})
	if err == nil || !strings.Contains(err.Error(), "sync-jobz") {
		t.Fatalf("err = %v, want it to name the unknown key", err)
	}
}

// TestReplicaKind: exactly one of --root and --gluster-volume, and the
// errors name the keys.
func TestReplicaKind(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // "" = valid
	}{
		{"root", []string{"--root", "/srv/r"}, ""},
		{"gluster", []string{"--gluster-volume", "vol", "--volfile-server", "gl1"}, ""},
		{"neither", nil, "root, gluster-volume: one is required"},
		{"both", []string{"--root", "/r", "--gluster-volume", "vol", "--volfile-server", "gl1"}, "only one may be set"},
		{"gluster without server", []string{"--gluster-volume", "vol"}, "volfile-server"},
		{"bad volume name", []string{"--gluster-volume", "a/b", "--volfile-server", "gl1"}, `gluster-volume: "a/b"`},
		{"server without volume", []string{"--root", "/r", "--volfile-server", "gl1"}, "only allowed with gluster-volume"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := cli.Load(flags(), tt.args)
			if err != nil {
				t.Fatal(err)
			}
			err = config(v).Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
