package rawcodec

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	slavev1 "github.com/georep/georep/gen/georep/slave/v1"
)

const stdinField = protowire.Number(2) // RsyncRequest.stdin

func randBytes(n int) []byte {
	p := make([]byte, n)
	r := rand.New(rand.NewPCG(1, uint64(n)))
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

// split cuts p into buffers of at most size bytes, each from a pool (as
// gRPC's frames are), so that a view that outlives its frame would read
// reused memory.
func split(p []byte, size int, pool mem.BufferPool) mem.BufferSlice {
	var s mem.BufferSlice
	for len(p) > 0 {
		n := min(size, len(p))
		s = append(s, mem.Copy(p[:n], pool))
		p = p[n:]
	}
	return s
}

func TestRegisteredAsProto(t *testing.T) {
	if _, ok := encoding.GetCodecV2("proto").(Codec); !ok {
		t.Fatalf("the codec registered as proto is %T", encoding.GetCodecV2("proto"))
	}
}

// A Bytes marshals to exactly the protobuf encoding of the message with
// that field set, and protobuf's encoding of such a message unmarshals into
// a Bytes with the same data, however gRPC's frames cut it.
func TestBytesIsProtobuf(t *testing.T) {
	for _, size := range []int{0, 1, 127, 128, 16 << 10, 16<<10 + 1, 256 << 10, 1 << 20} {
		data := randBytes(size)
		want, err := proto.Marshal(&slavev1.RsyncRequest{Msg: &slavev1.RsyncRequest_Stdin{Stdin: data}})
		if err != nil {
			t.Fatal(err)
		}
		out, err := Codec{}.Marshal(&Bytes{Field: stdinField, Data: split(data, 4096, mem.DefaultBufferPool())})
		if err != nil {
			t.Fatal(err)
		}
		if got := out.Materialize(); !bytes.Equal(got, want) {
			t.Errorf("%d bytes: Marshal differs from protobuf's (%d bytes, want %d)", size, len(got), len(want))
		}
		out.Free()

		for _, frame := range []int{1, 3, 16 << 10} {
			pool := mem.NewTieredBufferPool(1<<10, 4<<10, 16<<10)
			in := split(want, frame, pool)
			var m slavev1.RsyncRequest
			b := Bytes{Field: stdinField, Other: &m}
			if err := (Codec{}).Unmarshal(in, &b); err != nil {
				t.Fatalf("%d bytes in frames of %d: %v", size, frame, err)
			}
			in.Free() // as gRPC does when Unmarshal returns
			// Frames freed and reused must not show through.
			split(bytes.Repeat([]byte{0xAA}, len(want)), frame, pool).Free()
			if !b.Raw {
				t.Fatalf("%d bytes in frames of %d: not raw (Other = %v)", size, frame, &m)
			}
			if got := b.Data.Materialize(); !bytes.Equal(got, data) {
				t.Errorf("%d bytes in frames of %d: Unmarshal gave %d bytes, not the data", size, frame, len(got))
			}
			b.Data.Free()
		}
	}
}

// Messages that are not exactly the Bytes' field go to Other, decoded as
// protobuf; other types are protobuf's.
func TestNotBytes(t *testing.T) {
	tests := []struct {
		name string
		msg  *slavev1.RsyncRequest
	}{
		{"start", &slavev1.RsyncRequest{Msg: &slavev1.RsyncRequest_Start{Start: &slavev1.RsyncStart{Args: []string{"rsync", "--server"}}}}},
		{"close stdin", &slavev1.RsyncRequest{Msg: &slavev1.RsyncRequest_CloseStdin{CloseStdin: true}}},
		{"empty", &slavev1.RsyncRequest{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wire, err := Codec{}.Marshal(tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			var m slavev1.RsyncRequest
			b := Bytes{Field: stdinField, Other: &m}
			if err := (Codec{}).Unmarshal(wire, &b); err != nil {
				t.Fatal(err)
			}
			if b.Raw || b.Data != nil {
				t.Fatalf("raw %v, %d data buffers", b.Raw, len(b.Data))
			}
			if !proto.Equal(&m, tt.msg) {
				t.Errorf("Other = %v, want %v", &m, tt.msg)
			}
			var direct slavev1.RsyncRequest
			if err := (Codec{}).Unmarshal(wire, &direct); err != nil || !proto.Equal(&direct, tt.msg) {
				t.Errorf("as a proto message: %v, %v", &direct, err)
			}
		})
	}
	// Stdin followed by another field (which a sender may append): not
	// raw, and protobuf's last-one-wins gives close_stdin.
	two := protowire.AppendBytes(protowire.AppendTag(nil, stdinField, protowire.BytesType), []byte("data"))
	two = protowire.AppendVarint(protowire.AppendTag(two, 3, protowire.VarintType), 1)
	var m slavev1.RsyncRequest
	b := Bytes{Field: stdinField, Other: &m}
	if err := (Codec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(two)}, &b); err != nil {
		t.Fatal(err)
	}
	if b.Raw || !m.GetCloseStdin() {
		t.Errorf("two fields: raw %v, Other %v", b.Raw, &m)
	}
	// Without Other, a message that is not the field is an error.
	if err := (Codec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(two)}, &Bytes{Field: stdinField}); err == nil {
		t.Error("no Other: no error")
	}
	if _, err := (Codec{}).Marshal(&Bytes{Field: 0}); err == nil {
		t.Error("field 0 marshalled")
	}
}

func TestPool(t *testing.T) {
	p := NewPool(1024)
	b := p.Get(100)
	if len(*b) != 100 || cap(*b) != 1024 {
		t.Fatalf("Get(100): len %d cap %d", len(*b), cap(*b))
	}
	p.Put(b)
	if big := p.Get(4096); len(*big) != 4096 {
		t.Fatalf("Get(4096): len %d", len(*big))
	}
	b = p.Get(1024)
	if len(*b) != 1024 {
		t.Fatalf("Get(1024) after Put: len %d", len(*b))
	}
}
