package journal

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// writer appends records to the journal files of one generation and keeps
// its index. It is used by one goroutine.
type writer struct {
	dir      string
	gen      int64
	rollover time.Duration

	idx     *os.File // HTIME.<gen>, append only
	f       *os.File // JOURNAL.<gen>.<seq>, nil after close
	seq     int64
	start   time.Time // of the current file
	records int64     // in the current file
	due     time.Time // when the current file is next considered for rollover
	buf     []byte
}

// newWriter creates the index of a new generation in dir, numbered after
// every generation dir already holds and not before now, and opens its first
// journal file.
func newWriter(dir string, rollover time.Duration, now time.Time) (*writer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal dir: %w", err)
	}
	gen := now.UnixNano()
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("journal dir: %w", err)
	}
	for _, e := range ents {
		if g, _, ok := parseFileName(e.Name()); ok && g >= gen {
			gen = g + 1
		}
	}
	var idx *os.File
	for {
		idx, err = os.OpenFile(filepath.Join(dir, indexName(gen)), os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
		if !errors.Is(err, fs.ErrExist) {
			break
		}
		gen++
	}
	if err != nil {
		return nil, fmt.Errorf("journal index: %w", err)
	}
	w := &writer{dir: dir, gen: gen, rollover: rollover, idx: idx}
	if err := syncDir(dir); err != nil {
		idx.Close()
		return nil, err
	}
	if err := w.open(now); err != nil {
		idx.Close()
		return nil, err
	}
	return w, nil
}

// open creates the next journal file and writes its header.
func (w *writer) open(now time.Time) error {
	w.seq++
	path := filepath.Join(w.dir, journalName(w.gen, w.seq))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if _, err := f.WriteString(header(w.gen, w.seq, now.UnixNano()) + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("journal: %w", err)
	}
	w.f, w.start, w.records, w.due = f, now, 0, now.Add(w.rollover)
	return nil
}

// append writes recs to the current file with one write.
func (w *writer) append(recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	w.buf = w.buf[:0]
	for _, r := range recs {
		w.buf = appendRecord(w.buf, r)
	}
	if _, err := w.f.Write(w.buf); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	w.records += int64(len(recs))
	return nil
}

// tick rolls the current file over if it is due and has records; a due
// empty file stays open for another period.
func (w *writer) tick(now time.Time) error {
	if now.Before(w.due) {
		return nil
	}
	if w.records == 0 {
		w.due = now.Add(w.rollover)
		return nil
	}
	if err := w.roll(now); err != nil {
		return err
	}
	return w.open(now)
}

// roll fsyncs and closes the current file and indexes it.
func (w *writer) roll(now time.Time) error {
	f := w.f
	w.f = nil
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("journal: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	line := fmt.Sprintf("%d %d %d %d\n", w.seq, w.start.UnixNano(), now.UnixNano(), w.records)
	return w.index(line)
}

func (w *writer) index(line string) error {
	if _, err := w.idx.WriteString(line); err != nil {
		return fmt.Errorf("journal index: %w", err)
	}
	if err := w.idx.Sync(); err != nil {
		return fmt.Errorf("journal index: %w", err)
	}
	return nil
}

// close rolls the current file over, even if empty, and ends the index.
func (w *writer) close(now time.Time) error {
	err := w.roll(now)
	if err == nil {
		err = w.index(indexEnd + " " + strconv.FormatInt(now.UnixNano(), 10) + "\n")
	}
	if cerr := w.idx.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("journal index: %w", cerr)
	}
	return err
}

// abort closes the files without indexing anything more: the generation
// stays without "end", and the producer's Err tells why.
func (w *writer) abort() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	w.idx.Close()
}

// syncDir makes the entries created in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("journal dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("journal dir: %w", err)
	}
	return nil
}
