// Package changelog is georep's change record model: gsyncd's processed
// changelog form (what libgfchangelog hands to gsyncd), one record per line,
// and the files the hybrid crawl writes in it.
//
//	E <gfid> CREATE|MKDIR|MKNOD <mode> <uid> <gid> <pgfid>/<name>
//	E <gfid> LINK|SYMLINK <pgfid>/<name>
//	E <gfid> RENAME <pgfid>/<name> <pgfid2>/<name2>
//	E <gfid> UNLINK|RMDIR <pgfid>/<name>
//	D <gfid>
//	M <gfid> SETATTR|SETXATTR|...
//
// Names are percent-encoded by Write; Parse decodes them and also accepts
// gsyncd's unencoded names. It corresponds to the processed format of
// libgfchangelog and the parsing half of master.py's process_change.
package changelog

import (
	"errors"
	"fmt"

	"github.com/georep/georep/rpc/gfid"
)

// Header is the first line of every changelog georep writes.
const Header = "GEOREP-CHANGELOG v1"

// Kind is the record type: the first field of a line.
type Kind byte

const (
	Entry Kind = 'E' // namespace operation
	Data  Kind = 'D' // file content changed
	Meta  Kind = 'M' // attributes or xattrs changed
)

func (k Kind) String() string {
	switch k {
	case Entry, Data, Meta:
		return string(rune(k))
	}
	return fmt.Sprintf("Kind(%#x)", byte(k))
}

// Fop is a file operation by its gsyncd name.
type Fop string

// Entry fops.
const (
	Create  Fop = "CREATE"
	Mkdir   Fop = "MKDIR"
	Mknod   Fop = "MKNOD"
	Link    Fop = "LINK"
	Symlink Fop = "SYMLINK"
	Rename  Fop = "RENAME"
	Unlink  Fop = "UNLINK"
	Rmdir   Fop = "RMDIR"
)

// Metadata fops. Parse accepts any upper-case fop name in an M record (GlusterFS
// also records FSETATTR, REMOVEXATTR, TRUNCATE, ...); these are the ones georep
// writes.
const (
	Setattr  Fop = "SETATTR"
	Setxattr Fop = "SETXATTR"
)

func (f Fop) String() string { return string(f) }

// IsEntry reports whether f is an entry (namespace) fop.
func (f Fop) IsEntry() bool {
	switch f {
	case Create, Mkdir, Mknod, Link, Symlink, Rename, Unlink, Rmdir:
		return true
	}
	return false
}

// hasStat reports whether the entry fop carries mode, uid and gid.
func (f Fop) hasStat() bool { return f == Create || f == Mkdir || f == Mknod }

// Record is one change. Which fields are set depends on Kind and Fop:
// Mode, UID, GID for CREATE, MKDIR and MKNOD; Parent and Name for every entry
// fop; NewParent and NewName for RENAME only. Fop is empty for Data records.
type Record struct {
	Kind      Kind
	GFID      gfid.GFID
	Fop       Fop
	Mode      uint32
	UID       uint32
	GID       uint32
	Parent    gfid.GFID
	Name      string
	NewParent gfid.GFID
	NewName   string
}

// MaxName is the longest name a record may carry, in bytes (NAME_MAX).
const MaxName = 255

// ErrInvalid is wrapped by every error about a malformed record or line.
var ErrInvalid = errors.New("invalid changelog record")

// ParseError locates a malformed line.
type ParseError struct {
	File string // as given to Parse
	Line int    // 1-based
	Err  error
}

func (e *ParseError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }
func (e *ParseError) Unwrap() error { return e.Err }

// ValidName reports whether name can be an entry name: not empty, not "." or
// "..", no '/' or NUL, at most MaxName bytes. Any other bytes are allowed.
func ValidName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty name", ErrInvalid)
	case name == "." || name == "..":
		return fmt.Errorf("%w: name %q", ErrInvalid, name)
	case len(name) > MaxName:
		return fmt.Errorf("%w: name of %d bytes", ErrInvalid, len(name))
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '/' || name[i] == 0 {
			return fmt.Errorf("%w: name %q contains %q", ErrInvalid, name, name[i])
		}
	}
	return nil
}

// Validate checks that r is a record Write can write and Parse would return.
func (r *Record) Validate() error {
	if r.GFID.IsZero() {
		return fmt.Errorf("%w: zero gfid", ErrInvalid)
	}
	switch r.Kind {
	case Data:
		if r.Fop != "" {
			return fmt.Errorf("%w: D record with fop %s", ErrInvalid, r.Fop)
		}
		return nil
	case Meta:
		if !validMetaFop(string(r.Fop)) {
			return fmt.Errorf("%w: M record fop %q", ErrInvalid, r.Fop)
		}
		return nil
	case Entry:
	default:
		return fmt.Errorf("%w: kind %v", ErrInvalid, r.Kind)
	}
	if !r.Fop.IsEntry() {
		return fmt.Errorf("%w: entry fop %q", ErrInvalid, r.Fop)
	}
	if r.Parent.IsZero() {
		return fmt.Errorf("%w: %s with zero parent gfid", ErrInvalid, r.Fop)
	}
	if err := ValidName(r.Name); err != nil {
		return err
	}
	if r.Fop == Rename {
		if r.NewParent.IsZero() {
			return fmt.Errorf("%w: RENAME with zero new parent gfid", ErrInvalid)
		}
		return ValidName(r.NewName)
	}
	return nil
}

func validMetaFop(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'A' || c > 'Z') && c != '_' && (i == 0 || c < '0' || c > '9') { // "FOP59" for fops we have no name for
			return false
		}
	}
	return !Fop(s).IsEntry()
}
