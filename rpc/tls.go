package rpc

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
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

func (f TLSFiles) load() (tls.Certificate, *x509.CertPool, error) {
	if f.Cert == "" || f.Key == "" || f.CA == "" {
		return tls.Certificate{}, nil, ErrNoTLS
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("load TLS key pair %s, %s: %w", f.Cert, f.Key, err)
	}
	pem, err := os.ReadFile(f.CA)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("read TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return tls.Certificate{}, nil, fmt.Errorf("TLS CA %s: no PEM certificate found", f.CA)
	}
	return cert, pool, nil
}

func serverCredentials(cfg ServerConfig) (credentials.TransportCredentials, error) {
	if cfg.Insecure {
		return insecure.NewCredentials(), nil
	}
	cert, pool, err := cfg.TLS.load()
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

func clientCredentials(files TLSFiles, insecureOK bool) (credentials.TransportCredentials, error) {
	if insecureOK {
		return insecure.NewCredentials(), nil
	}
	cert, pool, err := files.load()
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(&tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   files.ServerName,
	}), nil
}
