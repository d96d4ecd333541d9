package main

import (
	"io"
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

// TestAllowedMasters: the list key from a flag (comma-separated or
// repeated), the environment (comma-separated) and a file (a list).
func TestAllowedMasters(t *testing.T) {
	file := filepath.Join(t.TempDir(), "slave.yaml")
	os.WriteFile(file, []byte("root: /r\nallowed-masters: [master-a, \"spiffe://example.net/m b\"]\n"), 0o600)
	tests := []struct {
		name string
		env  string
		args []string
		want string
	}{
		{"flag", "", []string{"--root", "/r", "--allowed-masters", "a, b.example.net", "--allowed-masters", "c"}, "a|b.example.net|c"},
		{"environment", "m1,m2 x", []string{"--root", "/r"}, "m1|m2 x"},
		{"file", "", []string{"--config", file}, "master-a|spiffe://example.net/m b"},
		{"unset", "", []string{"--root", "/r"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv("GEOREP_ALLOWED_MASTERS", tt.env)
			}
			v, err := cli.Load(flags(), tt.args)
			if err != nil {
				t.Fatal(err)
			}
			cfg := config(v)
			if got := strings.Join(cfg.AllowedMasters, "|"); got != tt.want {
				t.Fatalf("allowed-masters %q, want %q", got, tt.want)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
	v, err := cli.Load(flags(), []string{"--root", "/r", "--insecure", "--allowed-masters", "m"})
	if err != nil {
		t.Fatal(err)
	}
	if err := config(v).Validate(); err == nil || !strings.Contains(err.Error(), "allowed-masters") {
		t.Fatalf("allowed-masters with --insecure: %v, want a refusal naming the key", err)
	}
}

func TestCertsCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	var out strings.Builder
	if err := certsCommand([]string{"--dir", dir, "--slave-name", "replica.example.net,127.0.0.1", "--master-name", "master-a"}, &out); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca.crt", "ca.key", "slave.crt", "slave.key", "master.crt", "master.key"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	if !strings.Contains(out.String(), "--allowed-masters master-a") {
		t.Errorf("output does not say how to configure the slave:\n%s", out.String())
	}
	for _, bad := range [][]string{
		{"--slave-name", "h"},
		{"--dir", dir},
		{"--dir", dir, "--slave-name", "a b"},
		{"--dir", dir, "--slave-name", "h", "--days", "0"},
		{"--dir", dir, "--slave-name", "h", "extra"},
		{"--dir", dir, "--slave-name", "h", "--bogus"},
	} {
		if err := certsCommand(bad, io.Discard); err == nil {
			t.Errorf("certs %q accepted", bad)
		}
	}
}

// TestAdoptKey: adopt is a flag, GEOREP_ADOPT and a config file key, off
// by default.
func TestAdoptKey(t *testing.T) {
	file := filepath.Join(t.TempDir(), "slave.yaml")
	os.WriteFile(file, []byte("root: /r\nadopt: true\n"), 0o600)
	for _, tt := range []struct {
		name string
		env  string
		args []string
		want bool
	}{
		{"default", "", []string{"--root", "/r"}, false},
		{"flag", "", []string{"--root", "/r", "--adopt"}, true},
		{"environment", "true", []string{"--root", "/r"}, true},
		{"file", "", []string{"--config", file}, true},
		{"flag over file", "", []string{"--config", file, "--adopt=false"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv("GEOREP_ADOPT", tt.env)
			}
			v, err := cli.Load(flags(), tt.args)
			if err != nil {
				t.Fatal(err)
			}
			if got := config(v).Adopt; got != tt.want {
				t.Fatalf("adopt = %v, want %v", got, tt.want)
			}
		})
	}
}
