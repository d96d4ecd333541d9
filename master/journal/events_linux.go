package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// errEvent is wrapped by parseEvents' errors.
var errEvent = errors.New("malformed fanotify event")

// event is one fanotify event of a group reporting directory handles and
// names, as parseEvents decodes it.
type event struct {
	mask   uint64
	fd     int32 // FAN_NOFD unless the kernel passed a descriptor, which the reader must close
	hasDir bool  // dir and name are set
	fsid   [8]byte
	dir    Handle
	name   string // "" for an event on the directory itself (reported as ".")
}

const (
	fanotifyMetadataVersion = 3 // FANOTIFY_METADATA_VERSION
	infoHeaderLen           = 4 // struct fanotify_event_info_header
	infoFidLen              = infoHeaderLen + 8 + 8
)

// parseEvents decodes a buffer read from a fanotify descriptor: events of
// struct fanotify_event_metadata, each followed by its info records. Of the
// info records it keeps the first directory record (DFID_NAME or DFID), or,
// without one, a FID record; other types are skipped. Every length is checked
// against the buffer: input that does not parse is an error wrapping
// errEvent, never a panic.
func parseEvents(b []byte) ([]event, error) {
	var evs []event
	for off := 0; off < len(b); {
		rest := b[off:]
		if len(rest) < unix.FAN_EVENT_METADATA_LEN {
			return evs, fmt.Errorf("%w: %d bytes at offset %d, shorter than the metadata", errEvent, len(rest), off)
		}
		evLen := int(binary.NativeEndian.Uint32(rest[0:4]))
		vers := rest[4]
		metaLen := int(binary.NativeEndian.Uint16(rest[6:8]))
		switch {
		case vers != fanotifyMetadataVersion:
			return evs, fmt.Errorf("%w: metadata version %d at offset %d, want %d", errEvent, vers, off, fanotifyMetadataVersion)
		case evLen < unix.FAN_EVENT_METADATA_LEN || evLen > len(rest):
			return evs, fmt.Errorf("%w: event length %d at offset %d, %d bytes left", errEvent, evLen, off, len(rest))
		case metaLen < unix.FAN_EVENT_METADATA_LEN || metaLen > evLen:
			return evs, fmt.Errorf("%w: metadata length %d at offset %d, event length %d", errEvent, metaLen, off, evLen)
		}
		ev := event{
			mask: binary.NativeEndian.Uint64(rest[8:16]),
			fd:   int32(binary.NativeEndian.Uint32(rest[16:20])),
		}
		if err := ev.parseInfo(rest[metaLen:evLen]); err != nil {
			return evs, fmt.Errorf("%w (event at offset %d)", err, off)
		}
		evs = append(evs, ev)
		off += evLen
	}
	return evs, nil
}

// parseInfo decodes the info records of one event. The first directory
// record (DFID_NAME, or DFID) gives the event's directory and name; FID
// records (the object itself, only with FAN_REPORT_FID) and the other types
// (pidfd, error, range, rename) are skipped after their length is checked.
func (ev *event) parseInfo(b []byte) error {
	for off := 0; off < len(b); {
		rest := b[off:]
		if len(rest) < infoHeaderLen {
			return fmt.Errorf("%w: %d bytes of info record", errEvent, len(rest))
		}
		typ := rest[0]
		n := int(binary.NativeEndian.Uint16(rest[2:4]))
		if n < infoHeaderLen || n > len(rest) {
			return fmt.Errorf("%w: info record length %d, %d bytes left", errEvent, n, len(rest))
		}
		rec := rest[:n]
		off += n
		if ev.hasDir || (typ != unix.FAN_EVENT_INFO_TYPE_DFID_NAME && typ != unix.FAN_EVENT_INFO_TYPE_DFID) {
			continue
		}
		fsid, h, tail, err := parseFid(rec)
		if err != nil {
			return err
		}
		name := ""
		if typ == unix.FAN_EVENT_INFO_TYPE_DFID_NAME {
			i := bytes.IndexByte(tail, 0)
			if i < 0 {
				return fmt.Errorf("%w: name without NUL", errEvent)
			}
			if name = string(tail[:i]); name == "." {
				name = "" // an event on the directory itself
			} else if err := checkName(name); err != nil {
				return fmt.Errorf("%w: %v", errEvent, err)
			}
		}
		ev.hasDir, ev.fsid, ev.dir, ev.name = true, fsid, h, name
	}
	return nil
}

// parseFid decodes struct fanotify_event_info_fid: header, fsid, then
// struct file_handle (handle_bytes, handle_type, f_handle). tail is what
// follows the handle in the record.
func parseFid(rec []byte) (fsid [8]byte, h Handle, tail []byte, err error) {
	if len(rec) < infoFidLen {
		return fsid, h, nil, fmt.Errorf("%w: fid record of %d bytes", errEvent, len(rec))
	}
	copy(fsid[:], rec[4:12])
	hb := binary.NativeEndian.Uint32(rec[12:16])
	ht := int32(binary.NativeEndian.Uint32(rec[16:20]))
	if hb == 0 || hb > maxHandleBytes || int(hb) > len(rec)-infoFidLen {
		return fsid, h, nil, fmt.Errorf("%w: file handle of %d bytes in a record of %d", errEvent, hb, len(rec))
	}
	end := infoFidLen + int(hb)
	h = Handle{Type: ht, Bytes: bytes.Clone(rec[infoFidLen:end])}
	return fsid, h, rec[end:], nil
}
