package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// dirSnapshot is what a directory held (regular files, recursively) before
// the benchmark changed it, to put it back afterwards.
type dirSnapshot struct {
	path    string
	existed bool
	mode    fs.FileMode
	files   map[string]snapFile // by path relative to the directory
	dirs    map[string]fs.FileMode
}

type snapFile struct {
	data []byte
	mode fs.FileMode
}

func snapshotDir(path string) (*dirSnapshot, error) {
	s := &dirSnapshot{path: path, files: map[string]snapFile{}, dirs: map[string]fs.FileMode{}}
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", path)
	}
	s.existed, s.mode = true, fi.Mode()
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(path, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			s.dirs[rel] = info.Mode()
		case info.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s.files[rel] = snapFile{data: b, mode: info.Mode().Perm()}
		}
		return nil
	})
	return s, err
}

// restore puts the directory back as the snapshot found it: files and
// directories that appeared are removed, changed files rewritten, removed
// ones recreated; a directory that did not exist is removed altogether.
func (s *dirSnapshot) restore() error {
	if !s.existed {
		return os.RemoveAll(s.path)
	}
	var errs []error
	var extra []string
	filepath.WalkDir(s.path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(s.path, p)
		if d.IsDir() {
			if _, ok := s.dirs[rel]; !ok {
				extra = append(extra, p)
				return fs.SkipDir
			}
			return nil
		}
		if _, ok := s.files[rel]; !ok {
			extra = append(extra, p)
		}
		return nil
	})
	for _, p := range extra {
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	for rel, mode := range s.dirs {
		if err := os.MkdirAll(filepath.Join(s.path, rel), mode.Perm()); err != nil {
			errs = append(errs, err)
		}
	}
	for rel, f := range s.files {
		p := filepath.Join(s.path, rel)
		cur, err := os.ReadFile(p)
		fi, serr := os.Lstat(p)
		if err == nil && serr == nil && bytes.Equal(cur, f.data) && fi.Mode().Perm() == f.mode {
			continue
		}
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Chmod(p, f.mode); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// keepDir snapshots path and restores it when the benchmark ends.
func keepDir(tb testing.TB, path string) {
	tb.Helper()
	s, err := snapshotDir(path)
	if err != nil {
		tb.Fatalf("back up %s: %v", path, err)
	}
	tb.Cleanup(func() {
		if err := s.restore(); err != nil {
			tb.Errorf("restore %s: %v", path, err)
		}
	})
}

// removeNew removes, when the benchmark ends, the entries of dir whose names
// match keep(name) and that did not exist now: what the benchmark itself
// will have added to a directory it shares with others.
func removeNew(tb testing.TB, dir string, mine func(name string) bool) {
	tb.Helper()
	before := map[string]bool{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		before[e.Name()] = true
	}
	tb.Cleanup(func() {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if !before[e.Name()] && mine(e.Name()) {
				if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
					tb.Errorf("remove %s: %v", e.Name(), err)
				}
			}
		}
	})
}
