package slave

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"

	slavev1 "github.com/georep/georep/gen/georep/slave/v1"
	"github.com/georep/georep/rpc/gfid"
)

func applyEntries(es ...*slavev1.Entry) *slavev1.ApplyRequest {
	return &slavev1.ApplyRequest{Batch: &slavev1.ApplyRequest_Entries{Entries: &slavev1.EntryOpsRequest{Entries: es}}}
}

func applyMetas(ms ...*slavev1.Meta) *slavev1.ApplyRequest {
	return &slavev1.ApplyRequest{Batch: &slavev1.ApplyRequest_Metas{Metas: &slavev1.MetaOpsRequest{Metas: ms}}}
}

// TestApplyStream sends batches that depend on one another (a directory,
// then what is made in it, then a rename out of it, then the metadata)
// without waiting for the answers: each is applied after the ones before
// it, and answered in order, with its own failures indexed within it.
func TestApplyStream(t *testing.T) {
	fx := newFixture(t, nil)
	dir, file, bad := gfid.New().String(), gfid.New().String(), gfid.New().String()
	stream, err := fx.client.Apply(fx.ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	reqs := []*slavev1.ApplyRequest{
		applyEntries(&slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_MKDIR, Gfid: dir, Pargfid: rootG, Name: []byte("new"), Mode: unix.S_IFDIR | 0o755}),
		applyEntries(
			&slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_CREATE, Gfid: bad, Pargfid: gfid.New().String(), Name: []byte("orphan"), Mode: unix.S_IFREG | 0o644},
			&slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_CREATE, Gfid: file, Pargfid: dir, Name: []byte("f"), Mode: unix.S_IFREG | 0o644},
		),
		applyEntries(&slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_RENAME, Gfid: file, Pargfid: dir, Name: []byte("f"), NewPargfid: fx.D, NewName: []byte("moved")}),
		applyMetas(
			&slavev1.Meta{Gfid: dir, SetMode: true, Mode: 0o700},
			&slavev1.Meta{Gfid: bad, SetMode: true, Mode: 0o600},
		),
	}
	for _, r := range reqs {
		if err := stream.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	want := [][]uint32{nil, {0}, nil, {1}} // the orphan's parent is unknown; so is its gfid for the meta
	for i, w := range want {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		var got []uint32
		for _, f := range resp.GetFailures() {
			got = append(got, f.GetIndex())
			if syscall.Errno(f.GetErrno()) != syscall.ENOENT {
				t.Errorf("answer %d: failure %v, want ENOENT", i, f)
			}
		}
		if !slices.Equal(got, w) {
			t.Errorf("answer %d: failures at %v, want %v", i, got, w)
		}
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Errorf("after the last answer: %v, want the end of the stream", err)
	}
	if _, err := os.Stat(filepath.Join(fx.root, "d", "moved")); err != nil {
		t.Errorf("the file created in the new directory and moved out of it: %v", err)
	}
	if st, err := os.Stat(filepath.Join(fx.root, "new")); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("the new directory: %v %v, want mode 0700", st, err)
	}
}

// TestApplyStreamRefusals: a batch over the limit, or one after the session
// was taken over, ends the stream with the status its unary call would get;
// what was answered before stays applied, nothing after is.
func TestApplyStreamRefusals(t *testing.T) {
	mkdir := func(name string) *slavev1.Entry {
		return &slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_MKDIR, Gfid: gfid.New().String(), Pargfid: rootG, Name: []byte(name), Mode: unix.S_IFDIR | 0o755}
	}
	t.Run("batch limit", func(t *testing.T) {
		fx := newFixture(t, func(c *Config) { c.MaxBatch = 4 })
		stream, err := fx.client.Apply(fx.ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		stream.Send(applyEntries(mkdir("a"), mkdir("b")))
		stream.Send(applyEntries(mkdir("c"), mkdir("x1"), mkdir("x2"), mkdir("x3"), mkdir("x4")))
		stream.Send(applyEntries(mkdir("y")))
		stream.CloseSend()
		if _, err := stream.Recv(); err != nil {
			t.Fatalf("the first batch: %v", err)
		}
		_, err = stream.Recv()
		assertStatus(t, err, codes.InvalidArgument, "batch of 5 entries exceeds the limit of 4")
		for name, want := range map[string]bool{"a": true, "b": true, "c": false, "y": false} {
			if _, err := os.Stat(filepath.Join(fx.root, name)); (err == nil) != want {
				t.Errorf("%s: %v, want there %v", name, err, want)
			}
		}
	})
	t.Run("session taken over", func(t *testing.T) {
		fx := newFixture(t, nil)
		stream, err := fx.client.Apply(fx.ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		stream.Send(applyEntries(mkdir("a")))
		if _, err := stream.Recv(); err != nil {
			t.Fatal(err)
		}
		fx.handshake(t, volA) // a restarted master of the same volume takes over
		stream.Send(applyEntries(mkdir("b")))
		_, err = stream.Recv()
		assertStatus(t, err, codes.FailedPrecondition, "is not the current session")
		if _, err := os.Stat(filepath.Join(fx.root, "b")); err == nil {
			t.Error("a batch sent on the stream of a session taken over was applied")
		}
	})
	t.Run("empty batch", func(t *testing.T) {
		fx := newFixture(t, nil)
		stream, err := fx.client.Apply(fx.ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		stream.Send(&slavev1.ApplyRequest{})
		_, err = stream.Recv()
		assertStatus(t, err, codes.InvalidArgument, "neither entries nor metas")
	})
}

// TestWalk lists the fixture's tree in one stream: depth first, each
// directory after its parent, and a directory copied with its gfid (even
// into itself) once.
func TestWalk(t *testing.T) {
	fx := newFixture(t, nil)
	walk := func(from string) []string {
		t.Helper()
		stream, err := fx.client.Walk(t.Context(), &slavev1.WalkRequest{Gfid: from})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for {
			r, err := stream.Recv()
			if err == io.EOF {
				return got
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range r.GetEntries() {
				names = append(names, string(e.GetName()))
			}
			got = append(got, fmt.Sprintf("%s[%s]%d", r.GetGfid(), strings.Join(names, ","), r.GetErrno()))
		}
	}
	want := []string{rootG + "[d,f]0", fx.D + "[g,sub]0", fx.Sub + "[]0"}
	if got := walk(rootG); !slices.Equal(got, want) {
		t.Errorf("Walk(root) = %q, want %q", got, want)
	}
	if got := walk(fx.D); !slices.Equal(got, want[1:]) {
		t.Errorf("Walk(d) = %q, want %q", got, want[1:])
	}
	// d copied into d/sub with its gfid, behind georep's back: the walk
	// ends all the same.
	cp := filepath.Join(fx.root, "d", "sub", "copy")
	if err := os.Mkdir(cp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(cp, "trusted.georep.gfid", func() []byte { g := gfid.MustParse(fx.D); return g[:] }(), 0); err != nil {
		t.Skipf("setting the gfid xattr: %v", err)
	}
	want[2] = fx.Sub + "[copy]0"
	if got := walk(rootG); !slices.Equal(got, want) {
		t.Errorf("Walk(root) with a copy of d in d/sub = %q, want %q", got, want)
	}
	// An unknown gfid is answered with ENOENT.
	unknown := gfid.New().String()
	if got := walk(unknown); !slices.Equal(got, []string{unknown + "[]2"}) {
		t.Errorf("Walk(unknown) = %q", got)
	}
	_, err := fx.client.Walk(t.Context(), &slavev1.WalkRequest{Gfid: "nope"})
	if err == nil {
		stream, _ := fx.client.Walk(t.Context(), &slavev1.WalkRequest{Gfid: "nope"})
		_, err = stream.Recv()
	}
	assertStatus(t, err, codes.InvalidArgument, "gfid")
}

// TestHandshakeParkEmpty: the handshake says whether the park holds
// anything, and that the slave has the Apply stream and Walk.
func TestHandshakeParkEmpty(t *testing.T) {
	fx := newFixture(t, nil)
	resp, err := fx.client.Handshake(t.Context(), &slavev1.HandshakeRequest{ProtocolVersion: ProtocolVersion, MasterVolumeId: volA})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.GetParkEmpty() {
		t.Error("a fresh replica's handshake does not say that the park is empty")
	}
	for _, c := range []string{"apply", "walk"} {
		if !slices.Contains(resp.GetCapabilities(), c) {
			t.Errorf("capabilities %q lack %q", resp.GetCapabilities(), c)
		}
	}
	fx.session = resp.GetSessionId()
	fx.mustEntries(t, &slavev1.Entry{Op: slavev1.EntryOp_ENTRY_OP_RENAME, Gfid: fx.F, Pargfid: rootG, Name: []byte("f"), NewPargfid: parkG, NewName: []byte(fx.F)})
	resp, err = fx.client.Handshake(t.Context(), &slavev1.HandshakeRequest{ProtocolVersion: ProtocolVersion, MasterVolumeId: volA})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetParkEmpty() {
		t.Error("the handshake says the park is empty while it holds a gfid")
	}
}
