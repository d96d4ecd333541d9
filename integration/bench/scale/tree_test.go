package scale

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// makeTree writes files files of size bytes under root, perDir to a
// directory (d00000, d00001, ... directly under root; files f0000000, ...),
// from several goroutines, and prints progress every 10 s. Every file's
// content differs (its number in its first 8 bytes); empty files are empty.
func makeTree(root string, files, perDir, size int64) error {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	dirs := (files + perDir - 1) / perDir
	next := atomic.Int64{}
	var written atomic.Int64
	workers := max(2, 2*runtime.GOMAXPROCS(0))
	errs := make(chan error, workers)
	stop := heartbeat(func(d time.Duration) string {
		return fmt.Sprintf("tree: %s of %s files written (%s)", group(written.Load()), group(files), d.Round(time.Second))
	})
	defer stop()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, size)
			for {
				d := next.Add(1) - 1
				if d >= dirs {
					return
				}
				dir := filepath.Join(root, fmt.Sprintf("d%05d", d))
				if err := os.Mkdir(dir, 0o755); err != nil {
					errs <- err
					return
				}
				for i := d * perDir; i < min(files, (d+1)*perDir); i++ {
					if size >= 8 {
						binary.LittleEndian.PutUint64(buf, uint64(i))
					}
					if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%07d", i)), buf, 0o644); err != nil {
						errs <- err
						return
					}
					written.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// heartbeat prints what line returns every 10 s until the returned stop is
// called; line gets the time since the start.
func heartbeat(line func(time.Duration) string) (stop func()) {
	start := time.Now()
	done := make(chan struct{})
	var once sync.Once
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Printf("    %s\n", line(time.Since(start)))
			}
		}
	}()
	return func() { once.Do(func() { close(done) }) }
}

// need is what one size takes on disk at its peak: the source tree and one
// copy of it (rsync's target and georep's replica are not there at the same
// time), georep's replica index and the master's work dir.
type need struct{ bytes, inodes uint64 }

func needFor(files, perDir, size int64) need {
	dirs := uint64((files + perDir - 1) / perDir)
	blocks := uint64((size + 4095) / 4096 * 4096)
	n := uint64(files)
	// Per file and copy: its data blocks and its directory entry; beside the
	// replica its hard link in the gfid index; the catalog (about 700 bytes
	// a file on today's format) and the crawl's changelogs. 2 KiB a file
	// covers the metadata with room to spare.
	return need{
		bytes:  2*n*blocks + n*2048 + 2*dirs*64<<10 + 512<<20,
		inodes: 2*(n+dirs) + 1024 + n/50,
	}
}

// diskFree is what the filesystem holding dir has left for an unprivileged
// writer: bytes and inodes (f_bavail, f_favail's Linux counterpart f_ffree),
// and its type.
func diskFree(dir string) (bytes, inodes uint64, fsType int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, 0, err
	}
	return st.Bavail * uint64(st.Bsize), st.Ffree, int64(st.Type), nil
}

// fsName names the common filesystem types statfs reports.
func fsName(t int64) string {
	switch t {
	case unix.EXT4_SUPER_MAGIC:
		return "ext4"
	case unix.XFS_SUPER_MAGIC:
		return "xfs"
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs"
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlayfs"
	}
	return fmt.Sprintf("0x%x", t)
}

// fits says why the filesystem of dir cannot hold nd, "" when it can.
func fits(dir string, nd need) (string, error) {
	bytes, inodes, _, err := diskFree(dir)
	if err != nil {
		return "", err
	}
	switch {
	case bytes < nd.bytes:
		return fmt.Sprintf("needs about %s on disk, %s has %s free", gb(int64(nd.bytes)), dir, gb(int64(bytes))), nil
	case inodes < nd.inodes:
		return fmt.Sprintf("needs about %s inodes, %s has %s free", group(int64(nd.inodes)), dir, group(int64(inodes))), nil
	}
	return "", nil
}

// du is the space the files under root take on disk (allocated blocks), and
// their apparent size.
func du(root string) (alloc, apparent int64, err error) {
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		alloc += st.Blocks * 512
		apparent += st.Size
		return nil
	})
	return alloc, apparent, err
}

// removeAll removes root, printing how long it took when that was long.
func removeAll(root string) {
	start := time.Now()
	if err := os.RemoveAll(root); err != nil {
		fmt.Printf("    remove %s: %v\n", root, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		fmt.Printf("    removed %s in %s\n", root, d.Round(100*time.Millisecond))
	}
}

// readDirNames lists a directory's names, sorted.
func readDirNames(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names, err
}
