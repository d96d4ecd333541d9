package duration

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{in: "5", want: 5 * time.Second}, // gsyncd's integer seconds
		{in: "0", want: 0},
		{in: " 7 ", want: 7 * time.Second},
		{in: "5s", want: 5 * time.Second},
		{in: "1m30s", want: 90 * time.Second},
		{in: "250ms", want: 250 * time.Millisecond},
		{in: "24h", want: 24 * time.Hour},
		{in: "0s", want: 0},
		{in: "-1", wantErr: true},
		{in: "-5s", wantErr: true},
		{in: "soon", wantErr: true},
		{in: "", wantErr: true},
		{in: "1.5", wantErr: true}, // gsyncd's seconds are integers; 1.5s says it
		{in: "9223372037", wantErr: true},
	} {
		got, err := Parse(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("Parse(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
