package gfid

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "00000000-0000-0000-0000-000000000001", want: "00000000-0000-0000-0000-000000000001"},
		{in: "DA044DA0-6C0D-4735-A3F9-15B7B6732A82", want: "da044da0-6c0d-4735-a3f9-15b7b6732a82"},
		{in: "00000000-0000-0000-0000-000000000000", wantErr: true},
		{in: "", wantErr: true},
		{in: "da044da06c0d4735a3f915b7b6732a82", wantErr: true},
		{in: "da044da0-6c0d-4735-a3f9-15b7b6732a8g", wantErr: true},
		{in: "da044da0-6c0d-4735-a3f9-15b7b6732a8", wantErr: true},
		{in: "da044da0_6c0d-4735-a3f9-15b7b6732a82", wantErr: true},
		{in: "../../etc/passwd-aaaa-bbbb-cccccccccc", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			g, err := Parse(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("Parse(%q) err = %v, want ErrMalformed", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if g.String() != tt.want {
				t.Fatalf("String() = %q, want %q", g.String(), tt.want)
			}
		})
	}
}

func TestNewUniqueAndRoundTrip(t *testing.T) {
	seen := map[GFID]bool{}
	for range 1000 {
		g := New()
		if seen[g] {
			t.Fatalf("duplicate gfid %s", g)
		}
		seen[g] = true
		back, err := Parse(g.String())
		if err != nil || back != g {
			t.Fatalf("round trip of %s: %v %s", g, err, back)
		}
	}
	if s := Root.Shard(); s != "00" {
		t.Fatalf("Root.Shard() = %s", s)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("00000000-0000-0000-0000-000000000001")
	f.Add("da044da0-6c0d-4735-a3f9-15b7b6732a82")
	f.Add("not-a-gfid")
	f.Add("00000000-0000-0000-0000-000000000000")
	f.Add("DA044DA0-6C0D-4735-A3F9-15B7B6732A82")
	f.Add("da044da0+6c0d-4735-a3f9-15b7b6732a82")
	f.Add("{a044da0-6c0d-4735-a3f9-15b7b6732a8}")
	f.Add("da044da0-6c0d-4735-a3f9-15b7b6732a8\x00")
	f.Fuzz(func(t *testing.T, s string) {
		g, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || !g.IsZero() {
				t.Fatalf("Parse(%q) = %v, %v: want the zero gfid and ErrMalformed", s, g, err)
			}
			return
		}
		// Only the canonical text (any case) of a non-zero gfid is accepted:
		// nothing else (braces, missing dashes, NUL, padding) may name a
		// gfid, or two texts would name one replica inode.
		if g.IsZero() || !strings.EqualFold(s, g.String()) || g.String() != strings.ToLower(g.String()) {
			t.Fatalf("Parse(%q) accepted it as %s", s, g)
		}
		back, err := Parse(g.String())
		if err != nil || back != g {
			t.Fatalf("round trip of %q failed: %v", s, err)
		}
	})
}

func TestTextMarshaling(t *testing.T) {
	g := New()
	b, err := json.Marshal(map[string]GFID{"g": g})
	if err != nil || string(b) != `{"g":"`+g.String()+`"}` {
		t.Fatalf("json = %s, %v", b, err)
	}
	var back map[string]GFID
	if err := json.Unmarshal(b, &back); err != nil || back["g"] != g {
		t.Fatalf("round trip: %v %v", back, err)
	}
	if err := json.Unmarshal([]byte(`{"g":"not-a-gfid"}`), &back); err == nil {
		t.Fatal("malformed gfid accepted")
	}
}
