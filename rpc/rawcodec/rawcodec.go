// Package rawcodec is gRPC's protobuf codec that moves the data messages of
// a byte stream (the rsync tunnel's stdin) without copying them: a Bytes
// message, one field of type bytes, is sent from the caller's buffers as
// they are and received as views of the HTTP/2 frames gRPC read it into.
// Every other message goes through gRPC's own protobuf codec. The bytes on
// the wire are protobuf's either way, so a peer with the standard codec
// reads and writes them unchanged.
//
// Importing the package replaces the codec registered as "proto" in the
// process (grpc-go looks it up per call, for clients and servers alike),
// so that a Bytes works on any stream of any connection of the process.
// gsyncd has no counterpart (its data goes over ssh).
package rawcodec

import (
	"errors"
	"fmt"
	"sync"

	"google.golang.org/grpc/encoding"
	protoenc "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Name is the codec's name, the content-subtype of its calls: protobuf's.
const Name = protoenc.Name

// base is gRPC's protobuf codec, which registered itself before this
// package's init (it is imported).
var base = encoding.GetCodecV2(protoenc.Name)

func init() {
	if base == nil {
		panic("rawcodec: gRPC's protobuf codec is not registered")
	}
	encoding.RegisterCodecV2(Codec{})
}

// Bytes is a message whose only field, Field, has type bytes and holds Data.
//
// Sending (SendMsg(&Bytes{...})): the codec passes Data's buffers to gRPC
// with their references, which frees them once written; the sender must
// not use or free them after SendMsg.
//
// Receiving (RecvMsg(&Bytes{Field: f, Other: msg})): a message that is
// exactly field f of type bytes sets Raw and leaves its bytes in Data,
// views of gRPC's buffers that the receiver must Free; any other message
// is decoded into Other, a protobuf message of the stream's type, and Raw
// is false.
type Bytes struct {
	Field protowire.Number
	Data  mem.BufferSlice
	Other proto.Message
	Raw   bool
}

// Codec is the codec; its zero value is ready.
type Codec struct{}

// Name is protobuf's.
func (Codec) Name() string { return Name }

// Marshal encodes a *Bytes as its field's tag and length, then its data
// (not copied); anything else as protobuf.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(*Bytes)
	if !ok {
		return base.Marshal(v)
	}
	if b.Field < protowire.MinValidNumber || b.Field > protowire.MaxValidNumber {
		return nil, fmt.Errorf("rawcodec: field number %d out of range", b.Field)
	}
	hdr := protowire.AppendTag(make([]byte, 0, 2*binaryMaxVarint), b.Field, protowire.BytesType)
	hdr = protowire.AppendVarint(hdr, uint64(b.Data.Len()))
	out := make(mem.BufferSlice, 0, 1+len(b.Data))
	out = append(append(out, mem.SliceBuffer(hdr)), b.Data...)
	b.Data = nil // gRPC's now
	return out, nil
}

// binaryMaxVarint is the longest varint (10 bytes for 64 bits).
const binaryMaxVarint = 10

// Unmarshal decodes into a *Bytes (see Bytes) or, for anything else, as
// protobuf.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	b, ok := v.(*Bytes)
	if !ok {
		return base.Unmarshal(data, v)
	}
	b.Data, b.Raw = nil, false
	if off, ok := payloadOffset(data, b.Field); ok {
		b.Data, b.Raw = sliceFrom(data, off), true
		return nil
	}
	if b.Other == nil {
		return errors.New("rawcodec: a message that is not bytes, and no message to decode it into")
	}
	return base.Unmarshal(data, b.Other)
}

// payloadOffset returns where the bytes of field begin when data is
// exactly that field, of type bytes: its tag, its length and as many bytes
// as the length says, nothing else.
func payloadOffset(data mem.BufferSlice, field protowire.Number) (int, bool) {
	var head [2 * binaryMaxVarint]byte
	n := data.CopyTo(head[:])
	num, typ, tl := protowire.ConsumeTag(head[:n])
	if tl < 0 || num != field || typ != protowire.BytesType {
		return 0, false
	}
	length, ll := protowire.ConsumeVarint(head[tl:n])
	if ll < 0 {
		return 0, false
	}
	off := tl + ll
	if uint64(data.Len()-off) != length {
		return 0, false
	}
	return off, true
}

// sliceFrom returns data from byte off on, as new references to its
// buffers (they outlive data's, which gRPC frees).
func sliceFrom(data mem.BufferSlice, off int) mem.BufferSlice {
	out := make(mem.BufferSlice, 0, len(data))
	for _, buf := range data {
		l := buf.Len()
		if off >= l {
			off -= l
			continue
		}
		out = append(out, buf.Slice(off, l))
		off = 0
	}
	return out
}

// Pool is a mem.BufferPool of buffers of one size, for a sender that reads
// a stream into buffers it then sends as Bytes: gRPC puts each back once
// written. Buffers come back as they were, not cleared; a request larger
// than the size is allocated and not kept.
type Pool struct {
	size int
	p    sync.Pool
}

// NewPool returns a pool of buffers of size bytes.
func NewPool(size int) *Pool {
	return &Pool{size: size}
}

// Get returns a buffer of length n.
func (p *Pool) Get(n int) *[]byte {
	if n > p.size {
		b := make([]byte, n)
		return &b
	}
	b, ok := p.p.Get().(*[]byte)
	if !ok {
		s := make([]byte, p.size)
		b = &s
	}
	*b = (*b)[:n]
	return b
}

// Put keeps b for a later Get, unless it is not of the pool's size.
func (p *Pool) Put(b *[]byte) {
	if cap(*b) != p.size {
		return
	}
	p.p.Put(b)
}
