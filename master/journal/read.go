package journal

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

const (
	journalPrefix = "JOURNAL."
	indexPrefix   = "HTIME."
	indexEnd      = "end"
)

func journalName(gen, seq int64) string {
	return journalPrefix + strconv.FormatInt(gen, 10) + "." + strconv.FormatInt(seq, 10)
}

func indexName(gen int64) string { return indexPrefix + strconv.FormatInt(gen, 10) }

// Cursor is a position in a generation's journal: the file's sequence number
// and the byte offset of the next unread record in it. Off 0 is the start of
// the file (before its header); Seq 0 means 1. The zero Cursor of a
// generation, Cursor{Gen: p.Generation()}, reads it from the beginning.
type Cursor struct {
	Gen, Seq, Off int64
}

// indexEntry is one line of HTIME.<gen>: a closed journal file.
type indexEntry struct {
	Seq, Start, End, Records int64
}

// index is a parsed HTIME.<gen>.
type index struct {
	files []indexEntry // in sequence order, Seq 1, 2, ...
	ended bool         // the producer stopped: no file follows the last one
}

// closed reports whether journal file seq is complete.
func (x index) closed(seq int64) bool { return seq >= 1 && seq <= int64(len(x.files)) }

// readIndex reads dir/HTIME.<gen>. A missing index means the generation does
// not exist (fs.ErrNotExist).
func readIndex(dir string, gen int64) (index, error) {
	path := filepath.Join(dir, indexName(gen))
	f, err := os.Open(path)
	if err != nil {
		return index{}, fmt.Errorf("journal index: %w", err)
	}
	defer f.Close()
	return parseIndex(f, path)
}

// parseIndex parses an index. A last line without its newline is being
// written and is ignored.
func parseIndex(r io.Reader, path string) (index, error) {
	br := bufio.NewReaderSize(r, 4096)
	var x index
	var off int64
	for {
		line, err := br.ReadSlice('\n')
		if err == io.EOF {
			return x, nil // a partial line (or none) at the end
		}
		if err != nil {
			if err == bufio.ErrBufferFull {
				err = fmt.Errorf("%w: line longer than %d bytes", ErrMalformed, br.Size())
			}
			return index{}, &FormatError{path, off, err}
		}
		if perr := x.add(string(line[:len(line)-1])); perr != nil {
			return index{}, &FormatError{path, off, perr}
		}
		off += int64(len(line))
	}
}

func (x *index) add(line string) error {
	if x.ended {
		return fmt.Errorf("%w: index line after %q", ErrMalformed, indexEnd)
	}
	f := strings.Split(line, " ")
	if len(f) == 2 && f[0] == indexEnd {
		if _, err := parseDecimal(f[1], 64); err != nil {
			return fmt.Errorf("%w: index line %q", ErrMalformed, trunc(line))
		}
		x.ended = true
		return nil
	}
	if len(f) != 4 {
		return fmt.Errorf("%w: index line %q", ErrMalformed, trunc(line))
	}
	var e [4]int64
	for i := range f {
		n, err := parseDecimal(f[i], 64)
		if err != nil || n < 0 {
			return fmt.Errorf("%w: index line %q", ErrMalformed, trunc(line))
		}
		e[i] = n
	}
	ent := indexEntry{Seq: e[0], Start: e[1], End: e[2], Records: e[3]}
	if want := int64(len(x.files)) + 1; ent.Seq != want {
		return fmt.Errorf("%w: index lists seq %d, want %d", ErrMalformed, ent.Seq, want)
	}
	x.files = append(x.files, ent)
	return nil
}

// Read returns up to max complete records after cur (all of them if max <= 0)
// from the journal of generation cur.Gen in dir, and the cursor after them.
// Only whole lines are returned: a last line still being written is left for
// a later call. Read moves on to file seq+1 once file seq is listed in the
// index (closed) and read to its end. It returns no records and cur (moved
// to the start of a next file at most) when nothing new has been written.
//
// A generation without index, or a closed file that is missing, is an error
// wrapping fs.ErrNotExist; malformed input is a *FormatError, naming the file
// and the byte offset, wrapping ErrMalformed.
func Read(dir string, cur Cursor, max int) (recs []Record, next Cursor, err error) {
	if cur.Seq < 1 {
		cur.Seq, cur.Off = 1, 0
	}
	if cur.Gen <= 0 || cur.Off < 0 {
		return nil, cur, fmt.Errorf("journal: invalid cursor %+v", cur)
	}
	x, err := readIndex(dir, cur.Gen)
	if err != nil {
		return nil, cur, err
	}
	for max <= 0 || len(recs) < max {
		limit := 0
		if max > 0 {
			limit = max - len(recs)
		}
		path := filepath.Join(dir, journalName(cur.Gen, cur.Seq))
		got, off, rest, err := readFile(path, cur, limit)
		recs = append(recs, got...)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && cur.Off == 0 && !x.closed(cur.Seq) {
				break // not created yet, or the generation ended before it
			}
			return recs, cur, err
		}
		cur.Off = off
		if !x.closed(cur.Seq) || rest < 0 {
			break // still being written, or the limit was reached first
		}
		if rest > 0 {
			return recs, cur, &FormatError{path, off, fmt.Errorf("%w: closed file ends inside a record", ErrMalformed)}
		}
		cur.Seq, cur.Off = cur.Seq+1, 0
	}
	return recs, cur, nil
}

// readFile reads up to limit records (all if limit <= 0) of the journal file
// at path from cur.Off. It returns the offset after them and how many bytes
// follow without a newline, or -1 when it stopped at the limit.
func readFile(path string, cur Cursor, limit int) (recs []Record, off int64, rest int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, cur.Off, 0, fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, cur.Off, 0, fmt.Errorf("journal: %w", err)
	}
	if cur.Off > st.Size() {
		return nil, cur.Off, 0, &FormatError{path, cur.Off, fmt.Errorf("%w: cursor past the end of the file (%d bytes)", ErrMalformed, st.Size())}
	}
	if _, err := f.Seek(cur.Off, io.SeekStart); err != nil {
		return nil, cur.Off, 0, fmt.Errorf("journal: %w", err)
	}
	return readRecords(f, path, cur, limit)
}

// readRecords parses a journal file from r, positioned at cur.Off, as
// readFile does. At offset 0 it first checks the header line.
func readRecords(r io.Reader, path string, cur Cursor, limit int) (recs []Record, off int64, rest int64, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	off = cur.Off
	if off == 0 {
		line, err := br.ReadSlice('\n')
		switch {
		case err == io.EOF:
			if len(line) > maxHeader {
				return nil, 0, 0, &FormatError{path, 0, fmt.Errorf("%w: header longer than %d bytes", ErrMalformed, maxHeader)}
			}
			return nil, 0, int64(len(line)), nil // header not written yet
		case err != nil && err != bufio.ErrBufferFull:
			return nil, 0, 0, &FormatError{path, 0, err}
		case err != nil || len(line) > maxHeader:
			return nil, 0, 0, &FormatError{path, 0, fmt.Errorf("%w: header longer than %d bytes", ErrMalformed, maxHeader)}
		}
		if err := parseHeader(string(line[:len(line)-1]), cur.Gen, cur.Seq); err != nil {
			return nil, 0, 0, &FormatError{path, 0, err}
		}
		off = int64(len(line))
	}
	for {
		if limit > 0 && len(recs) >= limit {
			return recs, off, -1, nil
		}
		line, err := br.ReadSlice('\n')
		if err == io.EOF {
			if len(line) > maxLine {
				return recs, off, 0, &FormatError{path, off, fmt.Errorf("%w: line longer than %d bytes", ErrMalformed, maxLine)}
			}
			return recs, off, int64(len(line)), nil
		}
		if err == bufio.ErrBufferFull || len(line) > maxLine {
			return recs, off, 0, &FormatError{path, off, fmt.Errorf("%w: line longer than %d bytes", ErrMalformed, maxLine)}
		}
		if err != nil {
			return recs, off, 0, &FormatError{path, off, err}
		}
		rec, err := parseRecord(string(line[:len(line)-1]))
		if err != nil {
			return recs, off, 0, &FormatError{path, off, err}
		}
		recs = append(recs, rec)
		off += int64(len(line))
	}
}

// Prune removes from dir the journal files of generation cur.Gen wholly
// before cur (sequence numbers below cur.Seq), and the journal files and
// indexes of older generations. Files it does not recognise are left alone.
func Prune(dir string, cur Cursor) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("prune journal: %w", err)
	}
	var errs []error
	for _, e := range ents {
		name := e.Name()
		gen, seq, ok := parseFileName(name)
		if !ok {
			continue
		}
		if gen < cur.Gen || (gen == cur.Gen && seq > 0 && seq < cur.Seq) {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("prune journal: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

// parseFileName recognises JOURNAL.<gen>.<seq> (seq >= 1) and HTIME.<gen>
// (seq 0).
func parseFileName(name string) (gen, seq int64, ok bool) {
	if rest, found := strings.CutPrefix(name, indexPrefix); found {
		g, err := parseDecimal(rest, 64)
		return g, 0, err == nil && g > 0
	}
	rest, found := strings.CutPrefix(name, journalPrefix)
	if !found {
		return 0, 0, false
	}
	gs, ss, found := strings.Cut(rest, ".")
	if !found {
		return 0, 0, false
	}
	g, err1 := parseDecimal(gs, 64)
	s, err2 := parseDecimal(ss, 64)
	return g, s, err1 == nil && err2 == nil && g > 0 && s > 0
}
