package certs

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGenerate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	if err := Generate(dir, Options{SlaveNames: []string{"replica.example.net", "127.0.0.1", "::1"}, MasterName: "master-a.example.net"}); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{CAFile: 0o644, CAKeyFile: 0o600, SlaveCertFile: 0o644, SlaveKeyFile: 0o600, MasterCertFile: 0o644, MasterKeyFile: 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %o, want %o", name, fi.Mode().Perm(), mode)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 6 {
		t.Errorf("dir holds %d files, want 6 (no temporary files left)", len(ents))
	}
	ca := readCert(t, filepath.Join(dir, CAFile))
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	slave := readCert(t, filepath.Join(dir, SlaveCertFile))
	for _, host := range []string{"replica.example.net", "127.0.0.1", "::1"} {
		if _, err := slave.Verify(x509.VerifyOptions{Roots: pool, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("slave certificate for %s: %v", host, err)
		}
	}
	if _, err := slave.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("the slave certificate is usable as a client certificate")
	}
	master := readCert(t, filepath.Join(dir, MasterCertFile))
	if _, err := master.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("master certificate: %v", err)
	}
	if _, err := master.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("the master certificate is usable as a server certificate")
	}
	if master.Subject.CommonName != "master-a.example.net" || len(master.DNSNames) != 1 || master.DNSNames[0] != "master-a.example.net" {
		t.Errorf("master identity: CN %q DNS %v", master.Subject.CommonName, master.DNSNames)
	}
	if d := master.NotAfter.Sub(time.Now()); d < DefaultValidity-2*time.Hour || d > DefaultValidity+time.Hour {
		t.Errorf("master certificate valid for %s, want about %s", d, DefaultValidity)
	}

	// A second run reuses the CA: certificates of both runs verify against it.
	if err := Generate(dir, Options{SlaveNames: []string{"localhost"}, MasterName: "spiffe://example.net/georep/master-b"}); err != nil {
		t.Fatal(err)
	}
	if again := readCert(t, filepath.Join(dir, CAFile)); !again.Equal(ca) {
		t.Fatal("the CA was replaced")
	}
	b := readCert(t, filepath.Join(dir, MasterCertFile))
	if len(b.URIs) != 1 || b.URIs[0].String() != "spiffe://example.net/georep/master-b" || len(b.DNSNames) != 0 {
		t.Errorf("URI master identity: URIs %v DNS %v", b.URIs, b.DNSNames)
	}
	if _, err := b.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("second master certificate against the first CA: %v", err)
	}
}

func TestGenerateRefuses(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		prep func(dir string)
		want string
	}{
		{"no slave name", Options{}, nil, "at least one slave name"},
		{"slave name with a space", Options{SlaveNames: []string{"a b"}}, nil, `slave name "a b"`},
		{"slave name with a slash", Options{SlaveNames: []string{"a/b"}}, nil, "neither an IP address nor a DNS name"},
		{"wildcard slave name", Options{SlaveNames: []string{"*.example.net"}}, nil, "neither"},
		{"master name with NUL", Options{SlaveNames: []string{"h"}, MasterName: "m\x00"}, nil, "master name"},
		{"master name with newline", Options{SlaveNames: []string{"h"}, MasterName: "m\nCN=x"}, nil, "master name"},
		{"negative validity", Options{SlaveNames: []string{"h"}, Validity: -time.Hour}, nil, "negative"},
		{"CA key without its certificate", Options{SlaveNames: []string{"h"}}, func(dir string) {
			os.WriteFile(filepath.Join(dir, CAKeyFile), []byte("x"), 0o600)
		}, "CA"},
		{"CA certificate that is not PEM", Options{SlaveNames: []string{"h"}}, func(dir string) {
			os.WriteFile(filepath.Join(dir, CAFile), []byte("junk"), 0o644)
			os.WriteFile(filepath.Join(dir, CAKeyFile), []byte("junk"), 0o600)
		}, "no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.prep != nil {
				tt.prep(dir)
			}
			before, _ := os.ReadDir(dir)
			err := Generate(dir, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Generate = %v, want an error containing %q", err, tt.want)
			}
			if after, _ := os.ReadDir(dir); len(after) != len(before) {
				t.Errorf("a refused run wrote files: %d before, %d after", len(before), len(after))
			}
		})
	}
	t.Run("CA key of another CA", func(t *testing.T) {
		a, b := t.TempDir(), t.TempDir()
		for _, d := range []string{a, b} {
			if err := Generate(d, Options{SlaveNames: []string{"h"}}); err != nil {
				t.Fatal(err)
			}
		}
		key, _ := os.ReadFile(filepath.Join(b, CAKeyFile))
		os.WriteFile(filepath.Join(a, CAKeyFile), key, 0o600)
		if err := Generate(a, Options{SlaveNames: []string{"h"}}); err == nil || !strings.Contains(err.Error(), "does not belong") {
			t.Fatalf("Generate with a mismatched CA key = %v", err)
		}
	})
}

// TestGenerateStatus: with StatusNames, a server certificate for the
// masters' status services and a client certificate for georepctl.
func TestGenerateStatus(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	if err := Generate(dir, Options{SlaveNames: []string{"replica"}, StatusNames: []string{"m1.example.net", "10.0.0.1"}, CtlName: "ops"}); err != nil {
		t.Fatal(err)
	}
	ca := readCert(t, filepath.Join(dir, CAFile))
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	st := readCert(t, filepath.Join(dir, StatusCertFile))
	for _, host := range []string{"m1.example.net", "10.0.0.1"} {
		if _, err := st.Verify(x509.VerifyOptions{Roots: pool, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("status certificate for %s: %v", host, err)
		}
	}
	ctl := readCert(t, filepath.Join(dir, CtlCertFile))
	if _, err := ctl.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil || ctl.Subject.CommonName != "ops" {
		t.Errorf("ctl certificate %q: %v", ctl.Subject.CommonName, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, CtlKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("ctl key: %v %v", fi, err)
	}
	if err := Generate(t.TempDir(), Options{SlaveNames: []string{"r"}, StatusNames: []string{"bad name"}}); err == nil {
		t.Error("a status name with a space was accepted")
	}
}
