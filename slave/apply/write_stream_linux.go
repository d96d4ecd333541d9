package apply

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/georep/georep/rpc/eintr"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// FileWriter is one regular file being filled from a stream (the slave's
// WriteFile, the large-file path): the empty file of a gfid the replica
// holds, written in order, then given its attributes (Commit), or emptied
// again (Abort). Exactly one of Commit and Abort must be called; a
// FileWriter is used by one goroutine.
type FileWriter struct {
	fd      int
	g       gfid.GFID
	st      unix.Stat_t // before the first write
	size    int64       // announced
	written int64
}

// ErrHasData is the refusal of a stream to a file that is not empty: it
// holds data the stream would not start from, which rsync's delta
// transfer updates instead.
func ErrHasData(g gfid.GFID, size int64) error {
	return Errorf(unix.EEXIST, "gfid %s holds %d bytes already: not a new file", g, size)
}

// OpenWriter opens the regular file of g, which must be empty, to be
// written with size bytes. It reaches the file through Backend.OpenData
// only, as WriteFiles does (an unknown gfid, or one that is not a regular
// file, fails; nothing is created). The engine's lock is held for the open
// only: like rsync's receiver, the writes and attribute calls that follow
// go to the open descriptor.
func (en *Engine) OpenWriter(g gfid.GFID, size int64) (*FileWriter, error) {
	switch {
	case g.IsZero():
		return nil, Errorf(unix.EINVAL, "zero gfid")
	case g == gfid.Root || g == gfid.Park:
		return nil, Errorf(unix.EINVAL, "gfid %s is reserved: not a regular file", g)
	case size < 0:
		return nil, Errorf(unix.EINVAL, "size %d", size)
	}
	if !en.cfg.StreamWrites {
		return nil, Errorf(unix.EOPNOTSUPP, "this replica does not write files from a stream")
	}
	if err := en.rlock(); err != nil {
		return nil, err
	}
	fd, err := en.b.OpenData(g)
	en.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	st, err := Fstat(fd)
	if err != nil {
		CloseFd(fd)
		return nil, err
	}
	if st.Size != 0 {
		CloseFd(fd)
		return nil, ErrHasData(g, st.Size)
	}
	return &FileWriter{fd: fd, g: g, st: st, size: size}, nil
}

// WritesStreams reports whether OpenWriter may be used (Config.StreamWrites).
func (en *Engine) WritesStreams() bool { return en.cfg.StreamWrites }

// maxIOV bounds the buffers of one writev (the kernel's IOV_MAX).
const maxIOV = 1024

// Write appends the buffers of iov to the file, in order. More bytes in
// all than the size announced is refused (EFBIG) before any is written.
func (w *FileWriter) Write(iov [][]byte) error {
	var n int64
	for _, b := range iov {
		n += int64(len(b))
	}
	if w.written+n > w.size {
		return Errorf(unix.EFBIG, "gfid %s: %d bytes sent for a file of %d", w.g, w.written+n, w.size)
	}
	for len(iov) > 0 {
		k, err := eintr.Value(func() (int, error) { return unix.Writev(w.fd, iov[:min(len(iov), maxIOV)]) })
		if err != nil {
			return fmt.Errorf("write %s: %w", w.g, err)
		}
		if k == 0 {
			return Errorf(unix.EIO, "write %s: no progress", w.g)
		}
		w.written += int64(k)
		for k > 0 {
			if k >= len(iov[0]) {
				k -= len(iov[0])
				iov = iov[1:]
				continue
			}
			iov[0] = iov[0][k:]
			k = 0
		}
		for len(iov) > 0 && len(iov[0]) == 0 {
			iov = iov[1:]
		}
	}
	return nil
}

// Commit checks that every byte announced was written, gives the file a's
// attributes and closes it. When it fails the file is emptied again.
func (w *FileWriter) Commit(a ops.FileAttrs) error {
	if w.written != w.size {
		err := Errorf(unix.EINVAL, "gfid %s: %d bytes sent for a file of %d", w.g, w.written, w.size)
		w.Abort()
		return err
	}
	if err := setFileAttrs(w.fd, w.st, a, w.written > 0); err != nil {
		w.Abort()
		return fmt.Errorf("gfid %s: %w", w.g, err)
	}
	CloseFd(w.fd)
	w.fd = -1
	return nil
}

// Abort empties the file again (it was empty when opened: a stream cut
// short leaves no part of the file behind) and closes it.
func (w *FileWriter) Abort() {
	if w.fd < 0 {
		return
	}
	if w.written > 0 {
		_ = eintr.Retry(func() error { return unix.Ftruncate(w.fd, 0) })
	}
	CloseFd(w.fd)
	w.fd = -1
}
