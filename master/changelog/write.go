package changelog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Write writes the Header and recs, one per line. It validates every record
// first and writes nothing if one is invalid.
func Write(w io.Writer, recs []Record) error {
	for i := range recs {
		if err := recs[i].Validate(); err != nil {
			return fmt.Errorf("record %d: %w", i, err)
		}
	}
	bw := bufio.NewWriter(w)
	bw.WriteString(Header)
	bw.WriteByte('\n')
	var buf []byte
	for i := range recs {
		buf = recs[i].append(buf[:0])
		buf = append(buf, '\n')
		if _, err := bw.Write(buf); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// String formats r as one changelog line, without the newline.
func (r Record) String() string { return string(r.append(nil)) }

func (r *Record) append(b []byte) []byte {
	b = append(b, byte(r.Kind), ' ')
	b = append(b, r.GFID.String()...)
	if r.Kind == Data {
		return b
	}
	b = append(b, ' ')
	b = append(b, r.Fop...)
	if r.Kind != Entry {
		return b
	}
	if r.Fop.hasStat() {
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(r.Mode), 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(r.UID), 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(r.GID), 10)
	}
	b = append(b, ' ')
	b = append(b, r.Parent.String()...)
	b = append(b, '/')
	b = append(b, Escape(r.Name)...)
	if r.Fop == Rename {
		b = append(b, ' ')
		b = append(b, r.NewParent.String()...)
		b = append(b, '/')
		b = append(b, Escape(r.NewName)...)
	}
	return b
}

// WriteFile writes recs atomically into dir as "<prefix>.<unix-nanos>": a
// temporary file is written and fsynced, linked to its final name (never
// replacing an existing file) and the directory fsynced. It returns the
// final path.
func WriteFile(dir, prefix string, recs []Record) (path string, err error) {
	if err := ValidName(prefix); err != nil {
		return "", fmt.Errorf("changelog prefix: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+prefix+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("write changelog: %w", err)
	}
	name := tmp.Name()
	defer os.Remove(name) // the temporary name; the final name is a second link
	if err := Write(tmp, recs); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write changelog %s: %w", name, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", fmt.Errorf("fsync changelog %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("close changelog %s: %w", name, err)
	}
	ns := time.Now().UnixNano()
	for {
		path = filepath.Join(dir, prefix+"."+strconv.FormatInt(ns, 10))
		err = os.Link(name, path)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("publish changelog: %w", err)
		}
		ns++
	}
	if err := syncDir(dir); err != nil {
		return "", err
	}
	return path, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}
