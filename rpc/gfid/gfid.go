// Package gfid is the identity of an inode in georep: a 16-byte UUID that names
// one inode for its whole life on both master and slave (GlusterFS's gfid).
// Hardlinks share it, a rename keeps it, a delete retires it for ever.
//
// Both ends of the protocol use this package; it has no dependencies beyond
// the standard library. It has no gsyncd module as counterpart: gsyncd
// handles gfids as the strings GlusterFS gives it.
package gfid

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
)

// GFID is a 16-byte inode identity. The zero value is not a valid gfid.
type GFID [16]byte

var (
	// Root is the gfid of the root directory of every volume and replica.
	Root = GFID{15: 1}
	// Park names the slave's park directory (.georep/park), where entries are
	// parked while a sequence of renames is applied.
	Park = GFID{15: 0xfe}
)

// ErrMalformed is returned for text that is not a canonical gfid.
var ErrMalformed = errors.New("malformed gfid")

// New returns a fresh random (version 4) gfid.
func New() GFID {
	var g GFID
	if _, err := rand.Read(g[:]); err != nil {
		panic(fmt.Sprintf("gfid: reading random bytes: %v", err))
	}
	g[6] = g[6]&0x0f | 0x40
	g[8] = g[8]&0x3f | 0x80
	return g
}

// Parse parses the canonical 36-character form
// "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (lower or upper case hex). Anything
// else, including the zero gfid, is ErrMalformed.
func Parse(s string) (GFID, error) {
	var g GFID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, fmt.Errorf("%w: %q", ErrMalformed, truncate(s))
	}
	hexDigits := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	if _, err := hex.Decode(g[:], []byte(hexDigits)); err != nil {
		return GFID{}, fmt.Errorf("%w: %q", ErrMalformed, truncate(s))
	}
	if g.IsZero() {
		return GFID{}, fmt.Errorf("%w: zero gfid", ErrMalformed)
	}
	return g, nil
}

// MustParse is Parse for constants in tests; it panics on error.
func MustParse(s string) GFID {
	g, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return g
}

// FromBytes converts a 16-byte slice (as stored in trusted.gfid) to a GFID.
func FromBytes(b []byte) (GFID, error) {
	var g GFID
	if len(b) != len(g) {
		return g, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	copy(g[:], b)
	if g.IsZero() {
		return GFID{}, fmt.Errorf("%w: zero gfid", ErrMalformed)
	}
	return g, nil
}

// IsZero reports whether g is the zero value.
func (g GFID) IsZero() bool { return g == GFID{} }

// String returns the canonical lower-case form.
func (g GFID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], g[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], g[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], g[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], g[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], g[10:16])
	return string(b[:])
}

// MarshalText writes g in its textual form (JSON, YAML).
func (g GFID) MarshalText() ([]byte, error) { return []byte(g.String()), nil }

// UnmarshalText parses the textual form, strictly.
func (g *GFID) UnmarshalText(b []byte) error {
	p, err := Parse(string(b))
	if err != nil {
		return err
	}
	*g = p
	return nil
}

// Shard returns the index directory "ab" of gfid ab...: georep's gfid
// indexes keep <gfid> in <shard>/, one level of 256 directories. (GlusterFS's
// .glusterfs uses two levels, ab/cd; one level avoids creating up to two
// directories per new file, which dominated the cost of an initial sync.)
func (g GFID) Shard() string {
	return g.String()[0:2]
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
