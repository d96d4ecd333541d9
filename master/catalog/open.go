package catalog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// Memory the store may use (ARCHITECTURE.md, "The catalog's store", says
// what they cost and buy).
//
// A crawl reads every node record it meets at random (gfids), so once the
// node table outgrows the cache nearly every read is a block read and
// decompressed: 16 MB and 16 KB blocks made those reads 70 % of a no-change
// pass's CPU at 1,000,000 files. 128 MB holds the node table of a million
// files (64 MB about half: a no-change pass of a million files then took
// 20.7 s of the master's CPU, 17.5 s with 128 MB, alternating); the cache fills only
// as far as the store reaches, so a small catalog costs what it did. 4 KB
// blocks make a miss a quarter of the decompression, for 8 % more on disk
// (129 bytes a file instead of 120 at 1,000,000). The process's RSS stays
// under 300 MB with it only because glibc keeps one arena (malloc_cgo.go)
// and Go's heap has a soft limit beside it (Resident; master/memlimit.go).
const (
	cacheSize    = 128 << 20 // decompressed blocks, index and filter blocks
	memTableSize = 4 << 20   // two at most: one filling, one being flushed
	blockSize    = 4 << 10
)

// Resident is the most memory an open catalog keeps outside Go's heap: its
// block cache, full, and both memtables (C memory when built with cgo).
const Resident = cacheSize + 2*memTableSize

// options are the store's Pebble options. create: the store may be created.
func options(create bool) *pebble.Options {
	o := &pebble.Options{
		FormatMajorVersion:          pebble.FormatNewest,
		CacheSize:                   cacheSize,
		MemTableSize:                memTableSize,
		MemTableStopWritesThreshold: 2,
		MaxOpenFiles:                256,
		ErrorIfNotExists:            !create,
		Logger:                      logger{},
		Cleaner:                     deleteCleaner{},
		// Space over write amplification: compact L0 at two sublevels
		// (Pebble: four), and keep the level above the last one small
		// (Pebble: 64 MB), so that fewer old versions wait there.
		L0CompactionThreshold: 2,
		LBaseMaxBytes:         8 << 20,
	}
	for i := range o.Levels {
		o.Levels[i].BlockSize = blockSize
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	// Snappy-like (minlz) above, zstd on the last two levels, which hold
	// nearly everything.
	o.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionGood })
	return o
}

// deleteCleaner removes obsolete files, as Pebble's default cleaner does,
// and also keeps Pebble from recycling write-ahead logs: a recycled log
// keeps the size of the largest batch it ever held (a first sync's commit of
// every file) for as long as the store is open. Pebble recycles no log for
// a cleaner that needs the files' contents, which ArchiveCleaner says it
// does (an unexported method); embedded one level deeper than
// DeleteCleaner, it lends that method while DeleteCleaner's Clean and
// String win. TestNoRecycledLogs checks that this still holds.
type deleteCleaner struct {
	pebble.DeleteCleaner
	needsContents
}

type needsContents struct{ pebble.ArchiveCleaner }

// logger keeps Pebble's informational messages out of the master's log.
type logger struct{}

func (logger) Infof(string, ...any) {}
func (logger) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "catalog: pebble: "+format+"\n", args...)
}
func (logger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("catalog: pebble: "+format, args...))
}

// Open opens or creates the catalog at path, a directory. A schema-1
// catalog (a bbolt file) at path is migrated first. It fails if the
// directory of path is missing or not writable, or if another process (or
// another Open in this one) has the catalog open.
func Open(path string) (*Catalog, error) {
	dir := filepath.Dir(path)
	probe, err := os.CreateTemp(dir, ".catalog-probe-*")
	if err != nil {
		return nil, fmt.Errorf("catalog %s: directory %s is not writable: %w", path, dir, err)
	}
	probe.Close()
	os.Remove(probe.Name())

	if err := settle(path); err != nil {
		return nil, fmt.Errorf("open catalog %s: %w", path, err)
	}
	db, err := pebble.Open(path, options(false))
	if err != nil {
		return nil, fmt.Errorf("open catalog %s: %w", path, err)
	}
	c := &Catalog{db: db, path: path}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	count, err := c.readMeta()
	if err != nil {
		c.cancel()
		db.Close()
		return nil, fmt.Errorf("open catalog %s: %w", path, err)
	}
	c.count.Store(count)
	return c, nil
}

func (c *Catalog) readMeta() (count int64, err error) {
	var version []byte
	found, err := c.get(metaVersion, func(v []byte) error { version = append(version, v...); return nil })
	if err != nil {
		return 0, err
	}
	if !found || len(version) != 1 || version[0] != schemaVersion {
		return 0, fmt.Errorf("%w: schema version %x, this georep knows %d", ErrCorrupt, version, schemaVersion)
	}
	found, err = c.get(metaCount, func(v []byte) error {
		n, k := binary.Uvarint(v)
		if k <= 0 || k != len(v) || n > 1<<62 {
			return fmt.Errorf("%w: node count %x", ErrCorrupt, v)
		}
		count = int64(n)
		return nil
	})
	if err == nil && !found {
		err = fmt.Errorf("%w: no node count", ErrCorrupt)
	}
	return count, err
}

// settle makes path a store of the current schema: it creates one, migrates
// a schema-1 file, or finishes what a crash interrupted. A store is built
// at path.new and renamed to path when complete; a migration first renames
// the schema-1 file to path.v1 and removes it last, so
//
//	path a file                      schema 1 (or not a catalog): migrate
//	                                 (again: path.new is discarded)
//	path missing, path.v1 and .new   the migration was done: switch
//	path missing, path.v1 only       cannot happen by itself: migrate path.v1
//	path missing                     create (again: path.new is discarded)
//	path a directory                 the store; a path.v1 beside it goes
func settle(path string) error {
	newPath, oldPath := path+".new", path+".v1"
	st, err := os.Lstat(path)
	switch {
	case err == nil && st.Mode().IsRegular():
		return migrate(path, newPath, oldPath)
	case err == nil && st.IsDir():
		if err := os.Remove(oldPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	case err == nil:
		return fmt.Errorf("%s is neither a directory nor a file", st.Mode().Type())
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	if _, err := os.Lstat(oldPath); err == nil {
		if _, err := os.Lstat(newPath); err != nil {
			if err := os.Rename(oldPath, path); err != nil {
				return err
			}
			return migrate(path, newPath, oldPath)
		}
		if err := os.Rename(newPath, path); err != nil {
			return err
		}
		if err := syncDir(path); err != nil {
			return err
		}
		return os.Remove(oldPath)
	}
	if err := os.RemoveAll(newPath); err != nil {
		return err
	}
	if err := create(newPath); err != nil {
		os.RemoveAll(newPath)
		return err
	}
	if err := os.Rename(newPath, path); err != nil {
		return err
	}
	return syncDir(path)
}

// mkStoreDir makes the directory of a new store, private like the rest of
// the work dir (Pebble would make it 0755, its files 0644).
func mkStoreDir(dir string) error { return os.Mkdir(dir, 0o700) }

// create makes an empty store at dir.
func create(dir string) error {
	if err := mkStoreDir(dir); err != nil {
		return err
	}
	db, err := pebble.Open(dir, options(true))
	if err != nil {
		return err
	}
	b := db.NewBatch()
	b.Set(metaVersion, []byte{schemaVersion}, nil)
	b.Set(metaCount, binary.AppendUvarint(nil, 0), nil)
	err = db.Apply(b, pebble.Sync)
	b.Close()
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir fsyncs path when it is a directory (its entries) and the
// directory holding it (its name), so that a rename of path is durable.
func syncDir(path string) error {
	for _, p := range []string{path, filepath.Dir(path)} {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		if !st.IsDir() {
			continue
		}
		d, err := os.Open(p)
		if err != nil {
			return err
		}
		err = d.Sync()
		d.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
