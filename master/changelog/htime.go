package changelog

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// HTimeEntry is one rollover recorded in a brick's HTIME index
// (<brick>/.glusterfs/changelogs/htime/HTIME.<epoch>).
type HTimeEntry struct {
	Path  string // absolute path of the rolled-over changelog, as recorded
	Epoch int64  // rollover time, Unix seconds: the name's suffix
	Empty bool   // "changelog.<epoch>": the slice had no records and no file was kept
}

// maxHTimePath bounds one HTIME entry (PATH_MAX, with its NUL).
const maxHTimePath = 4096

// ParseHTIME reads an HTIME index: one NUL-terminated absolute path per
// rollover, in rollover order, each ending in "/CHANGELOG.<epoch>" or, for a
// rollover that had nothing to record, "/changelog.<epoch>". An empty file
// (changelog just enabled) has no entries. The order of epochs is not
// checked. name is used in errors only, which are *BrickError wrapping
// ErrInvalid (or the reader's error).
func ParseHTIME(r io.Reader, name string) ([]HTimeEntry, error) {
	br := bufio.NewReaderSize(r, 2*maxHTimePath)
	var ents []HTimeEntry
	var off int64
	for {
		b, err := br.ReadSlice(0)
		switch {
		case err == io.EOF && len(b) == 0:
			return ents, nil
		case err == io.EOF:
			return nil, &BrickError{name, off, fmt.Errorf("%w: entry %q %w", ErrInvalid, trunc(string(b)), errTruncated)}
		case err == bufio.ErrBufferFull || len(b) > maxHTimePath:
			return nil, &BrickError{name, off, fmt.Errorf("%w: entry longer than %d bytes", ErrInvalid, maxHTimePath)}
		case err != nil:
			return nil, &BrickError{name, off, err}
		}
		e, err := parseHTimePath(string(b[:len(b)-1]))
		if err != nil {
			return nil, &BrickError{name, off, err}
		}
		ents = append(ents, e)
		off += int64(len(b))
	}
}

func parseHTimePath(p string) (HTimeEntry, error) {
	e := HTimeEntry{Path: p}
	i := strings.LastIndexByte(p, '/')
	if !strings.HasPrefix(p, "/") || i < 0 {
		return e, fmt.Errorf("%w: entry %q is not an absolute path", ErrInvalid, trunc(p))
	}
	base := p[i+1:]
	var num string
	switch {
	case strings.HasPrefix(base, "CHANGELOG."):
		num = base[len("CHANGELOG."):]
	case strings.HasPrefix(base, "changelog."):
		num, e.Empty = base[len("changelog."):], true
	default:
		return e, fmt.Errorf("%w: entry %q is not a changelog path", ErrInvalid, trunc(p))
	}
	ep, err := parseEpoch(num)
	if err != nil {
		return e, fmt.Errorf("%w: entry %q: %w", ErrInvalid, trunc(p), err)
	}
	e.Epoch = ep
	return e, nil
}

// parseEpoch parses a non-negative decimal Unix time with no sign or
// leading zeros.
func parseEpoch(s string) (int64, error) {
	if s == "" || s[0] < '0' || s[0] > '9' || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("epoch %q is not a decimal number", trunc(s))
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("epoch %q out of range", trunc(s))
	}
	return n, nil
}

// ParseHTIMEXattr parses the value of an HTIME file's xattr
// trusted.glusterfs.htime, "<epoch of the last rollover>:<number of
// rollovers>" ("0:0" before the first). The error wraps ErrInvalid.
func ParseHTIMEXattr(v string) (lastEpoch int64, count int, err error) {
	e, c, ok := strings.Cut(v, ":")
	if !ok {
		return 0, 0, fmt.Errorf("%w: htime xattr %q: want <epoch>:<count>", ErrInvalid, trunc(v))
	}
	if lastEpoch, err = parseEpoch(e); err != nil {
		return 0, 0, fmt.Errorf("%w: htime xattr %q: %w", ErrInvalid, trunc(v), err)
	}
	n, err := parseEpoch(c)
	if err != nil || n > 1<<31-1 {
		return 0, 0, fmt.Errorf("%w: htime xattr %q: count %q is not a decimal int32", ErrInvalid, trunc(v), trunc(c))
	}
	return lastEpoch, int(n), nil
}
