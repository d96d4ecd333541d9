package wire

import (
	"fmt"
	"slices"
	"syscall"
	"time"

	slavev1 "github.com/georep/georep/gen/georep/slave/v1"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

var opToProto = map[ops.Op]slavev1.EntryOp{
	ops.OpCreate:  slavev1.EntryOp_ENTRY_OP_CREATE,
	ops.OpMkdir:   slavev1.EntryOp_ENTRY_OP_MKDIR,
	ops.OpMknod:   slavev1.EntryOp_ENTRY_OP_MKNOD,
	ops.OpLink:    slavev1.EntryOp_ENTRY_OP_LINK,
	ops.OpSymlink: slavev1.EntryOp_ENTRY_OP_SYMLINK,
	ops.OpRename:  slavev1.EntryOp_ENTRY_OP_RENAME,
	ops.OpUnlink:  slavev1.EntryOp_ENTRY_OP_UNLINK,
	ops.OpRmdir:   slavev1.EntryOp_ENTRY_OP_RMDIR,
}

var opFromProto = func() map[slavev1.EntryOp]ops.Op {
	m := make(map[slavev1.EntryOp]ops.Op, len(opToProto))
	for o, p := range opToProto {
		m[p] = o
	}
	return m
}()

// OpToProto returns the protocol's EntryOp of o (ENTRY_OP_UNSPECIFIED for
// an unknown op).
func OpToProto(o ops.Op) slavev1.EntryOp { return opToProto[o] }

// OpFromProto returns the Op of p, or false for an unknown or unspecified
// op.
func OpFromProto(p slavev1.EntryOp) (ops.Op, bool) {
	o, ok := opFromProto[p]
	return o, ok
}

// TypeToProto returns the protocol's FileType of t (the enums share their
// numbers; 0 is FILE_TYPE_UNSPECIFIED).
func TypeToProto(t ops.FileType) slavev1.FileType { return slavev1.FileType(t) }

// TypeFromProto returns the FileType of p (0 for FILE_TYPE_UNSPECIFIED).
func TypeFromProto(p slavev1.FileType) ops.FileType { return ops.FileType(p) }

// TimeToProto returns t as a Timespec.
func TimeToProto(t time.Time) *slavev1.Timespec {
	return &slavev1.Timespec{Sec: t.Unix(), Nsec: int32(t.Nanosecond())}
}

// TimeFromProto returns the time of ts, the zero time for nil.
func TimeFromProto(ts *slavev1.Timespec) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return time.Unix(ts.GetSec(), int64(ts.GetNsec()))
}

// EntryToProto returns e as a protocol Entry (the new parent and name only
// for a RENAME).
func EntryToProto(e ops.Entry) *slavev1.Entry {
	pe := &slavev1.Entry{
		Op: OpToProto(e.Op), Gfid: e.GFID.String(), Pargfid: e.Parent.String(), Name: []byte(e.Name),
		Mode: e.Mode, Uid: e.UID, Gid: e.GID, Rdev: e.Rdev,
	}
	if e.Target != "" {
		pe.LinkTarget = []byte(e.Target)
	}
	if e.Op == ops.OpRename {
		pe.NewPargfid = e.NewParent.String()
		pe.NewName = []byte(e.NewName)
	}
	return pe
}

// EntriesToProto returns es as protocol Entries, in order.
func EntriesToProto(es []ops.Entry) []*slavev1.Entry {
	out := make([]*slavev1.Entry, len(es))
	for i, e := range es {
		out[i] = EntryToProto(e)
	}
	return out
}

// EntryFromProto returns the Entry of pe. It fails for an unknown op or a
// gfid that does not parse; names and modes are the applier's to validate.
func EntryFromProto(pe *slavev1.Entry) (ops.Entry, error) {
	op, ok := OpFromProto(pe.GetOp())
	if !ok {
		return ops.Entry{}, fmt.Errorf("unknown entry op %v", pe.GetOp())
	}
	g, err := gfid.Parse(pe.GetGfid())
	if err != nil {
		return ops.Entry{}, fmt.Errorf("%s: gfid: %w", op, err)
	}
	parent, err := gfid.Parse(pe.GetPargfid())
	if err != nil {
		return ops.Entry{}, fmt.Errorf("%s %s: pargfid: %w", op, g, err)
	}
	e := ops.Entry{
		Op: op, GFID: g, Parent: parent, Name: string(pe.GetName()),
		Mode: pe.GetMode(), UID: pe.GetUid(), GID: pe.GetGid(), Rdev: pe.GetRdev(),
		Target: string(pe.GetLinkTarget()),
	}
	if op == ops.OpRename {
		if e.NewParent, err = gfid.Parse(pe.GetNewPargfid()); err != nil {
			return ops.Entry{}, fmt.Errorf("%s %s: new pargfid: %w", op, g, err)
		}
		e.NewName = string(pe.GetNewName())
	}
	return e, nil
}

// MetaToProto returns m as a protocol Meta; the xattrs, sorted by name, only
// when SetXattrs.
func MetaToProto(m ops.Meta) *slavev1.Meta {
	pm := &slavev1.Meta{
		Gfid:    m.GFID.String(),
		SetMode: m.SetMode, Mode: m.Mode,
		SetOwner: m.SetOwner, Uid: m.UID, Gid: m.GID,
		SetXattrs: m.SetXattrs,
	}
	if m.Atime != nil {
		pm.Atime = TimeToProto(*m.Atime)
	}
	if m.Mtime != nil {
		pm.Mtime = TimeToProto(*m.Mtime)
	}
	if m.SetXattrs {
		names := make([]string, 0, len(m.Xattrs))
		for name := range m.Xattrs {
			names = append(names, name)
		}
		slices.Sort(names)
		pm.Xattrs = make([]*slavev1.Xattr, len(names))
		for i, name := range names {
			pm.Xattrs[i] = &slavev1.Xattr{Name: name, Value: m.Xattrs[name]}
		}
	}
	return pm
}

// MetasToProto returns ms as protocol Metas, in order.
func MetasToProto(ms []ops.Meta) []*slavev1.Meta {
	out := make([]*slavev1.Meta, len(ms))
	for i, m := range ms {
		out[i] = MetaToProto(m)
	}
	return out
}

// MetaFromProto returns the Meta of pm (Xattrs non-nil exactly when
// SetXattrs). It fails for a gfid that does not parse.
func MetaFromProto(pm *slavev1.Meta) (ops.Meta, error) {
	g, err := gfid.Parse(pm.GetGfid())
	if err != nil {
		return ops.Meta{}, fmt.Errorf("meta: gfid: %w", err)
	}
	m := ops.Meta{
		GFID:    g,
		SetMode: pm.GetSetMode(), Mode: pm.GetMode(),
		SetOwner: pm.GetSetOwner(), UID: pm.GetUid(), GID: pm.GetGid(),
		SetXattrs: pm.GetSetXattrs(),
	}
	if t := pm.GetAtime(); t != nil {
		at := TimeFromProto(t)
		m.Atime = &at
	}
	if t := pm.GetMtime(); t != nil {
		mt := TimeFromProto(t)
		m.Mtime = &mt
	}
	if m.SetXattrs {
		m.Xattrs = make(map[string][]byte, len(pm.GetXattrs()))
		for _, x := range pm.GetXattrs() {
			m.Xattrs[x.GetName()] = x.GetValue()
		}
	}
	return m, nil
}

// FileDataToProto returns f as a protocol FileData.
func FileDataToProto(f ops.FileData) *slavev1.FileData {
	return &slavev1.FileData{
		Gfid: f.GFID.String(), Data: f.Data, Mode: f.Mode, Uid: f.UID, Gid: f.GID,
		Mtime: TimeToProto(f.Mtime), ClearAcl: f.ClearACL,
	}
}

// FilesToProto returns fs as protocol FileData, in order.
func FilesToProto(fs []ops.FileData) []*slavev1.FileData {
	out := make([]*slavev1.FileData, len(fs))
	for i, f := range fs {
		out[i] = FileDataToProto(f)
	}
	return out
}

// FileDataFromProto returns the FileData of pf; its Mtime is the zero time
// when pf has none. It fails for a gfid that does not parse.
func FileDataFromProto(pf *slavev1.FileData) (ops.FileData, error) {
	g, err := gfid.Parse(pf.GetGfid())
	if err != nil {
		return ops.FileData{}, fmt.Errorf("write: gfid: %w", err)
	}
	return ops.FileData{
		GFID: g, Data: pf.GetData(), Mode: pf.GetMode(), UID: pf.GetUid(), GID: pf.GetGid(),
		Mtime: TimeFromProto(pf.GetMtime()), ClearACL: pf.GetClearAcl(),
	}, nil
}

// FileAttrsToProto returns the End message of a WriteFile stream that sets a.
func FileAttrsToProto(a ops.FileAttrs) *slavev1.WriteFileEnd {
	return &slavev1.WriteFileEnd{Mode: a.Mode, Uid: a.UID, Gid: a.GID, Mtime: TimeToProto(a.Mtime), SetAcl: a.SetACL, Acl: a.ACL}
}

// FileAttrsFromProto returns the attributes an End message sets; its Mtime
// is the zero time when pe has none.
func FileAttrsFromProto(pe *slavev1.WriteFileEnd) ops.FileAttrs {
	return ops.FileAttrs{Mode: pe.GetMode(), UID: pe.GetUid(), GID: pe.GetGid(), Mtime: TimeFromProto(pe.GetMtime()),
		SetACL: pe.GetSetAcl(), ACL: pe.GetAcl()}
}

// FailureToProto returns f as a protocol EntryFailure (Index is f.Index).
func FailureToProto(f ops.Failure) *slavev1.EntryFailure {
	pf := &slavev1.EntryFailure{Index: uint32(f.Index), Errno: int32(f.Errno), Message: f.Message}
	if !f.Existing.IsZero() {
		pf.ExistingGfid = f.Existing.String()
	}
	return pf
}

// FailuresToProto returns fs as protocol EntryFailures, in order.
func FailuresToProto(fs []ops.Failure) []*slavev1.EntryFailure {
	out := make([]*slavev1.EntryFailure, len(fs))
	for i, f := range fs {
		out[i] = FailureToProto(f)
	}
	return out
}

// FailureFromProto returns the Failure of pf. It fails for an existing gfid
// that does not parse.
func FailureFromProto(pf *slavev1.EntryFailure) (ops.Failure, error) {
	f := ops.Failure{Index: int(pf.GetIndex()), Errno: syscall.Errno(pf.GetErrno()), Message: pf.GetMessage()}
	if s := pf.GetExistingGfid(); s != "" {
		g, err := gfid.Parse(s)
		if err != nil {
			return ops.Failure{}, fmt.Errorf("failure %d: existing gfid: %w", pf.GetIndex(), err)
		}
		f.Existing = g
	}
	return f, nil
}

// FailuresFromProto returns the Failures of pfs, in order.
func FailuresFromProto(pfs []*slavev1.EntryFailure) ([]ops.Failure, error) {
	if len(pfs) == 0 {
		return nil, nil
	}
	out := make([]ops.Failure, len(pfs))
	for i, pf := range pfs {
		f, err := FailureFromProto(pf)
		if err != nil {
			return nil, err
		}
		out[i] = f
	}
	return out, nil
}

// AttrToProto returns a as a protocol Attr.
func AttrToProto(a ops.Attr) *slavev1.Attr {
	pa := &slavev1.Attr{
		Type: TypeToProto(a.Type), Mode: a.Mode, Uid: a.UID, Gid: a.GID, Size: a.Size,
		Mtime: TimeToProto(a.Mtime),
		Nlink: a.Nlink, Rdev: a.Rdev,
	}
	if a.Target != "" {
		pa.LinkTarget = []byte(a.Target)
	}
	return pa
}

// AttrFromProto returns the Attr of pa.
func AttrFromProto(pa *slavev1.Attr) ops.Attr {
	return ops.Attr{
		Type: TypeFromProto(pa.GetType()), Mode: pa.GetMode(), UID: pa.GetUid(), GID: pa.GetGid(), Size: pa.GetSize(),
		Mtime: TimeFromProto(pa.GetMtime()),
		Nlink: pa.GetNlink(), Rdev: pa.GetRdev(), Target: string(pa.GetLinkTarget()),
	}
}

// StatResultToProto returns the protocol StatResult of the gfid text asked
// for: its attributes, or the errno of err (ops.Errno) when err is not nil.
func StatResultToProto(text string, a ops.Attr, err error) *slavev1.StatResult {
	r := &slavev1.StatResult{Gfid: text}
	if err != nil {
		r.Errno = int32(ops.Errno(err))
		return r
	}
	r.Attr = AttrToProto(a)
	return r
}

// StatResultFromProto returns the attributes of r, or its errno as the
// error (errors.Is(err, ops.ErrNotFound) for an unknown gfid).
func StatResultFromProto(r *slavev1.StatResult) (ops.Attr, error) {
	if e := r.GetErrno(); e != 0 {
		return ops.Attr{}, fmt.Errorf("stat %s: %w", r.GetGfid(), syscall.Errno(e))
	}
	return AttrFromProto(r.GetAttr()), nil
}

// DirEntryToProto returns d as a protocol DirEntry (no gfid when d has
// none).
func DirEntryToProto(d ops.DirEntry) *slavev1.DirEntry {
	pd := &slavev1.DirEntry{Name: []byte(d.Name), Type: TypeToProto(d.Type)}
	if !d.GFID.IsZero() {
		pd.Gfid = d.GFID.String()
	}
	return pd
}

// DirEntriesToProto returns ds as protocol DirEntries, in order.
func DirEntriesToProto(ds []ops.DirEntry) []*slavev1.DirEntry {
	out := make([]*slavev1.DirEntry, len(ds))
	for i, d := range ds {
		out[i] = DirEntryToProto(d)
	}
	return out
}

// DirEntryFromProto returns the DirEntry of pd (a zero GFID when pd has
// none). It fails for a gfid that does not parse.
func DirEntryFromProto(pd *slavev1.DirEntry) (ops.DirEntry, error) {
	d := ops.DirEntry{Name: string(pd.GetName()), Type: TypeFromProto(pd.GetType())}
	if s := pd.GetGfid(); s != "" {
		g, err := gfid.Parse(s)
		if err != nil {
			return ops.DirEntry{}, fmt.Errorf("entry %q: gfid: %w", d.Name, err)
		}
		d.GFID = g
	}
	return d, nil
}

// DirEntriesFromProto returns the DirEntries of pds, in order.
func DirEntriesFromProto(pds []*slavev1.DirEntry) ([]ops.DirEntry, error) {
	out := make([]ops.DirEntry, len(pds))
	for i, pd := range pds {
		d, err := DirEntryFromProto(pd)
		if err != nil {
			return nil, err
		}
		out[i] = d
	}
	return out, nil
}
