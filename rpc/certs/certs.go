// Package certs writes the PEM files of georep's mutual TLS with the Go
// standard library only: a CA, a slave's server certificate and a master's
// client certificate. It is what `georep-slave certs` (and the tests'
// harness) run; deploy/tls/make-certs.sh does the same with openssl. gsyncd
// has no counterpart: it relies on ssh keys.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/georep/georep/rpc/atomicfile"
)

// The files Generate writes into its directory.
const (
	CAFile         = "ca.crt"
	CAKeyFile      = "ca.key"
	SlaveCertFile  = "slave.crt"
	SlaveKeyFile   = "slave.key"
	MasterCertFile = "master.crt"
	MasterKeyFile  = "master.key"
	// With Options.StatusNames: the status service's server certificate
	// (a master's status-listen) and georepctl's client certificate.
	StatusCertFile = "status.crt"
	StatusKeyFile  = "status.key"
	CtlCertFile    = "ctl.crt"
	CtlKeyFile     = "ctl.key"
)

// DefaultValidity is how long the slave and master certificates are valid
// (the CA twice as long), as deploy/tls/make-certs.sh.
const DefaultValidity = 825 * 24 * time.Hour

// Options says what Generate writes.
type Options struct {
	// SlaveNames are the DNS names and IP addresses the slave's certificate
	// is valid for: the host part of the master's `slave` key. The first is
	// also its Common Name. At least one is required.
	SlaveNames []string
	// MasterName is the master's identity: the Common Name of its client
	// certificate, and also a DNS SAN when it is a DNS name or a URI SAN when
	// it is a URI (spiffe://…). The slave's allowed-masters lists such
	// names. Default "georep-master".
	MasterName string
	// StatusNames, when set, are the DNS names and IP addresses georepctl
	// dials the masters' status services by (their status-listen hosts):
	// Generate then also writes StatusCertFile (server) and CtlCertFile
	// (client, named CtlName) for mutual TLS between them.
	StatusNames []string
	// CtlName is georepctl's identity (default "georepctl"), for the
	// masters' status-allowed-clients.
	CtlName string
	// Validity of the slave and master certificates; 0 is DefaultValidity.
	Validity time.Duration
	// Now is the issue time; zero is time.Now().
	Now time.Time
}

// Generate writes CAFile and CAKeyFile (reusing them when dir already holds
// both, so that more masters or a renewed slave certificate share one CA),
// SlaveCertFile and SlaveKeyFile, MasterCertFile and MasterKeyFile into dir,
// creating it (mode 0700) when missing. Keys are written with mode 0600,
// certificates 0644; every file is written to a temporary name and renamed,
// so a failed run leaves no half-written file. Keys are ECDSA P-256.
func Generate(dir string, opts Options) error {
	if len(opts.SlaveNames) == 0 {
		return errors.New("certs: at least one slave name (DNS name or IP address) is required")
	}
	for _, n := range opts.SlaveNames {
		if err := checkSlaveName(n); err != nil {
			return err
		}
	}
	if opts.MasterName == "" {
		opts.MasterName = "georep-master"
	}
	if err := checkMasterName(opts.MasterName); err != nil {
		return err
	}
	for _, n := range opts.StatusNames {
		if err := checkSlaveName(n); err != nil {
			return err
		}
	}
	if opts.CtlName == "" {
		opts.CtlName = "georepctl"
	}
	if err := checkMasterName(opts.CtlName); err != nil {
		return err
	}
	if opts.Validity == 0 {
		opts.Validity = DefaultValidity
	}
	if opts.Validity < 0 {
		return fmt.Errorf("certs: validity %s is negative", opts.Validity)
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	ca, caKey, err := loadCA(dir)
	if err != nil {
		return err
	}
	if ca == nil {
		caKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return fmt.Errorf("certs: CA key: %w", err)
		}
		tmpl := &x509.Certificate{
			Subject: pkix.Name{CommonName: "georep CA"}, IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		}
		der, err := sign(tmpl, nil, caKey, caKey, opts.Now, 2*opts.Validity)
		if err != nil {
			return fmt.Errorf("certs: CA: %w", err)
		}
		if ca, err = x509.ParseCertificate(der); err != nil {
			return fmt.Errorf("certs: CA: %w", err)
		}
		if err := writeKey(dir, CAKeyFile, caKey); err != nil {
			return err
		}
		if err := writePEM(dir, CAFile, "CERTIFICATE", der, 0o644); err != nil {
			return err
		}
	}
	if err := leaf(dir, "slave", serverTemplate(opts.SlaveNames), ca, caKey, opts); err != nil {
		return err
	}
	if err := leaf(dir, "master", clientTemplate(opts.MasterName), ca, caKey, opts); err != nil {
		return err
	}
	if len(opts.StatusNames) == 0 {
		return nil
	}
	if err := leaf(dir, "status", serverTemplate(opts.StatusNames), ca, caKey, opts); err != nil {
		return err
	}
	return leaf(dir, "ctl", clientTemplate(opts.CtlName), ca, caKey, opts)
}

// serverTemplate is a server certificate valid for names (DNS names and IP
// addresses), the first also its Common Name.
func serverTemplate(names []string) *x509.Certificate {
	c := &x509.Certificate{
		Subject:     pkix.Name{CommonName: names[0]},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			c.IPAddresses = append(c.IPAddresses, ip)
		} else {
			c.DNSNames = append(c.DNSNames, n)
		}
	}
	return c
}

// clientTemplate is a client certificate with identity name: its Common
// Name, and a URI SAN when it is a URI (spiffe://…) or a DNS SAN when it is
// a DNS name.
func clientTemplate(name string) *x509.Certificate {
	c := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if u, err := url.Parse(name); err == nil && u.Scheme != "" && strings.Contains(name, "://") {
		c.URIs = []*url.URL{u}
	} else if isDNSName(name) {
		c.DNSNames = []string{name}
	}
	return c
}

func leaf(dir, name string, tmpl, ca *x509.Certificate, caKey *ecdsa.PrivateKey, opts Options) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("certs: %s key: %w", name, err)
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	der, err := sign(tmpl, ca, key, caKey, opts.Now, opts.Validity)
	if err != nil {
		return fmt.Errorf("certs: %s certificate: %w", name, err)
	}
	if err := writeKey(dir, name+".key", key); err != nil {
		return err
	}
	return writePEM(dir, name+".crt", "CERTIFICATE", der, 0o644)
}

func sign(tmpl, parent *x509.Certificate, key, parentKey *ecdsa.PrivateKey, now time.Time, validity time.Duration) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-time.Hour) // tolerate clocks a little behind
	tmpl.NotAfter = now.Add(validity)
	if parent == nil {
		parent = tmpl
	}
	return x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
}

// loadCA returns the CA kept in dir, or nil when dir holds neither file. One
// file without the other is an error: it would silently mint a second CA.
func loadCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPEM, certErr := os.ReadFile(filepath.Join(dir, CAFile))
	keyPEM, keyErr := os.ReadFile(filepath.Join(dir, CAKeyFile))
	switch {
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
		return nil, nil, nil
	case certErr != nil:
		return nil, nil, fmt.Errorf("certs: CA: %w", certErr)
	case keyErr != nil:
		return nil, nil, fmt.Errorf("certs: CA key: %w", keyErr)
	}
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("certs: %s: no PEM certificate", filepath.Join(dir, CAFile))
	}
	ca, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: %s: %w", filepath.Join(dir, CAFile), err)
	}
	if !ca.IsCA {
		return nil, nil, fmt.Errorf("certs: %s is not a CA certificate", filepath.Join(dir, CAFile))
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, nil, fmt.Errorf("certs: %s: no PEM key", filepath.Join(dir, CAKeyFile))
	}
	var key any
	switch kb.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(kb.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("certs: %s: %w", filepath.Join(dir, CAKeyFile), err)
	}
	ecKey, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("certs: %s: only ECDSA CA keys are supported (use deploy/tls/make-certs.sh for others)", filepath.Join(dir, CAKeyFile))
	}
	if !ecKey.PublicKey.Equal(ca.PublicKey) {
		return nil, nil, fmt.Errorf("certs: %s does not belong to %s", filepath.Join(dir, CAKeyFile), filepath.Join(dir, CAFile))
	}
	return ca, ecKey, nil
}

func writeKey(dir, name string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("certs: %s: %w", name, err)
	}
	return writePEM(dir, name, "PRIVATE KEY", der, 0o600)
}

func writePEM(dir, name, typ string, der []byte, mode os.FileMode) error {
	if err := atomicfile.Write(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	return nil
}

func checkSlaveName(n string) error {
	if net.ParseIP(n) != nil || isDNSName(n) {
		return nil
	}
	return fmt.Errorf("certs: slave name %q is neither an IP address nor a DNS name", n)
}

func checkMasterName(n string) error {
	if len(n) > 255 || strings.ContainsAny(n, "\x00\n\r") || strings.TrimSpace(n) != n {
		return fmt.Errorf("certs: master name %q: not a usable identity (at most 255 bytes, no NUL, newline or surrounding spaces)", n)
	}
	return nil
}

// isDNSName accepts host names of letters, digits, '-' and '.' (and a
// leading "*." wildcard is not accepted: identities are exact).
func isDNSName(n string) bool {
	if n == "" || len(n) > 253 || strings.HasPrefix(n, ".") || strings.HasSuffix(n, ".") {
		return false
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
