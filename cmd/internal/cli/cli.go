// Package cli is what the georep commands share: loading configuration with
// viper (flags > GEOREP_* environment > --config file > defaults) and
// building the slog logger. Its gsyncd counterpart is gsyncdconfig.py (the
// config of gsyncd.py) and the logging setup of syncdutils.py.
package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/georep/georep/rpc/buildinfo"
)

// ErrVersion is what Load returns when --version was given: the caller
// prints its Version line and exits 0. Only the command line asks for it
// (not a config file or the environment).
var ErrVersion = errors.New("--version given")

// Version is the --version line of program.
func Version(program string) string { return buildinfo.Read().String(program) }

// Load parses args into fs and returns a viper instance where every flag of
// fs is also a config key (same name) readable from a YAML/TOML/JSON file
// given with --config and from the environment as GEOREP_<KEY> with dashes
// turned into underscores.
func Load(fs *pflag.FlagSet, args []string) (*viper.Viper, error) {
	fs.String("config", "", "configuration file (YAML, TOML or JSON); every flag is also a key there")
	fs.String("log-level", "info", "log level: debug, info, warn or error")
	fs.String("log-format", "text", "log format: text or json")
	fs.Bool("version", false, "print the version, commit and build time, and exit")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.Changed("version") {
		return nil, ErrVersion
	}
	v := viper.New()
	v.SetEnvPrefix("GEOREP")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	if err := v.BindPFlags(fs); err != nil {
		return nil, err
	}
	if file := v.GetString("config"); file != "" {
		v.SetConfigFile(file)
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("config file %s: %w", file, err)
		}
		known := map[string]bool{}
		fs.VisitAll(func(f *pflag.Flag) { known[f.Name] = true })
		var unknown []string
		for _, k := range v.AllKeys() {
			if !known[k] {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			return nil, fmt.Errorf("config file %s: unknown keys %s", file, strings.Join(unknown, ", "))
		}
	}
	// viper's typed getters turn a value they cannot parse into the zero
	// value ("yes" into false, "abc" into 0). Parse every value that came
	// from the environment or the file with the flag's own parser instead,
	// and refuse what does not parse.
	var bad []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || !v.IsSet(f.Name) {
			return
		}
		val := fmt.Sprint(v.Get(f.Name))
		if err := f.Value.Set(val); err != nil {
			bad = append(bad, fmt.Errorf("%s: %q is not a valid %s", f.Name, val, f.Value.Type()))
			return
		}
		// A duration is read the flag's way ("5" is 5s; viper's cast
		// would make it 5ns): the getters get the flag's reading of it.
		if f.Value.Type() == "duration" {
			v.Set(f.Name, f.Value.String())
		}
	})
	if err := errors.Join(bad...); err != nil {
		return nil, err
	}
	return v, nil
}

// Source values: where a key's value came from.
const (
	SourceDefault = "default"
	SourceFile    = "file"
	SourceEnv     = "env"
	SourceFlag    = "flag"
	SourceLive    = "live" // georepctl config set, kept in the work dir (the master's own)
)

// Sources says, for every flag of fs that Load read into v, where its value
// came from: the command line, the environment, the --config file or the
// default, in Load's order of precedence.
func Sources(fs *pflag.FlagSet, v *viper.Viper) map[string]string {
	out := map[string]string{}
	fs.VisitAll(func(f *pflag.Flag) {
		env := "GEOREP_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		switch {
		case f.Changed:
			out[f.Name] = SourceFlag
		case os.Getenv(env) != "": // viper ignores an empty variable
			out[f.Name] = SourceEnv
		case v.InConfig(f.Name):
			out[f.Name] = SourceFile
		default:
			out[f.Name] = SourceDefault
		}
	})
	return out
}

// Logger builds the process logger from the log-level and log-format keys.
func Logger(v *viper.Viper, w io.Writer) (*slog.Logger, error) {
	l, _, err := LoggerLevel(v, w)
	return l, err
}

// LoggerLevel is Logger, also returning the level the logger obeys, which
// may be changed while the process runs.
func LoggerLevel(v *viper.Viper, w io.Writer) (*slog.Logger, *slog.LevelVar, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(v.GetString("log-level"))); err != nil {
		return nil, nil, fmt.Errorf("log-level: %q is not one of debug, info, warn, error", v.GetString("log-level"))
	}
	lv := new(slog.LevelVar)
	lv.Set(level)
	opts := &slog.HandlerOptions{Level: lv}
	switch v.GetString("log-format") {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), lv, nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), lv, nil
	}
	return nil, nil, fmt.Errorf("log-format: %q is not one of text, json", v.GetString("log-format"))
}

// Fatal prints err the way a user should see it and exits with code.
func Fatal(prog string, err error, code int) {
	endProfile()
	if errors.Is(err, pflag.ErrHelp) {
		os.Exit(0)
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", prog, err)
	os.Exit(code)
}

// StringList reads a list key: a list in a config file, or a comma-separated
// string from a flag or the environment (viper would split the environment's
// value on spaces).
func StringList(v *viper.Viper, key string) []string {
	var items []string
	switch val := v.Get(key).(type) {
	case string:
		items = strings.Split(val, ",")
	case []string:
		items = val
	case []any:
		for _, x := range val {
			items = append(items, fmt.Sprint(x))
		}
	}
	var out []string
	for _, it := range items {
		if it = strings.TrimSpace(it); it != "" {
			out = append(out, it)
		}
	}
	return out
}
