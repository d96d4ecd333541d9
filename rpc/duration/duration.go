// Package duration reads the durations of georep's configuration the way
// gsyncd's configuration and Go both write one: a bare integer is seconds
// (gsyncd's "change-interval 5"), anything else a Go duration ("5s",
// "1m30s", "250ms"). The flags of the three commands and the master's live
// configuration (georepctl config set) read them alike.
package duration

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Parse reads s: integer seconds or a Go duration, not negative.
func Parse(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		switch {
		case n < 0:
			return 0, fmt.Errorf("duration %q is negative", s)
		case n > math.MaxInt64/int64(time.Second):
			return 0, fmt.Errorf("duration %q: too many seconds", s)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: give seconds (5) or a Go duration (5s, 1m30s, 250ms)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	return d, nil
}
