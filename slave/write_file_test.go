package slave

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	slavev1 "github.com/georep/georep/gen/georep/slave/v1"
	"github.com/georep/georep/rpc/gfid"
	"github.com/georep/georep/rpc/wire"
)

func wfStart(g string, size uint64) *slavev1.WriteFileRequest {
	return &slavev1.WriteFileRequest{Msg: &slavev1.WriteFileRequest_Start{Start: &slavev1.WriteFileStart{Gfid: g, Size: size}}}
}

func wfData(b []byte) *slavev1.WriteFileRequest {
	return &slavev1.WriteFileRequest{Msg: &slavev1.WriteFileRequest_Data{Data: b}}
}

func wfEnd(e *slavev1.WriteFileEnd) *slavev1.WriteFileRequest {
	return &slavev1.WriteFileRequest{Msg: &slavev1.WriteFileRequest_End{End: e}}
}

// writeFileStream sends msgs on one WriteFile stream and returns its
// status (a send the slave cut short: the status it ended the call with).
func writeFileStream(ctx context.Context, c slavev1.SlaveServiceClient, msgs ...*slavev1.WriteFileRequest) error {
	stream, err := c.WriteFile(ctx)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if err := stream.Send(m); err != nil {
			break // the slave ended the call: CloseAndRecv says why
		}
	}
	_, err = stream.CloseAndRecv()
	return err
}

func randData(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// waitIdle waits until no WriteFile stream holds g: its handler returned,
// after emptying the file when it did not commit.
func waitIdle(t *testing.T, svc *service, g string) {
	t.Helper()
	id := gfid.MustParse(g)
	for i := 0; ; i++ {
		svc.writes.mu.Lock()
		busy := svc.writes.gfid[id]
		svc.writes.mu.Unlock()
		if !busy {
			return
		}
		if i > 6000 {
			t.Fatalf("a WriteFile stream still holds %s after a minute", g)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWriteFileWritesNewFile(t *testing.T) {
	fx := newFixture(t, nil)
	uid, gid := uint32(os.Geteuid()), uint32(os.Getegid())
	fx.mustEntries(t, &slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_LINK, Gfid: fx.F, Pargfid: fx.D, Name: []byte("f2")})
	data := randData(3<<20 + 17)
	mtime := &slavev1.Timespec{Sec: 1_500_000_000, Nsec: 9}
	msgs := []*slavev1.WriteFileRequest{wfStart(fx.F, uint64(len(data)))}
	for b := data; len(b) > 0; b = b[min(len(b), 1<<20):] {
		msgs = append(msgs, wfData(b[:min(len(b), 1<<20)]))
	}
	msgs = append(msgs, wfEnd(&slavev1.WriteFileEnd{Mode: 0o4750, Uid: uid, Gid: gid, Mtime: mtime}))
	if err := writeFileStream(fx.ctx(t), fx.client, msgs...); err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	for _, name := range []string{"f", "d/f2"} {
		p := filepath.Join(fx.root, name)
		if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, data) {
			t.Errorf("%s: %d bytes (%v), want the %d sent", name, len(b), err, len(data))
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode&0o7777 != 0o4750 || st.Mtim.Sec != mtime.Sec || st.Mtim.Nsec != int64(mtime.Nsec) {
			t.Errorf("%s: mode %#o mtime %v, want 04750 %v", name, st.Mode&0o7777, st.Mtim, mtime)
		}
	}
	// The file holds data now: a second stream is refused, the data kept.
	err := writeFileStream(fx.ctx(t), fx.client, wfStart(fx.F, 1), wfData([]byte("x")), wfEnd(&slavev1.WriteFileEnd{Mtime: mtime}))
	if status.Code(err) != codes.AlreadyExists || !errors.Is(wire.FromStatus(err), syscall.EEXIST) {
		t.Errorf("stream to a file with data: %v, want AlreadyExists (EEXIST)", err)
	}
	if b, _ := os.ReadFile(filepath.Join(fx.root, "f")); !bytes.Equal(b, data) {
		t.Errorf("refused stream changed the file: %d bytes", len(b))
	}
}

// An access ACL sent is set, and an empty one removes what the file had.
func TestWriteFileACL(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("an ACL naming another user needs root")
	}
	fx := newFixture(t, nil)
	// system.posix_acl_access, version 2: user::rw- user:1234:r-- group::r-- mask::r-- other::---
	acl := []byte{2, 0, 0, 0,
		1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff,
		2, 0, 4, 0, 0xd2, 0x04, 0, 0,
		4, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
		0x10, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
		0x20, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}
	mtime := &slavev1.Timespec{Sec: 1_500_000_000}
	for _, tc := range []struct {
		name string
		g    string
		acl  []byte
	}{{"set", fx.F, acl}, {"removed", fx.G, nil}} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(fx.root, "f")
			if tc.g == fx.G {
				p = filepath.Join(fx.root, "d", "g")
				if err := unix.Setxattr(p, "system.posix_acl_access", acl, 0); err != nil {
					t.Fatal(err)
				}
			}
			err := writeFileStream(fx.ctx(t), fx.client, wfStart(tc.g, 2), wfData([]byte("ab")),
				wfEnd(&slavev1.WriteFileEnd{Mode: 0o640, Mtime: mtime, SetAcl: true, Acl: tc.acl}))
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 256)
			n, err := unix.Getxattr(p, "system.posix_acl_access", buf)
			switch {
			case tc.acl == nil && !errors.Is(err, unix.ENODATA):
				t.Errorf("ACL left: %x (%v)", buf[:max(n, 0)], err)
			case tc.acl != nil && (err != nil || !bytes.Equal(buf[:n], tc.acl)):
				t.Errorf("ACL %x (%v), want %x", buf[:max(n, 0)], err, tc.acl)
			}
			var st unix.Stat_t
			if err := unix.Stat(p, &st); err != nil || st.Mode&0o7777 != 0o640 {
				t.Errorf("mode %#o (%v), want 0640", st.Mode&0o7777, err)
			}
		})
	}
}

// What a hostile or broken master sends is refused, and leaves the file
// as it was: empty, whatever was written of it before.
func TestWriteFileRefuses(t *testing.T) {
	fx := newFixture(t, nil)
	mtime := &slavev1.Timespec{Sec: 1_500_000_000}
	end := wfEnd(&slavev1.WriteFileEnd{Mode: 0o644, Mtime: mtime})
	for _, tc := range []struct {
		name string
		msgs []*slavev1.WriteFileRequest
		code codes.Code
	}{
		{"no Start", []*slavev1.WriteFileRequest{wfData([]byte("x"))}, codes.InvalidArgument},
		{"nothing", nil, codes.InvalidArgument},
		{"gfid with a slash", []*slavev1.WriteFileRequest{wfStart("../../outside/sentinel", 1), wfData([]byte("x")), end}, codes.InvalidArgument},
		{"gfid dot dot", []*slavev1.WriteFileRequest{wfStart("..", 1), end}, codes.InvalidArgument},
		{"gfid with NUL", []*slavev1.WriteFileRequest{wfStart(fx.F[:10]+"\x00"+fx.F[11:], 1), end}, codes.InvalidArgument},
		{"gfid with a path after it", []*slavev1.WriteFileRequest{wfStart(fx.F+"/x", 1), end}, codes.InvalidArgument},
		{"zero gfid", []*slavev1.WriteFileRequest{wfStart(zeroG, 1), end}, codes.InvalidArgument},
		{"root", []*slavev1.WriteFileRequest{wfStart(rootG, 1), end}, codes.InvalidArgument},
		{"park", []*slavev1.WriteFileRequest{wfStart(parkG, 1), end}, codes.InvalidArgument},
		{"a directory", []*slavev1.WriteFileRequest{wfStart(fx.D, 1), wfData([]byte("x")), end}, codes.NotFound},
		{"unknown gfid", []*slavev1.WriteFileRequest{wfStart(gfid.New().String(), 1), wfData([]byte("x")), end}, codes.NotFound},
		{"more data than announced", []*slavev1.WriteFileRequest{wfStart(fx.F, 4), wfData([]byte("abc")), wfData([]byte("de")), end}, codes.Unknown},
		{"oversized first message", []*slavev1.WriteFileRequest{wfStart(fx.F, 1), wfData(randData(1 << 20)), end}, codes.Unknown},
		{"less data than announced", []*slavev1.WriteFileRequest{wfStart(fx.F, 4), wfData([]byte("abc")), end}, codes.InvalidArgument},
		{"no End", []*slavev1.WriteFileRequest{wfStart(fx.F, 3), wfData([]byte("abc"))}, codes.Aborted},
		{"End without mtime", []*slavev1.WriteFileRequest{wfStart(fx.F, 3), wfData([]byte("abc")), wfEnd(&slavev1.WriteFileEnd{Mode: 0o644})}, codes.InvalidArgument},
		{"second Start", []*slavev1.WriteFileRequest{wfStart(fx.F, 3), wfData([]byte("abc")), wfStart(fx.F, 3), end}, codes.InvalidArgument},
		{"empty message", []*slavev1.WriteFileRequest{wfStart(fx.F, 3), wfData([]byte("abc")), {}, end}, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := writeFileStream(fx.ctx(t), fx.client, tc.msgs...)
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.code != codes.Unknown && status.Code(err) != tc.code {
				t.Errorf("%v, want %v", err, tc.code)
			}
			waitIdle(t, fx.svc, fx.F)
			for _, name := range []string{"f", "d/g"} {
				if fi, err := os.Stat(filepath.Join(fx.root, name)); err != nil || fi.Size() != 0 {
					t.Errorf("%s after a refused stream: %v", name, fi.Size())
				}
			}
			if b, err := os.ReadFile(filepath.Join(fx.dir, "outside", "sentinel")); err != nil || string(b) != "keep" {
				t.Errorf("outside the replica: %q %v", b, err)
			}
		})
	}
	// Too much data is EFBIG.
	err := writeFileStream(fx.ctx(t), fx.client, wfStart(fx.F, 4), wfData([]byte("abcde")), end)
	if !errors.Is(wire.FromStatus(err), syscall.EFBIG) {
		t.Errorf("more data than announced: %v, want EFBIG", err)
	}
	// Without the session nothing is written.
	err = writeFileStream(t.Context(), fx.client, wfStart(fx.F, 1), wfData([]byte("x")), end)
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("without a session: %v, want FailedPrecondition", err)
	}
}

// A stream cut mid-file (the master cancelled, the connection gone) leaves
// the file empty, as it was, and a second stream to a file being written
// is refused.
func TestWriteFileCutLeavesNothing(t *testing.T) {
	fx := newFixture(t, nil)
	ctx, cancel := context.WithCancel(fx.ctx(t))
	defer cancel()
	stream, err := fx.client.WriteFile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	half := randData(1 << 20)
	if err := stream.Send(wfStart(fx.F, 2<<20)); err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(wfData(half)); err != nil {
		t.Fatal(err)
	}
	// Wait until the first half is on disk.
	p := filepath.Join(fx.root, "f")
	for i := 0; ; i++ {
		if fi, err := os.Stat(p); err == nil && fi.Size() == int64(len(half)) {
			break
		}
		if i > 6000 {
			t.Fatal("the first half never reached the file")
		}
		time.Sleep(10 * time.Millisecond)
	}
	err = writeFileStream(fx.ctx(t), fx.client, wfStart(fx.F, 1), wfData([]byte("x")), wfEnd(&slavev1.WriteFileEnd{Mtime: &slavev1.Timespec{Sec: 1}}))
	if status.Code(err) != codes.Aborted {
		t.Errorf("second stream to a file being written: %v, want Aborted", err)
	}
	cancel()
	waitIdle(t, fx.svc, fx.F)
	if fi, err := os.Stat(p); err != nil || fi.Size() != 0 {
		t.Errorf("after the cut: %d bytes (%v), want an empty file", fi.Size(), err)
	}
	// It can be written whole afterwards.
	err = writeFileStream(fx.ctx(t), fx.client, wfStart(fx.F, 3), wfData([]byte("abc")), wfEnd(&slavev1.WriteFileEnd{Mode: 0o600, Mtime: &slavev1.Timespec{Sec: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "abc" {
		t.Errorf("after a full stream: %q", b)
	}
}

// The plain replica advertises WriteFile (the master streams new files
// only to a slave that does).
func TestWriteFileCapability(t *testing.T) {
	fx := newFixture(t, nil)
	resp, err := fx.client.Handshake(t.Context(), &slavev1.HandshakeRequest{ProtocolVersion: ProtocolVersion, MasterVolumeId: volA, MasterNode: "test:1"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(resp.GetCapabilities(), "write-file") {
		t.Errorf("capabilities %v lack write-file", resp.GetCapabilities())
	}
}
