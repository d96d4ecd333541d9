package journal

import (
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

// infoFid builds a struct fanotify_event_info_fid record, name NUL-terminated
// when not nil, padded to 4 bytes as the kernel does.
func infoFid(typ byte, h Handle, name []byte) []byte {
	b := []byte{typ, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}
	b = binary.NativeEndian.AppendUint32(b, uint32(len(h.Bytes)))
	b = binary.NativeEndian.AppendUint32(b, uint32(h.Type))
	b = append(b, h.Bytes...)
	if name != nil {
		b = append(b, name...)
		b = append(b, 0)
	}
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	binary.NativeEndian.PutUint16(b[2:], uint16(len(b)))
	return b
}

// eventBytes builds a struct fanotify_event_metadata followed by infos.
func eventBytes(mask uint64, infos ...[]byte) []byte {
	b := binary.NativeEndian.AppendUint32(nil, 0)
	b = append(b, fanotifyMetadataVersion, 0)
	b = binary.NativeEndian.AppendUint16(b, unix.FAN_EVENT_METADATA_LEN)
	b = binary.NativeEndian.AppendUint64(b, mask)
	b = binary.NativeEndian.AppendUint32(b, uint32(0xffffffff)) // FAN_NOFD
	b = binary.NativeEndian.AppendUint32(b, 1234)
	for _, in := range infos {
		b = append(b, in...)
	}
	binary.NativeEndian.PutUint32(b, uint32(len(b)))
	return b
}

func concat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

var (
	testDir = Handle{Type: 1, Bytes: []byte{0xc4, 0x85, 0xa0, 0, 0x0d, 0x0e, 0xae, 0x7a}}
	testSub = Handle{Type: 1, Bytes: []byte{0xd3, 0x85, 0xa0, 0, 0xba, 0x3e, 0x6f, 0x02}}
	fsid    = [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
)

func TestParseEvents(t *testing.T) {
	create := eventBytes(unix.FAN_CREATE|unix.FAN_MODIFY, infoFid(unix.FAN_EVENT_INFO_TYPE_DFID_NAME, testDir, []byte("f")))
	self := eventBytes(unix.FAN_ATTRIB|unix.FAN_ONDIR, infoFid(unix.FAN_EVENT_INFO_TYPE_DFID_NAME, testSub, []byte(".")))
	overflow := eventBytes(unix.FAN_Q_OVERFLOW)
	withFid := eventBytes(unix.FAN_MODIFY,
		infoFid(unix.FAN_EVENT_INFO_TYPE_DFID_NAME, testDir, []byte("g")),
		infoFid(unix.FAN_EVENT_INFO_TYPE_FID, testSub, nil))
	dfid := eventBytes(unix.FAN_ATTRIB|unix.FAN_ONDIR, infoFid(unix.FAN_EVENT_INFO_TYPE_DFID, testSub, nil))
	unknown := eventBytes(unix.FAN_CREATE, []byte{99, 0, 8, 0, 1, 2, 3, 4}, infoFid(unix.FAN_EVENT_INFO_TYPE_DFID_NAME, testDir, []byte("h")))
	fidOnly := eventBytes(unix.FAN_DELETE_SELF, infoFid(unix.FAN_EVENT_INFO_TYPE_FID, testSub, nil))

	nofd := int32(-1)
	tests := []struct {
		name    string
		buf     []byte
		want    []event
		wantErr bool
	}{
		{"empty", nil, nil, false},
		{"create and self", concat(create, self), []event{
			{mask: unix.FAN_CREATE | unix.FAN_MODIFY, fd: nofd, hasDir: true, fsid: fsid, dir: testDir, name: "f"},
			{mask: unix.FAN_ATTRIB | unix.FAN_ONDIR, fd: nofd, hasDir: true, fsid: fsid, dir: testSub, name: ""},
		}, false},
		{"overflow", overflow, []event{{mask: unix.FAN_Q_OVERFLOW, fd: nofd}}, false},
		{"dfid then fid", withFid, []event{{mask: unix.FAN_MODIFY, fd: nofd, hasDir: true, fsid: fsid, dir: testDir, name: "g"}}, false},
		{"dfid without name", dfid, []event{{mask: unix.FAN_ATTRIB | unix.FAN_ONDIR, fd: nofd, hasDir: true, fsid: fsid, dir: testSub}}, false},
		{"unknown info skipped", unknown, []event{{mask: unix.FAN_CREATE, fd: nofd, hasDir: true, fsid: fsid, dir: testDir, name: "h"}}, false},
		{"fid only", fidOnly, []event{{mask: unix.FAN_DELETE_SELF, fd: nofd}}, false},
		{"short metadata", create[:20], nil, true},
		{"truncated event", create[:len(create)-4], nil, true},
		{"good then truncated", concat(overflow, create[:30]), []event{{mask: unix.FAN_Q_OVERFLOW, fd: nofd}}, true},
		{"bad version", func() []byte { b := concat(create); b[4] = 2; return b }(), nil, true},
		{"event length too small", func() []byte { b := concat(create); binary.NativeEndian.PutUint32(b, 8); return b }(), nil, true},
		{"metadata length past event", func() []byte { b := concat(overflow); binary.NativeEndian.PutUint16(b[6:], 40); return b }(), nil, true},
		{"info length zero", func() []byte { b := concat(create); binary.NativeEndian.PutUint16(b[26:], 0); return b }(), nil, true},
		{"info length past event", func() []byte { b := concat(create); binary.NativeEndian.PutUint16(b[26:], 200); return b }(), nil, true},
		{"handle bytes past record", func() []byte { b := concat(create); binary.NativeEndian.PutUint32(b[36:], 100); return b }(), nil, true},
		{"handle bytes zero", func() []byte { b := concat(create); binary.NativeEndian.PutUint32(b[36:], 0); return b }(), nil, true},
		{"name without NUL", eventBytes(unix.FAN_CREATE, func() []byte {
			b := infoFid(unix.FAN_EVENT_INFO_TYPE_DFID_NAME, testDir, []byte("abc"))
			b = b[:len(b)-1] // "abc" needs no padding: cut the NUL
			binary.NativeEndian.PutUint16(b[2:], uint16(len(b)))
			return b
		}()), nil, true},
		{"name with slash", eventBytes(unix.FAN_CREATE, infoFid(unix.FAN_EVENT_INFO_TYPE_DFID_NAME, testDir, []byte("a/b"))), nil, true},
		{"empty name", eventBytes(unix.FAN_CREATE, infoFid(unix.FAN_EVENT_INFO_TYPE_DFID_NAME, testDir, []byte(""))), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseEvents(tt.buf)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseEvents: err %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, errEvent) {
				t.Errorf("error %v does not wrap errEvent", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseEvents = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// FuzzParseEvents feeds arbitrary bytes to the fanotify buffer parser: it
// must never panic, and what it returns must be within the input.
func FuzzParseEvents(f *testing.F) {
	f.Add(concat(
		eventBytes(unix.FAN_CREATE, infoFid(unix.FAN_EVENT_INFO_TYPE_DFID_NAME, testDir, []byte("f"))),
		eventBytes(unix.FAN_Q_OVERFLOW)))
	f.Add(eventBytes(unix.FAN_MODIFY,
		infoFid(unix.FAN_EVENT_INFO_TYPE_DFID_NAME, testDir, []byte("g")),
		infoFid(unix.FAN_EVENT_INFO_TYPE_FID, testSub, nil)))
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, _ := parseEvents(b)
		if len(evs)*unix.FAN_EVENT_METADATA_LEN > len(b) {
			t.Fatalf("%d events from %d bytes", len(evs), len(b))
		}
		for _, ev := range evs {
			if ev.hasDir && (len(ev.dir.Bytes) == 0 || len(ev.dir.Bytes) > maxHandleBytes) {
				t.Fatalf("handle of %d bytes", len(ev.dir.Bytes))
			}
			if ev.name != "" && checkName(ev.name) != nil {
				t.Fatalf("invalid name %q", ev.name)
			}
		}
	})
}
