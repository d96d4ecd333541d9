package harness

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Certs are PEM files of a test CA and of a slave and a master signed by it.
type Certs struct {
	CA                    string
	SlaveCert, SlaveKey   string
	MasterCert, MasterKey string
}

// MakeCerts writes a CA and certificates for a slave (valid for 127.0.0.1
// and localhost) and a master (client auth) into dir, with the standard
// library only.
func MakeCerts(t testing.TB, dir string) Certs {
	t.Helper()
	caKey, caCert, caDER := newCert(t, nil, nil, &x509.Certificate{
		Subject: pkix.Name{CommonName: "georep test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	})
	c := Certs{CA: writePEM(t, dir, "ca.crt", "CERTIFICATE", caDER)}
	_, _, slaveDER, slaveKey := newLeaf(t, caCert, caKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "georep-slave"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	c.SlaveCert = writePEM(t, dir, "slave.crt", "CERTIFICATE", slaveDER)
	c.SlaveKey = writePEM(t, dir, "slave.key", "EC PRIVATE KEY", slaveKey)
	_, _, masterDER, masterKey := newLeaf(t, caCert, caKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "georep-master"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	c.MasterCert = writePEM(t, dir, "master.crt", "CERTIFICATE", masterDER)
	c.MasterKey = writePEM(t, dir, "master.key", "EC PRIVATE KEY", masterKey)
	return c
}

func newLeaf(t testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey, tmpl *x509.Certificate) (*ecdsa.PrivateKey, *x509.Certificate, []byte, []byte) {
	t.Helper()
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	key, cert, der := newCert(t, ca, caKey, tmpl)
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert, der, keyDER
}

func newCert(t testing.TB, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, tmpl *x509.Certificate) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert, der
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
