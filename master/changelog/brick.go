package changelog

// The on-disk changelog a GlusterFS brick writes (xlators/features/changelog,
// changelog-encoders.c), before libgfchangelog turns it into the processed
// form Parse reads. A header line
//
//	GlusterFS Changelog | version: v1.<minor> | encoding : <1|2>\n
//
// then records with no separator between them. A record is a type byte, the
// gfid, one value per extra field each preceded by a NUL, and a final NUL:
//
//	D<gfid>\0
//	M<gfid>\0<fop>\0
//	E<gfid>\0<fop>\0<mode>\0<uid>\0<gid>\0<pgfid>/<bname>\0   CREATE MKDIR MKNOD
//	E<gfid>\0<fop>\0<pgfid>/<bname>\0                         LINK SYMLINK
//	E<gfid>\0<fop>\0<pgfid>/<bname>\0<pgfid2>/<bname2>\0      RENAME
//	E<gfid>\0<fop>\0<pgfid>/<bname>\0<path>\0                 UNLINK RMDIR, v1.2
//
// where <path> is the path from the root with changelog.capture-del-path on,
// and a lone NUL (so the record ends "\0\0\0") with it off; v1.1 has no
// <path> field. Encoding 2 (ascii) writes gfids in their 36-character form and
// numbers in decimal. Encoding 1 (binary) writes gfids as 16 raw bytes and
// the fop, mode, uid and gid as 4-byte integers in the brick's byte order
// (read here as little-endian, which every platform GlusterFS ships on is);
// names and the deleted path stay text. GlusterFS's own binary decoder
// (gf_changelog_parse_binary) predates this layout and cannot read it;
// ParseBrick follows the encoder.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/georep/georep/rpc/gfid"
)

// Brick changelog encodings, as the header's "encoding : N" names them.
const (
	BrickBinary = 1
	BrickASCII  = 2
)

// brickHeaderPrefix starts the first line of every brick changelog.
const brickHeaderPrefix = "GlusterFS Changelog | version: v"

// maxBrickField bounds one NUL-terminated field: a deleted path is at most
// PATH_MAX; libgfchangelog sizes its line buffer at 3 * PATH_MAX.
const maxBrickField = 3 * 4096

// maxBrickHeader bounds the header line.
const maxBrickHeader = 128

// glusterFops is glusterfs_fop_t (libglusterfs/src/glusterfs/glusterfs-fops.h)
// with the names of gf_fop_list, which libgfchangelog writes and gsyncd reads.
var glusterFops = [...]Fop{
	"NULL", "STAT", "READLINK", Mknod, Mkdir, Unlink, Rmdir, Symlink, Rename, Link,
	"TRUNCATE", "OPEN", "READ", "WRITE", "STATFS", "FLUSH", "FSYNC", Setxattr, "GETXATTR", "REMOVEXATTR",
	"OPENDIR", "FSYNCDIR", "ACCESS", Create, "FTRUNCATE", "FSTAT", "LK", "LOOKUP", "READDIR", "INODELK",
	"FINODELK", "ENTRYLK", "FENTRYLK", "XATTROP", "FXATTROP", "FGETXATTR", "FSETXATTR", "RCHECKSUM", Setattr, "FSETATTR",
	"READDIRP", "FORGET", "RELEASE", "RELEASEDIR", "GETSPEC", "FREMOVEXATTR", "FALLOCATE", "DISCARD", "ZEROFILL", "IPC",
	"SEEK", "LEASE", "COMPOUND", "GETACTIVELK", "SETACTIVELK", "PUT", "ICREATE", "NAMELINK", "COPY_FILE_RANGE",
}

// BrickFop returns the gsyncd name of GlusterFS fop number n, or "FOP<n>" for
// a number GlusterFS does not define. NB: Validate, and so Write and Parse,
// accept only [A-Z_] in a fop name, so a record carrying "FOP<n>" cannot be
// written to the processed form.
func BrickFop(n uint32) Fop {
	if n < uint32(len(glusterFops)) {
		return glusterFops[n]
	}
	return Fop("FOP" + strconv.FormatUint(uint64(n), 10))
}

// BrickError locates malformed input in a brick changelog or an HTIME file.
type BrickError struct {
	File   string // as given to ParseBrick or ParseHTIME
	Offset int64  // of the offending byte or field, from the start of the file
	Err    error
}

func (e *BrickError) Error() string {
	return fmt.Sprintf("%s: byte %d: %v", e.File, e.Offset, e.Err)
}
func (e *BrickError) Unwrap() error { return e.Err }

// errTruncated is wrapped, with ErrInvalid, when input ends inside a record.
var errTruncated = fmt.Errorf("truncated: %w", io.ErrUnexpectedEOF)

// ParseBrick reads a brick's on-disk changelog (ascii or binary encoding,
// version 1.1 or 1.2) and returns its records in the record model, in file
// order, as Parse would return libgfchangelog's processed form of it. The
// path GlusterFS records for UNLINK and RMDIR with capture-del-path on is
// read and dropped (libgfchangelog passes it on; georep does not use it). A
// changelog with only the header has no records. M records name their fop
// by BrickFop; an E record whose fop is not one of the eight entry fops, or
// an M record with an entry fop, is malformed. name is used in errors only,
// which are *BrickError wrapping ErrInvalid (and io.ErrUnexpectedEOF when
// the input ends inside a record), or the reader's error.
func ParseBrick(r io.Reader, name string) ([]Record, error) {
	recs, _, err := parseBrick(r, name, false)
	return recs, err
}

// ParseBrickPrefix is ParseBrick for the changelog a brick is still
// writing: input that ends inside a record (or inside the header) is not an
// error; the records before it are returned, with the number of bytes they
// and the header take. The brick appends whole records, so the rest is
// there at the next read.
func ParseBrickPrefix(r io.Reader, name string) (recs []Record, complete int64, err error) {
	return parseBrick(r, name, true)
}

func parseBrick(r io.Reader, name string, prefix bool) ([]Record, int64, error) {
	d := &brickDecoder{r: bufio.NewReaderSize(r, 2*maxBrickField), name: name}
	if err := d.header(); err != nil {
		if prefix && errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, 0, nil
		}
		return nil, 0, err
	}
	var recs []Record
	for {
		end := d.off
		if _, err := d.r.Peek(1); err == io.EOF {
			return recs, end, nil
		} else if err != nil {
			return nil, 0, &BrickError{name, d.off, err}
		}
		rec, err := d.record()
		if err != nil {
			if prefix && errors.Is(err, io.ErrUnexpectedEOF) {
				return recs, end, nil
			}
			return nil, 0, err
		}
		recs = append(recs, rec)
	}
}

type brickDecoder struct {
	r       *bufio.Reader
	name    string
	off     int64 // bytes consumed
	binary  bool
	minor   int
	recOff  int64 // start of the current record
	scratch [16]byte
}

func (d *brickDecoder) fail(off int64, format string, args ...any) error {
	return &BrickError{d.name, off, fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))}
}

func (d *brickDecoder) readErr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return &BrickError{d.name, d.off, fmt.Errorf("%w: record at byte %d %w", ErrInvalid, d.recOff, errTruncated)}
	}
	return &BrickError{d.name, d.off, err}
}

func (d *brickDecoder) header() error {
	line, err := d.r.ReadSlice('\n')
	if err == io.EOF && len(line) <= maxBrickHeader {
		return &BrickError{d.name, 0, fmt.Errorf("%w: header %w", ErrInvalid, errTruncated)}
	}
	if err != nil || len(line) > maxBrickHeader {
		if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
			return &BrickError{d.name, 0, err}
		}
		return d.fail(0, "missing header line %q", trunc(string(line)))
	}
	h := string(line[:len(line)-1])
	rest, ok := cutPrefix(h, brickHeaderPrefix)
	var major, minor, enc int
	if ok {
		var s string
		s, rest, ok = cutNumber(rest)
		major, _ = strconv.Atoi(s)
		if ok {
			rest, ok = cutPrefix(rest, ".")
		}
		if ok {
			s, rest, ok = cutNumber(rest)
			minor, _ = strconv.Atoi(s)
		}
		if ok {
			rest, ok = cutPrefix(rest, " | encoding : ")
		}
		if ok {
			s, rest, ok = cutNumber(rest)
			enc, _ = strconv.Atoi(s)
			ok = ok && rest == ""
		}
	}
	if !ok {
		return d.fail(0, "not a GlusterFS changelog header: %q", trunc(h))
	}
	if major != 1 || (minor != 1 && minor != 2) {
		return d.fail(0, "unsupported changelog version v%d.%d", major, minor)
	}
	if enc != BrickBinary && enc != BrickASCII {
		return d.fail(0, "unknown changelog encoding %d", enc)
	}
	d.off = int64(len(line))
	d.binary = enc == BrickBinary
	d.minor = minor
	return nil
}

// cutNumber splits s after its leading decimal digits (1 to 9 of them).
func cutNumber(s string) (num, rest string, ok bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i], s[i:], i > 0 && i <= 9
}

func cutPrefix(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || s[:len(prefix)] != prefix {
		return s, false
	}
	return s[len(prefix):], true
}

func (d *brickDecoder) record() (Record, error) {
	var rec Record
	d.recOff = d.off
	t, err := d.r.ReadByte()
	if err != nil {
		return rec, d.readErr(err)
	}
	d.off++
	rec.Kind = Kind(t)
	if rec.Kind != Entry && rec.Kind != Data && rec.Kind != Meta {
		return rec, d.fail(d.recOff, "record type %q", t)
	}
	if rec.GFID, err = d.gfid(); err != nil {
		return rec, err
	}
	if rec.Kind == Data {
		return rec, nil
	}
	fopOff := d.off
	n, err := d.number("fop")
	if err != nil {
		return rec, err
	}
	rec.Fop = BrickFop(n)
	if rec.Kind == Meta {
		if rec.Fop.IsEntry() {
			return rec, d.fail(fopOff, "M record with entry fop %d (%s)", n, rec.Fop)
		}
		return rec, nil
	}
	if !rec.Fop.IsEntry() {
		return rec, d.fail(fopOff, "unknown entry fop %d (%s)", n, rec.Fop)
	}
	if rec.Fop.hasStat() {
		for _, f := range []struct {
			p    *uint32
			what string
		}{{&rec.Mode, "mode"}, {&rec.UID, "uid"}, {&rec.GID, "gid"}} {
			if *f.p, err = d.number(f.what); err != nil {
				return rec, err
			}
		}
	}
	if rec.Parent, rec.Name, err = d.entry(); err != nil {
		return rec, err
	}
	switch rec.Fop {
	case Rename:
		rec.NewParent, rec.NewName, err = d.entry()
	case Unlink, Rmdir:
		if d.minor >= 2 {
			err = d.delPath()
		}
	}
	return rec, err
}

// field reads up to and including the next NUL and returns the bytes before
// it, valid until the next read.
func (d *brickDecoder) field(what string) ([]byte, error) {
	start := d.off
	b, err := d.r.ReadSlice(0)
	d.off += int64(len(b))
	switch {
	case err == bufio.ErrBufferFull || len(b) > maxBrickField:
		return nil, d.fail(start, "%s field longer than %d bytes", what, maxBrickField)
	case err != nil:
		return nil, d.readErr(err)
	}
	return b[:len(b)-1], nil
}

// fixed reads n raw bytes and the NUL after them.
func (d *brickDecoder) fixed(n int, what string) ([]byte, error) {
	b := d.scratch[:n]
	m, err := io.ReadFull(d.r, b)
	d.off += int64(m)
	if err != nil {
		return nil, d.readErr(err)
	}
	if err := d.nul(what); err != nil {
		return nil, err
	}
	return b, nil
}

func (d *brickDecoder) nul(after string) error {
	c, err := d.r.ReadByte()
	if err != nil {
		return d.readErr(err)
	}
	if c != 0 {
		return d.fail(d.off, "%q after %s, want NUL", c, after)
	}
	d.off++
	return nil
}

func (d *brickDecoder) gfid() (gfid.GFID, error) {
	start := d.off
	if d.binary {
		b, err := d.fixed(16, "gfid")
		if err != nil {
			return gfid.GFID{}, err
		}
		g, err := gfid.FromBytes(b)
		if err != nil {
			return g, d.fail(start, "gfid: %v", err)
		}
		return g, nil
	}
	b, err := d.field("gfid")
	if err != nil {
		return gfid.GFID{}, err
	}
	g, err := gfid.Parse(string(b))
	if err != nil {
		return g, d.fail(start, "gfid: %v", err)
	}
	return g, nil
}

// number reads a fop, mode, uid or gid.
func (d *brickDecoder) number(what string) (uint32, error) {
	start := d.off
	if d.binary {
		b, err := d.fixed(4, what)
		if err != nil {
			return 0, err
		}
		n := binary.LittleEndian.Uint32(b)
		if what == "fop" && n > 1<<31-1 {
			return 0, d.fail(start, "negative fop %d", int32(n))
		}
		return n, nil
	}
	b, err := d.field(what)
	if err != nil {
		return 0, err
	}
	bits := 32
	if what == "fop" {
		bits = 31 // glusterfs_fop_t is an int
	}
	if len(b) == 0 || b[0] < '0' || b[0] > '9' {
		return 0, d.fail(start, "%s %q: not a decimal number", what, trunc(string(b)))
	}
	n, err := strconv.ParseUint(string(b), 10, bits)
	if err != nil {
		return 0, d.fail(start, "%s %q: not a decimal uint%d", what, trunc(string(b)), bits)
	}
	return uint32(n), nil
}

// entry reads "<pgfid>/<bname>" and its terminating NUL.
func (d *brickDecoder) entry() (gfid.GFID, string, error) {
	start := d.off
	var p gfid.GFID
	var name []byte
	if d.binary {
		m, err := io.ReadFull(d.r, d.scratch[:16])
		d.off += int64(m)
		if err != nil {
			return p, "", d.readErr(err)
		}
		if p, err = gfid.FromBytes(d.scratch[:16]); err != nil {
			return p, "", d.fail(start, "entry parent: %v", err)
		}
		b, err := d.field("entry")
		if err != nil {
			return p, "", err
		}
		if len(b) == 0 || b[0] != '/' {
			return p, "", d.fail(start+16, "entry parent gfid not followed by '/'")
		}
		name = b[1:]
	} else {
		b, err := d.field("entry")
		if err != nil {
			return p, "", err
		}
		i := bytes.IndexByte(b, '/')
		if i != 36 {
			return p, "", d.fail(start, "entry %q is not <pgfid>/<name>", trunc(string(b)))
		}
		if p, err = gfid.Parse(string(b[:36])); err != nil {
			return p, "", d.fail(start, "entry parent: %v", err)
		}
		name = b[37:]
	}
	s := string(name)
	if err := ValidName(s); err != nil {
		return p, "", &BrickError{d.name, start, err}
	}
	return p, s, nil
}

// delPath reads the v1.2 UNLINK/RMDIR path field: the path from the root, or
// (capture-del-path off) a lone NUL, then the record's final NUL.
func (d *brickDecoder) delPath() error {
	b, err := d.field("deleted path")
	if err != nil {
		return err
	}
	if len(b) == 0 {
		return d.nul("empty deleted path")
	}
	return nil
}
