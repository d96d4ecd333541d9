package changelog

import (
	"encoding/hex"
	"strings"
)

const hexDigits = "0123456789ABCDEF"

// needsEscape reports whether b must be percent-encoded in a name: anything
// outside printable ASCII (space and controls included), '%' and '/'.
func needsEscape(b byte) bool { return b < 0x21 || b >= 0x7f || b == '%' || b == '/' }

// Escape percent-encodes name for a changelog line.
func Escape(name string) string {
	n := 0
	for i := 0; i < len(name); i++ {
		if needsEscape(name[i]) {
			n++
		}
	}
	if n == 0 {
		return name
	}
	var b strings.Builder
	b.Grow(len(name) + 2*n)
	for i := 0; i < len(name); i++ {
		c := name[i]
		if needsEscape(c) {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Unescape decodes %XX sequences. Like gsyncd's urllib unquote it leaves a
// '%' that is not followed by two hex digits as it is, so unencoded names
// written by gsyncd pass through.
func Unescape(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			var c [1]byte
			if _, err := hex.Decode(c[:], []byte(s[i+1:i+3])); err == nil {
				b = append(b, c[0])
				i += 2
				continue
			}
		}
		b = append(b, s[i])
	}
	return string(b)
}
