package cli

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestLoadVersion(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		env  string
		want error
	}{
		{"flag", []string{"--version"}, "", ErrVersion},
		{"flag with others", []string{"--work-dir", "/x", "--version"}, "", ErrVersion},
		{"environment does not ask for it", nil, "true", nil},
		{"none", nil, "", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GEOREP_VERSION", tt.env)
			fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
			fs.String("work-dir", "", "")
			_, err := Load(fs, tt.args)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Load(%q) = %v, want %v", tt.args, err, tt.want)
			}
		})
	}
	if v := Version("georep-x"); !strings.HasPrefix(v, "georep-x ") {
		t.Errorf("Version = %q", v)
	}
}

// TestDurationsAndSources: a duration is integer seconds or a Go duration
// from each place a value comes from, and Sources names that place.
func TestDurationsAndSources(t *testing.T) {
	for _, tt := range []struct {
		name       string
		args       []string
		env        string // GEOREP_INTERVAL
		file       string // YAML
		want       time.Duration
		wantSource string
	}{
		{name: "default", want: 5 * time.Second, wantSource: SourceDefault},
		{name: "flag seconds", args: []string{"--interval", "7"}, want: 7 * time.Second, wantSource: SourceFlag},
		{name: "flag duration", args: []string{"--interval", "1m30s"}, want: 90 * time.Second, wantSource: SourceFlag},
		{name: "env seconds", env: "9", want: 9 * time.Second, wantSource: SourceEnv},
		{name: "env duration", env: "250ms", want: 250 * time.Millisecond, wantSource: SourceEnv},
		{name: "file integer", file: "interval: 11\n", want: 11 * time.Second, wantSource: SourceFile},
		{name: "file string", file: "interval: 2m\n", want: 2 * time.Minute, wantSource: SourceFile},
		{name: "env beats file", env: "3", file: "interval: 11\n", want: 3 * time.Second, wantSource: SourceEnv},
		{name: "flag beats env", args: []string{"--interval", "4"}, env: "3", want: 4 * time.Second, wantSource: SourceFlag},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GEOREP_INTERVAL", tt.env)
			args := tt.args
			if tt.file != "" {
				f := filepath.Join(t.TempDir(), "c.yaml")
				if err := os.WriteFile(f, []byte(tt.file), 0o644); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", f)
			}
			fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
			p := Duration(fs, "interval", 5*time.Second, "")
			v, err := Load(fs, args)
			if err != nil {
				t.Fatal(err)
			}
			if *p != tt.want || v.GetDuration("interval") != tt.want {
				t.Errorf("interval: flag %v, viper %v; want %v", *p, v.GetDuration("interval"), tt.want)
			}
			if got := Sources(fs, v)["interval"]; got != tt.wantSource {
				t.Errorf("source %q, want %q", got, tt.wantSource)
			}
		})
	}
	for _, bad := range []string{"-3", "soon", "1.5"} {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		fs.SetOutput(io.Discard)
		Duration(fs, "interval", 0, "")
		if _, err := Load(fs, []string{"--interval", bad}); err == nil {
			t.Errorf("--interval %s accepted", bad)
		}
	}
}
