package rpc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// TLSFiles names the PEM files of one end of a mutually authenticated TLS
// connection: its own certificate and key, and the CA that signs the peer.
type TLSFiles struct {
	Cert string
	Key  string
	CA   string
	// ServerName overrides the name checked in the server's certificate
	// (client side only).
	ServerName string
}

// ErrNoTLS is returned when neither TLS files nor an explicit --insecure are
// given: georep never falls back to plaintext silently.
var ErrNoTLS = errors.New("no TLS certificate configured (tls-cert, tls-key, tls-ca); pass --insecure to run without TLS")

// load reads the files; what it loaded is shown in certs (nil: nowhere).
func (f TLSFiles) load(certs *CertMetrics) (tls.Certificate, *x509.CertPool, error) {
	if f.Cert == "" || f.Key == "" || f.CA == "" {
		return tls.Certificate{}, nil, ErrNoTLS
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("load TLS key pair %s, %s: %w", f.Cert, f.Key, err)
	}
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("read TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return tls.Certificate{}, nil, fmt.Errorf("TLS CA %s: no PEM certificate found", f.CA)
	}
	leaf := cert.Leaf
	if leaf == nil && len(cert.Certificate) > 0 {
		leaf, _ = x509.ParseCertificate(cert.Certificate[0]) // LoadX509KeyPair parsed it already
	}
	certs.loaded(leaf, pemCertificates(caPEM))
	return cert, pool, nil
}

// pemCertificates parses the certificates of a PEM bundle, skipping
// blocks that are not certificates or do not parse (as
// x509.CertPool.AppendCertsFromPEM does).
func pemCertificates(data []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for len(data) > 0 {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" || len(b.Headers) != 0 {
			continue
		}
		if c, err := x509.ParseCertificate(b.Bytes); err == nil {
			out = append(out, c)
		}
	}
	return out
}

func serverCredentials(cfg ServerConfig) (credentials.TransportCredentials, error) {
	if cfg.Insecure {
		return insecure.NewCredentials(), nil
	}
	cert, pool, err := cfg.TLS.load(cfg.Certs)
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(&tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}), nil
}

func clientCredentials(files TLSFiles, insecureOK bool, certs *CertMetrics) (credentials.TransportCredentials, error) {
	if insecureOK {
		return insecure.NewCredentials(), nil
	}
	cert, pool, err := files.load(certs)
	if err != nil {
		return nil, err
	}
	return coalescedCredentials{credentials.NewTLS(&tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   files.ServerName,
	})}, nil
}

// PeerIdentities returns the identities of a verified client certificate
// that an allowlist (the slave's allowed-masters) may name: its Subject
// Common Name, its DNS SANs and its URI SANs, in that order, without
// duplicates.
func PeerIdentities(cert *x509.Certificate) []string {
	var ids []string
	add := func(s string) {
		if s != "" && !slices.Contains(ids, s) {
			ids = append(ids, s)
		}
	}
	add(cert.Subject.CommonName)
	for _, n := range cert.DNSNames {
		add(n)
	}
	for _, u := range cert.URIs {
		add(u.String())
	}
	return ids
}

// peerCert returns the verified leaf certificate of the client of ctx, nil
// on a plaintext connection or one without a verified chain.
func peerCert(ctx context.Context) *x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return nil
	}
	return info.State.VerifiedChains[0][0]
}

// allowlist admits the clients whose verified certificate carries one of its
// identities (see PeerIdentities). DNS names compare case-insensitively,
// everything else exactly.
type allowlist struct {
	ids []string
	key string // the configuration key that holds ids, for the refusal
}

func (a allowlist) check(ctx context.Context) error {
	cert := peerCert(ctx)
	if cert == nil {
		// NewServer refuses an allowlist without TLS; a TLS connection
		// always has a verified chain (RequireAndVerifyClientCert).
		return status.Error(codes.Unauthenticated, "no verified client certificate")
	}
	ids := PeerIdentities(cert)
	for _, want := range a.ids {
		for _, id := range ids {
			if id == want || strings.EqualFold(id, want) && !strings.Contains(want, "://") {
				return nil
			}
		}
	}
	return status.Errorf(codes.PermissionDenied, "client certificate %s (serial %s) is not allowed: add one of its identities to %s",
		describeIdentities(ids), cert.SerialNumber.Text(16), a.key)
}

func describeIdentities(ids []string) string {
	if len(ids) == 0 {
		return "without a name"
	}
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = strconv.Quote(id)
	}
	return strings.Join(q, ", ")
}

func (a allowlist) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := a.check(ctx); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (a allowlist) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := a.check(ss.Context()); err != nil {
		return err
	}
	return handler(srv, ss)
}
