package master

import (
	"context"
	"fmt"
	"net"
	"strings"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/georep/georep/rpc"
)

// peerCredListener gives every connection it accepts on a UNIX socket the
// credentials of the process at the other end (SO_PEERCRED, taken at
// connect time) as its remote address, which gRPC hands the handlers as
// peer.Peer.Addr: the status service records who skipped a failure.
type peerCredListener struct{ net.Listener }

func (l peerCredListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return c, nil
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return c, nil
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil || cerr != nil {
		return c, nil // no credentials: the peer is named by its address
	}
	return &credConn{UnixConn: uc, peer: unixPeer{UID: cred.Uid, GID: cred.Gid, PID: cred.Pid}}, nil
}

// credConn is a UNIX connection whose remote address is its peer's
// credentials.
type credConn struct {
	*net.UnixConn
	peer unixPeer
}

func (c *credConn) RemoteAddr() net.Addr { return c.peer }

// unixPeer is the process at the other end of a UNIX socket.
type unixPeer struct {
	UID, GID uint32
	PID      int32
}

func (p unixPeer) Network() string { return "unix" }
func (p unixPeer) String() string  { return fmt.Sprintf("uid=%d gid=%d pid=%d", p.UID, p.GID, p.PID) }

// peerIdentity is who called the status service, as the skip log records
// it: the uid, gid and pid of a UNIX socket peer; the address of a TCP
// peer, and the identities of its verified client certificate if any.
type peerIdentity struct {
	Transport string   `json:"transport"` // "unix" or "tcp"
	UID       *uint32  `json:"uid,omitempty"`
	GID       *uint32  `json:"gid,omitempty"`
	PID       *int32   `json:"pid,omitempty"`
	Addr      string   `json:"addr,omitempty"`
	TLS       []string `json:"tls,omitempty"`
}

func (p peerIdentity) String() string {
	var parts []string
	if p.UID != nil {
		parts = append(parts, fmt.Sprintf("uid=%d gid=%d pid=%d", *p.UID, *p.GID, *p.PID))
	}
	if p.Addr != "" {
		parts = append(parts, p.Addr)
	}
	if len(p.TLS) > 0 {
		parts = append(parts, "tls="+strings.Join(p.TLS, ","))
	}
	if len(parts) == 0 {
		parts = append(parts, "unknown")
	}
	return p.Transport + " " + strings.Join(parts, " ")
}

// peerOf returns who made the call of ctx.
func peerOf(ctx context.Context) peerIdentity {
	id := peerIdentity{Transport: "unknown"}
	p, ok := peer.FromContext(ctx)
	if !ok {
		return id
	}
	switch a := p.Addr.(type) {
	case unixPeer:
		id.Transport = "unix"
		id.UID, id.GID, id.PID = &a.UID, &a.GID, &a.PID
	case nil:
	default:
		id.Transport = a.Network()
		if id.Transport != "unix" {
			id.Transport = "tcp"
		}
		id.Addr = a.String()
	}
	if info, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(info.State.VerifiedChains) > 0 && len(info.State.VerifiedChains[0]) > 0 {
		id.TLS = rpc.PeerIdentities(info.State.VerifiedChains[0][0])
	}
	return id
}
