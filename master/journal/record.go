package journal

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/georep/georep/master/changelog"
)

// Kind is the record type: the first field of a record line.
type Kind byte

const (
	Entry    Kind = 'E' // a name was created, removed or renamed (or the directory itself moved or went away)
	Data     Kind = 'D' // a file's content changed
	Meta     Kind = 'M' // attributes changed
	Overflow Kind = 'O' // events were lost: crawl everything
)

func (k Kind) String() string {
	switch k {
	case Entry, Data, Meta, Overflow:
		return string(rune(k))
	}
	return fmt.Sprintf("Kind(%#x)", byte(k))
}

// maxHandleBytes is MAX_HANDLE_SZ: no filesystem encodes a longer handle.
const maxHandleBytes = 128

// Handle is a directory's file handle, as name_to_handle_at(2) and fanotify
// report it.
type Handle struct {
	Type  int32
	Bytes []byte
}

// String formats h as in a journal file: "<type>:<hex>".
func (h Handle) String() string {
	return strconv.FormatInt(int64(h.Type), 10) + ":" + hex.EncodeToString(h.Bytes)
}

// key is h as a map key.
func (h Handle) key() string {
	return strconv.FormatInt(int64(h.Type), 10) + ":" + string(h.Bytes)
}

// Record is one change: the name Name in the directory Dir changed. Name ""
// means the directory itself; an Overflow record has neither.
type Record struct {
	Kind Kind
	Dir  Handle
	Name string
}

// ErrMalformed is wrapped by the *FormatError of a journal or index file
// that cannot be parsed.
var ErrMalformed = errors.New("malformed journal")

// FormatError locates malformed input in a journal or index file.
type FormatError struct {
	File   string
	Offset int64 // of the offending line, from the start of the file
	Err    error
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("%s: byte %d: %v", e.File, e.Offset, e.Err)
}

func (e *FormatError) Unwrap() error { return e.Err }

const (
	headerPrefix = "GEOREP-JOURNAL v1 "
	selfName     = "."
	noHandle     = "-"
	// maxLine bounds a record line: kind, a 128-byte handle in hex, a
	// 255-byte name with every byte escaped, separators and newline.
	maxLine = 2 + 12 + 2*maxHandleBytes + 1 + 3*255 + 1
	// maxHeader bounds the header line.
	maxHeader = 128
)

// appendRecord appends r's line, newline included.
func appendRecord(b []byte, r Record) []byte {
	b = append(b, byte(r.Kind), ' ')
	if r.Kind == Overflow {
		b = append(b, noHandle...)
	} else {
		b = strconv.AppendInt(b, int64(r.Dir.Type), 10)
		b = append(b, ':')
		b = hex.AppendEncode(b, r.Dir.Bytes)
	}
	b = append(b, ' ')
	if r.Name == "" {
		b = append(b, selfName...)
	} else {
		b = append(b, changelog.Escape(r.Name)...)
	}
	return append(b, '\n')
}

// parseRecord parses a record line without its newline. It accepts only what
// appendRecord writes.
func parseRecord(line string) (Record, error) {
	f := strings.Split(line, " ")
	if len(f) != 3 {
		return Record{}, fmt.Errorf("%w: %d fields, want 3", ErrMalformed, len(f))
	}
	if len(f[0]) != 1 {
		return Record{}, fmt.Errorf("%w: kind %q", ErrMalformed, trunc(f[0]))
	}
	r := Record{Kind: Kind(f[0][0])}
	switch r.Kind {
	case Entry, Data, Meta:
		h, err := parseHandle(f[1])
		if err != nil {
			return Record{}, err
		}
		r.Dir = h
	case Overflow:
		if f[1] != noHandle || f[2] != selfName {
			return Record{}, fmt.Errorf("%w: overflow record with handle %q name %q", ErrMalformed, trunc(f[1]), trunc(f[2]))
		}
		return r, nil
	default:
		return Record{}, fmt.Errorf("%w: kind %q", ErrMalformed, trunc(f[0]))
	}
	if f[2] == selfName {
		return r, nil
	}
	name := changelog.Unescape(f[2])
	if changelog.Escape(name) != f[2] {
		return Record{}, fmt.Errorf("%w: name %q not canonically escaped", ErrMalformed, trunc(f[2]))
	}
	if err := checkName(name); err != nil {
		return Record{}, err
	}
	r.Name = name
	return r, nil
}

// checkName rejects what the kernel never reports as a child name.
func checkName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("%w: name %q", ErrMalformed, name)
	case len(name) > 255:
		return fmt.Errorf("%w: name longer than 255 bytes", ErrMalformed)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("%w: name %q contains '/' or NUL", ErrMalformed, trunc(name))
	}
	return nil
}

// parseHandle parses "<type>:<hex>", lower-case hex of 1 to 128 bytes.
func parseHandle(s string) (Handle, error) {
	t, x, ok := strings.Cut(s, ":")
	if !ok {
		return Handle{}, fmt.Errorf("%w: handle %q", ErrMalformed, trunc(s))
	}
	typ, err := parseDecimal(t, 32)
	if err != nil {
		return Handle{}, fmt.Errorf("%w: handle type %q", ErrMalformed, trunc(t))
	}
	if len(x) == 0 || len(x) > 2*maxHandleBytes || strings.ToLower(x) != x {
		return Handle{}, fmt.Errorf("%w: handle %q", ErrMalformed, trunc(s))
	}
	b, err := hex.DecodeString(x)
	if err != nil {
		return Handle{}, fmt.Errorf("%w: handle %q: %v", ErrMalformed, trunc(s), err)
	}
	return Handle{Type: int32(typ), Bytes: b}, nil
}

// parseDecimal parses a canonical decimal integer: what strconv.FormatInt
// writes, nothing else ("+1", "01", "-0" are refused).
func parseDecimal(s string, bits int) (int64, error) {
	n, err := strconv.ParseInt(s, 10, bits)
	if err != nil {
		return 0, err
	}
	if strconv.FormatInt(n, 10) != s {
		return 0, fmt.Errorf("not canonical: %q", s)
	}
	return n, nil
}

// header is a journal file's first line, without its newline.
func header(gen, seq, start int64) string {
	return fmt.Sprintf("%sgen %d seq %d start %d", headerPrefix, gen, seq, start)
}

// parseHeader checks a journal file's first line (without newline) against
// the generation and sequence its name gives.
func parseHeader(line string, gen, seq int64) error {
	rest, ok := strings.CutPrefix(line, headerPrefix)
	f := strings.Split(rest, " ")
	if !ok || len(f) != 6 || f[0] != "gen" || f[2] != "seq" || f[4] != "start" {
		return fmt.Errorf("%w: header %q", ErrMalformed, trunc(line))
	}
	g, err1 := parseDecimal(f[1], 64)
	s, err2 := parseDecimal(f[3], 64)
	_, err3 := parseDecimal(f[5], 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return fmt.Errorf("%w: header %q: %v", ErrMalformed, trunc(line), err)
	}
	if g != gen || s != seq {
		return fmt.Errorf("%w: header names gen %d seq %d, file is gen %d seq %d", ErrMalformed, g, s, gen, seq)
	}
	return nil
}

// trunc shortens s for an error message.
func trunc(s string) string {
	const n = 64
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
