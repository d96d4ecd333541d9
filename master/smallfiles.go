package master

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/georep/georep/master/catalog"
	"github.com/georep/georep/master/syncer"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
	"golang.org/x/sys/unix"
)

// smallBatchBytes bounds the file data of one WriteFiles call (the gRPC
// message limit is far above it; this keeps memory and latency per call low).
const smallBatchBytes = 4 << 20

// smallBatcher groups small files into WriteFiles batches of at most
// smallBatchBytes of data (by their snapshot size) and entry-batch files.
type smallBatcher struct {
	batches [][]syncer.Item
	bytes   int64
}

func (b *smallBatcher) add(it syncer.Item, size int64, maxFiles int) {
	n := len(b.batches)
	if n == 0 || len(b.batches[n-1]) >= maxFiles || (len(b.batches[n-1]) > 0 && b.bytes+size > smallBatchBytes) {
		b.batches = append(b.batches, nil)
		b.bytes = 0
		n++
	}
	b.batches[n-1] = append(b.batches[n-1], it)
	b.bytes += size
}

func (b *smallBatcher) done() [][]syncer.Item { return b.batches }

// errNotSmall means a file is not for the small-file path after all: it grew
// beyond small-file-size since the crawl, it has holes (rsync keeps them), or
// with sync-acls it has an ACL (rsync -A ships it).
var errNotSmall = errors.New("not a small dense file")

// writeSmall ships items whole through WriteFiles, with at most cap(slots)
// calls in flight, and returns the items that failed. The files are read
// first, at most cap(readers) batches at a time, outside the call's slot:
// the next batches are read while calls are in flight (and wait, read, for
// a slot, at most cap(readers) of them). Files that turn out
// not to be small go to the data syncer instead. written, when not nil, is
// told each file WriteFiles wrote, with its mode, owner and mtime. The files
// in fresh are new on the slave (a first sync into an empty one): they have
// no ACL for WriteFiles to clear.
func (w *worker) writeSmall(ctx context.Context, items []syncer.Item, limit int64, readers, slots chan struct{}, fresh map[gfid.GFID]bool, written func(gfid.GFID)) map[gfid.GFID]error {
	failed := map[gfid.GFID]error{}
	acquire := func(c chan struct{}) bool {
		select {
		case c <- struct{}{}:
			return true
		case <-ctx.Done():
			for _, it := range items {
				failed[it.GFID] = ctx.Err()
			}
			return false
		}
	}
	if !acquire(readers) {
		return failed
	}
	var files []ops.FileData
	var sent []gfid.GFID
	var rsync []syncer.Item
	for _, it := range items {
		fd, key, err := readSmall(it.Path, limit, w.cfg.SyncACLs)
		if err == nil && w.brick == nil {
			err = w.sameFile(it, key)
		}
		switch {
		case errors.Is(err, errNotSmall):
			rsync = append(rsync, it)
		case err != nil:
			failed[it.GFID] = err
		default:
			fd.GFID = it.GFID
			if fresh[it.GFID] {
				fd.ClearACL = false
			}
			if w.brick != nil {
				w.volumeMeta(it.GFID, &fd)
			}
			files = append(files, fd)
			sent = append(sent, it.GFID)
		}
	}
	// The reader's token is held until the call has its slot: at most
	// cap(readers) batches wait in memory besides the calls in flight.
	if len(files) > 0 && !acquire(slots) {
		<-readers
		return failed
	}
	<-readers
	defer func() {
		if written != nil {
			for _, g := range sent {
				if failed[g] == nil {
					written(g)
				}
			}
		}
	}()
	if len(files) > 0 {
		fails, err := w.slave.WriteFiles(ctx, files)
		if err != nil {
			for _, g := range sent {
				failed[g] = err
			}
		}
		for _, f := range fails {
			i := f.Index
			if i < 0 || i >= len(sent) {
				err := fmt.Errorf("write files: slave reported failure for file %d of a batch of %d", i, len(sent))
				for _, g := range sent {
					failed[g] = err
				}
				break
			}
			w.log.Debug("file write failed", "gfid", sent[i].String(), "errno", errnoName(f.Errno), "err", f.Message)
			failed[sent[i]] = &slaveErrno{errno: f.Errno,
				err: fmt.Errorf("slave could not write the file: %s", errnoName(f.Errno))}
		}
		<-slots
	}
	if len(rsync) > 0 {
		for g, err := range w.data.Sync(ctx, rsync) {
			failed[g] = err
		}
	}
	return failed
}

// volumeMeta gives a file a brick worker read on its brick the owner and
// mtime the volume shows (see metaOp); its mode stays the brick's.
func (w *worker) volumeMeta(g gfid.GFID, fd *ops.FileData) {
	var st syscall.Stat_t
	if err := syscall.Lstat(w.brick.dataPath(g), &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return // gone or replaced: the next pass sees it
	}
	fd.UID, fd.GID = st.Uid, st.Gid
	fd.Mtime = time.Unix(st.Mtim.Sec, st.Mtim.Nsec)
}

// sameFile checks that the inode read for it, whose catalog key is key, is
// the gfid's: a file renamed over the crawled name since the crawl is
// another file, whose bytes and attributes the slave must not get as the
// crawled one's (nothing would ship them again: the crawled file's record
// matches the source). Its data fails, and goes again from wherever it is.
func (w *worker) sameFile(it syncer.Item, key catalog.Key) error {
	g, ok, err := w.cat.Identity(key)
	switch {
	case err != nil:
		return err
	case !ok || g != it.GFID:
		return fmt.Errorf("%s: another file is there since the crawl", it.Path)
	}
	return nil
}

// readSmall reads the regular file at path, which must be at most limit
// bytes and dense, and returns its content with the mode, owner and mtime of
// the inode read (not of the crawl's snapshot, so that they go with the
// bytes), and that inode's catalog key. A file that is no longer a regular
// file or vanished is an error; a larger or sparse one is errNotSmall.
//
// With acls (sync-acls), a file with a POSIX access ACL is errNotSmall, and
// one without is read with ClearACL: the slave's file must have none.
func readSmall(path string, limit int64, acls bool) (ops.FileData, catalog.Key, error) {
	f, key, err := openSource(path)
	if err != nil {
		return ops.FileData{}, catalog.Key{}, err
	}
	defer f.Close()
	fd, err := readSmallFd(f, path, limit)
	if err == nil && acls {
		fd.ClearACL, err = hasNoACL(f)
	}
	return fd, key, err
}

// openSource opens the regular file at path for reading, without following
// a symlink or blocking on a fifo swapped in, and returns it with the
// catalog key of the inode opened.
func openSource(path string) (*os.File, catalog.Key, error) {
	if fi, err := os.Lstat(path); err != nil {
		return nil, catalog.Key{}, err
	} else if !fi.Mode().IsRegular() {
		return nil, catalog.Key{}, fmt.Errorf("%s: not a regular file any more", path)
	}
	// O_NONBLOCK: a fifo swapped in since the lstat must not block the open.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, catalog.Key{}, err
	}
	var stx unix.Statx_t
	if err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_STATX_SYNC_AS_STAT, unix.STATX_INO|unix.STATX_BTIME, &stx); err != nil {
		f.Close()
		return nil, catalog.Key{}, err
	}
	key := catalog.Key{Ino: stx.Ino} // as the crawl keys inodes
	if stx.Mask&unix.STATX_BTIME != 0 {
		key.BtimeNs = stx.Btime.Sec*1e9 + int64(stx.Btime.Nsec)
	}
	return f, key, nil
}

func readSmallFd(f *os.File, path string, limit int64) (ops.FileData, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return ops.FileData{}, err
	}
	switch {
	case st.Mode&syscall.S_IFMT != syscall.S_IFREG:
		return ops.FileData{}, fmt.Errorf("%s: not a regular file any more", path)
	case st.Size > limit, st.Blocks*512 < st.Size:
		return ops.FileData{}, errNotSmall
	}
	buf := make([]byte, 0, st.Size+1)
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > limit {
				return ops.FileData{}, errNotSmall
			}
			buf = append(buf, 0)[:len(buf)] // grow
		}
		n, err := f.Read(buf[len(buf):min(cap(buf), int(limit)+1)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return ops.FileData{}, err
		}
	}
	if int64(len(buf)) > limit {
		return ops.FileData{}, errNotSmall
	}
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return ops.FileData{}, err
	}
	return ops.FileData{
		Data: buf, Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid,
		Mtime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
	}, nil
}

// hasNoACL says whether the open file f has no POSIX access ACL (true), or
// has one (errNotSmall: rsync -A ships it). A filesystem without ACLs has
// none.
func hasNoACL(f *os.File) (bool, error) {
	var one [1]byte
	_, err := unix.Fgetxattr(int(f.Fd()), "system.posix_acl_access", one[:])
	switch {
	case errors.Is(err, unix.ENODATA), errors.Is(err, unix.EOPNOTSUPP):
		return true, nil
	case err == nil, errors.Is(err, unix.ERANGE):
		return false, errNotSmall
	}
	return false, fmt.Errorf("%s: reading its ACL: %w", f.Name(), err)
}
