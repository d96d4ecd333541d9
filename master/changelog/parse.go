package changelog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/georep/georep/rpc/gfid"
)

// maxLine bounds one line: two encoded names of MaxName bytes are < 1.6 KiB.
const maxLine = 64 << 10

// Parse reads a changelog: an optional Header line, then one record per line.
// Empty lines are skipped. name is used in errors only, which are
// *ParseError wrapping ErrInvalid (or the reader's error).
func Parse(r io.Reader, name string) ([]Record, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	var recs []Record
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(b) == 0 {
			continue
		}
		if line == 1 && bytes.HasPrefix(b, []byte("GEOREP-CHANGELOG")) {
			if string(b) != Header {
				return nil, &ParseError{name, line, fmt.Errorf("%w: unsupported header %q", ErrInvalid, trunc(string(b)))}
			}
			continue
		}
		rec, err := parseLine(string(b))
		if err != nil {
			return nil, &ParseError{name, line, err}
		}
		recs = append(recs, rec)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("%w: line longer than %d bytes", ErrInvalid, maxLine)
		}
		return nil, &ParseError{name, line + 1, err}
	}
	return recs, nil
}

func parseLine(s string) (Record, error) {
	f := strings.Split(s, " ")
	var r Record
	if len(f[0]) != 1 {
		return r, fmt.Errorf("%w: record type %q", ErrInvalid, trunc(f[0]))
	}
	r.Kind = Kind(f[0][0])
	if len(f) < 2 {
		return r, fmt.Errorf("%w: missing gfid", ErrInvalid)
	}
	g, err := gfid.Parse(f[1])
	if err != nil {
		return r, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	r.GFID = g
	switch r.Kind {
	case Data:
		if len(f) != 2 {
			return r, fmt.Errorf("%w: D record with %d fields", ErrInvalid, len(f))
		}
		return r, nil
	case Meta:
		if len(f) != 3 {
			return r, fmt.Errorf("%w: M record with %d fields", ErrInvalid, len(f))
		}
		if !validMetaFop(f[2]) {
			return r, fmt.Errorf("%w: M record fop %q", ErrInvalid, trunc(f[2]))
		}
		r.Fop = Fop(f[2])
		return r, nil
	case Entry:
	default:
		return r, fmt.Errorf("%w: record type %q", ErrInvalid, trunc(f[0]))
	}
	if len(f) < 3 {
		return r, fmt.Errorf("%w: E record without fop", ErrInvalid)
	}
	r.Fop = Fop(f[2])
	args := f[3:]
	switch r.Fop {
	case Create, Mkdir, Mknod:
		switch len(args) {
		case 4:
			for i, p := range []*uint32{&r.Mode, &r.UID, &r.GID} {
				v, err := strconv.ParseUint(args[i], 10, 32)
				if err != nil {
					return r, fmt.Errorf("%w: %s field %d %q: not a decimal uint32", ErrInvalid, r.Fop, i+1, trunc(args[i]))
				}
				*p = uint32(v)
			}
			args = args[3:]
		case 1: // gsyncd's own xsync wrote entries without mode/uid/gid
		default:
			return r, fmt.Errorf("%w: %s with %d arguments", ErrInvalid, r.Fop, len(args))
		}
	case Link, Symlink:
		if len(args) != 1 {
			return r, fmt.Errorf("%w: %s with %d arguments", ErrInvalid, r.Fop, len(args))
		}
	case Unlink, Rmdir:
		// With changelog.capture-del-path on, GlusterFS appends the path from
		// the root; it is informational only.
		if len(args) != 1 && len(args) != 2 {
			return r, fmt.Errorf("%w: %s with %d arguments", ErrInvalid, r.Fop, len(args))
		}
		args = args[:1]
	case Rename:
		if len(args) != 2 {
			return r, fmt.Errorf("%w: RENAME with %d arguments", ErrInvalid, len(args))
		}
		r.NewParent, r.NewName, err = parseEntry(args[1])
		if err != nil {
			return r, err
		}
		args = args[:1]
	default:
		return r, fmt.Errorf("%w: entry fop %q", ErrInvalid, trunc(f[2]))
	}
	r.Parent, r.Name, err = parseEntry(args[0])
	return r, err
}

// parseEntry parses "<pgfid>/<escaped name>".
func parseEntry(s string) (gfid.GFID, string, error) {
	if len(s) < 38 || s[36] != '/' {
		return gfid.GFID{}, "", fmt.Errorf("%w: entry %q is not <pgfid>/<name>", ErrInvalid, trunc(s))
	}
	p, err := gfid.Parse(s[:36])
	if err != nil {
		return gfid.GFID{}, "", fmt.Errorf("%w: entry parent: %w", ErrInvalid, err)
	}
	name := Unescape(s[37:])
	if err := ValidName(name); err != nil {
		return gfid.GFID{}, "", err
	}
	return p, name, nil
}

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
