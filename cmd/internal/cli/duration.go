package cli

import (
	"time"

	"github.com/spf13/pflag"

	"github.com/georep/georep/rpc/duration"
)

// durationValue is a pflag.Value of duration.Parse: integer seconds or a
// Go duration. Its type is "duration",
// as pflag's own, and its String is time.Duration's, which viper's
// GetDuration reads back.
type durationValue time.Duration

func (d *durationValue) Set(s string) error {
	v, err := duration.Parse(s)
	if err != nil {
		return err
	}
	*d = durationValue(v)
	return nil
}

func (d *durationValue) String() string { return time.Duration(*d).String() }

func (d *durationValue) Type() string { return "duration" }

// Duration defines a duration flag (and config key) that takes integer
// seconds as well as Go durations: every duration of the georep commands.
func Duration(fs *pflag.FlagSet, name string, value time.Duration, usage string) *time.Duration {
	p := new(time.Duration)
	*p = value
	fs.Var((*durationValue)(p), name, usage+" (seconds, or a duration such as 1m30s)")
	return p
}
