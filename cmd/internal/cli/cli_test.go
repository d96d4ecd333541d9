package cli

import (
	"errors"
	"strings"
	"testing"

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
