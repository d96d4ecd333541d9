package harness

import (
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/georep/georep/rpc/certs"
)

// Certs are PEM files of a test CA and of a slave and a master signed by it.
type Certs struct {
	CA                    string
	SlaveCert, SlaveKey   string
	MasterCert, MasterKey string
	// StatusCert and StatusKey are a master status service's (valid for
	// 127.0.0.1, ::1 and localhost); CtlCert and CtlKey georepctl's,
	// named "georepctl".
	StatusCert, StatusKey string
	CtlCert, CtlKey       string
	// MasterName is the master certificate's identity (its CN and DNS SAN).
	MasterName string
}

// MakeCerts writes a CA and certificates for a slave (valid for 127.0.0.1,
// ::1 and localhost) and a master named georep-master (client auth) into
// dir, with rpc/certs (the standard library only).
func MakeCerts(t testing.TB, dir string) Certs {
	t.Helper()
	return MakeCertsFor(t, dir, "georep-master")
}

// MakeCertsFor is MakeCerts with the master's identity masterName. When dir
// already holds a CA (ca.crt, ca.key) it is reused, and the slave and master
// files are replaced: copy them away first to keep several masters of one
// CA.
func MakeCertsFor(t testing.TB, dir, masterName string) Certs {
	t.Helper()
	if err := certs.Generate(dir, certs.Options{SlaveNames: []string{"127.0.0.1", "::1", "localhost"}, MasterName: masterName,
		StatusNames: []string{"127.0.0.1", "::1", "localhost"}}); err != nil {
		t.Fatal(err)
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	return Certs{
		CA:        p(certs.CAFile),
		SlaveCert: p(certs.SlaveCertFile), SlaveKey: p(certs.SlaveKeyFile),
		MasterCert: p(certs.MasterCertFile), MasterKey: p(certs.MasterKeyFile),
		StatusCert: p(certs.StatusCertFile), StatusKey: p(certs.StatusKeyFile),
		CtlCert: p(certs.CtlCertFile), CtlKey: p(certs.CtlKeyFile),
		MasterName: masterName,
	}
}

// SlaveArgs are the slave's TLS flags.
func (c Certs) SlaveArgs() []string {
	return []string{"--tls-cert", c.SlaveCert, "--tls-key", c.SlaveKey, "--tls-ca", c.CA}
}

// MasterArgs are the master's TLS flags.
func (c Certs) MasterArgs() []string {
	return []string{"--tls-cert", c.MasterCert, "--tls-key", c.MasterKey, "--tls-ca", c.CA}
}

// The transport of each address a test started a slave (or a proxy to one)
// on, so that MasterArgs, StartSlaveAt and Restart agree with the slave
// without the test passing certificates around: a *Certs for mutual TLS, nil
// for plaintext. An entry lives until the test that made it ends (ports are
// reused).
var transports = struct {
	sync.Mutex
	byAddr map[string]*Certs
}{byAddr: map[string]*Certs{}}

// transportOf returns the transport registered for addr.
func transportOf(addr string) (c *Certs, known bool) {
	transports.Lock()
	defer transports.Unlock()
	c, known = transports.byAddr[addr]
	return c, known
}

// register records addr's transport; with t, the entry goes when t ends
// (unless something else registered addr since).
func register(t testing.TB, addr string, c *Certs) {
	transports.Lock()
	transports.byAddr[addr] = c
	transports.Unlock()
	if t == nil {
		return
	}
	t.Cleanup(func() {
		transports.Lock()
		defer transports.Unlock()
		if cur, ok := transports.byAddr[addr]; ok && cur == c {
			delete(transports.byAddr, addr)
		}
	})
}

// transportArgs picks the slave's transport flags for a slave about to
// listen on listen with the caller's extra flags: the caller's own choice
// (--insecure, or --tls-cert...) when it made one; else what is registered
// for listen (a restart, or an address a master was already given); else
// fresh certificates for this test.
func transportArgs(t testing.TB, listen string, extra []string) (args []string, c *Certs, decided bool) {
	t.Helper()
	switch {
	case slices.Contains(extra, "--insecure"):
		return nil, nil, true
	case slices.Contains(extra, "--tls-cert"):
		return nil, nil, false // the caller's own certificates
	}
	if c, known := transportOf(listen); known {
		if c == nil {
			return []string{"--insecure"}, nil, true
		}
		return c.SlaveArgs(), c, true
	}
	fresh := MakeCerts(t, t.TempDir())
	// Some tests run the master unprivileged (setpriv): let it read its
	// test-only key (rpc/certs writes keys 0600).
	if err := os.Chmod(fresh.MasterKey, 0o644); err != nil {
		t.Fatal(err)
	}
	return fresh.SlaveArgs(), &fresh, true
}
