package wire

import (
	"fmt"
	"syscall"

	slavev1 "github.com/georep/georep/gen/georep/slave/v1"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/ops"
)

// AuditDirsToProto returns the audit's directories as protocol AuditDirs.
func AuditDirsToProto(ds []ops.AuditDir) []*slavev1.AuditDir {
	out := make([]*slavev1.AuditDir, len(ds))
	for i, d := range ds {
		pd := &slavev1.AuditDir{Gfid: d.GFID.String(), More: d.More}
		if d.Err != nil {
			pd.Errno, pd.Message = int32(ops.Errno(d.Err)), d.Err.Error()
		}
		pd.Entries = make([]*slavev1.AuditEntry, len(d.Entries))
		for j, e := range d.Entries {
			pe := &slavev1.AuditEntry{Name: []byte(e.Name), Attr: AttrToProto(e.Attr), Ino: e.Ino,
				XattrDigest: e.XattrDigest, ContentDigest: e.ContentDigest}
			if !e.GFID.IsZero() {
				pe.Gfid = e.GFID.String()
			}
			if e.ContentErr != nil {
				pe.ContentErrno = int32(ops.Errno(e.ContentErr))
			}
			pd.Entries[j] = pe
		}
		out[i] = pd
	}
	return out
}

// AuditDirsFromProto returns the audit's directories of pds. It fails for a
// gfid that does not parse.
func AuditDirsFromProto(pds []*slavev1.AuditDir) ([]ops.AuditDir, error) {
	out := make([]ops.AuditDir, len(pds))
	for i, pd := range pds {
		g, err := gfid.Parse(pd.GetGfid())
		if err != nil {
			return nil, fmt.Errorf("audit of directory %q: %w", pd.GetGfid(), err)
		}
		d := ops.AuditDir{GFID: g, More: pd.GetMore()}
		if e := pd.GetErrno(); e != 0 {
			d.Err = fmt.Errorf("audit of %s on the slave: %s: %w", g, pd.GetMessage(), syscall.Errno(e))
		}
		d.Entries = make([]ops.AuditEntry, len(pd.GetEntries()))
		for j, pe := range pd.GetEntries() {
			e := ops.AuditEntry{Name: string(pe.GetName()), Attr: AttrFromProto(pe.GetAttr()), Ino: pe.GetIno(),
				XattrDigest: pe.GetXattrDigest(), ContentDigest: pe.GetContentDigest()}
			if s := pe.GetGfid(); s != "" {
				if e.GFID, err = gfid.Parse(s); err != nil {
					return nil, fmt.Errorf("audit of %s: entry %q: gfid: %w", g, e.Name, err)
				}
			}
			if c := pe.GetContentErrno(); c != 0 {
				e.ContentErr = syscall.Errno(c)
			}
			d.Entries[j] = e
		}
		out[i] = d
	}
	return out, nil
}
