package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/georep/georep/integration/harness"
)

// newInsecureSite is newSite with a slave serving plaintext, for the tests
// whose masters say --insecure themselves (in a config file, the
// environment) or that use plaintext tools.
func newInsecureSite(t *testing.T) *site {
	t.Helper()
	harness.RequireRsync(t)
	dir := t.TempDir()
	s := &site{src: filepath.Join(dir, "src"), replica: filepath.Join(dir, "replica"), work: filepath.Join(dir, "work")}
	for _, d := range []string{s.src, s.replica} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s.slave = harness.StartSlaveInsecure(t, s.replica)
	return s
}

// TestMutualTLS replicates over mutually authenticated TLS (the rsync tunnel
// included), and checks that a master without a certificate of the slave's
// CA, or speaking plaintext, is turned away with a clear error.
func TestMutualTLS(t *testing.T) {
	harness.RequireRsync(t)
	t.Parallel()
	dir := t.TempDir()
	certs := harness.MakeCerts(t, filepath.Join(dir))
	src, replica := filepath.Join(dir, "src"), filepath.Join(dir, "replica")
	os.Mkdir(src, 0o755)
	os.Mkdir(replica, 0o755)
	os.WriteFile(filepath.Join(src, "f"), []byte(strings.Repeat("data", 5000)), 0o644)
	os.WriteFile(filepath.Join(src, "big"), make([]byte, 3<<20), 0o644) // past small-file-size: through rsync
	slave := harness.StartSlaveTLS(t, replica, certs)

	tlsArgs := func(cert, key, ca string, extra ...string) []string {
		return append([]string{"--slave", slave.Addr, "--source", src, "--work-dir", filepath.Join(dir, "work"),
			"--tls-cert", cert, "--tls-key", key, "--tls-ca", ca, "--oneshot-timeout", "20s"}, extra...)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	harness.MustOneshot(t, ctx, tlsArgs(certs.MasterCert, certs.MasterKey, certs.CA)...)
	if diffs, err := harness.Compare(src, replica, harness.CompareOptions{}); err != nil || len(diffs) > 0 {
		t.Fatalf("replica differs after a sync over TLS: %v %v", err, diffs)
	}
	if !strings.Contains(slave.Log(), "allowed-masters is empty") {
		t.Errorf("a TLS slave without allowed-masters does not warn that any certificate of its CA is a master:\n%s", slave.Log())
	}

	t.Run("certificate of another CA", func(t *testing.T) {
		other := harness.MakeCerts(t, t.TempDir())
		code, out := harness.Oneshot(t, ctx, append(tlsArgs(other.MasterCert, other.MasterKey, certs.CA), "--work-dir", t.TempDir(), "--oneshot-timeout", "3s")...)
		if code == 0 || !strings.Contains(out, "unreachable") {
			t.Fatalf("a master with a foreign certificate: exit %d, output:\n%s", code, out)
		}
		if !strings.Contains(out, "certificate") {
			t.Errorf("the error does not say the certificate was the problem:\n%s", out)
		}
	})
	t.Run("plaintext master", func(t *testing.T) {
		code, out := harness.Oneshot(t, ctx, harness.MasterArgsInsecure(slave.Addr, src, t.TempDir(), "--oneshot-timeout", "3s")...)
		if code == 0 {
			t.Fatalf("a plaintext master was served by a TLS slave:\n%s", out)
		}
	})
	t.Run("no TLS and no --insecure", func(t *testing.T) {
		code, out := harness.Oneshot(t, ctx, "--slave", slave.Addr, "--source", src, "--work-dir", t.TempDir())
		if code == 0 || !strings.Contains(out, "pass --insecure") {
			t.Fatalf("exit %d, output:\n%s", code, out)
		}
	})
}

// TestHarnessTLSByDefault: a slave the harness starts requires mutual TLS,
// and MasterArgs, a restart and a proxy all carry its certificates.
func TestHarnessTLSByDefault(t *testing.T) {
	s := newSite(t)
	t.Parallel()
	if s.slave.Certs == nil {
		t.Fatal("harness.StartSlave started a slave without certificates")
	}
	args := strings.Join(s.args(), " ")
	if strings.Contains(args, "--insecure") || !strings.Contains(args, "--tls-cert "+s.slave.Certs.MasterCert) {
		t.Fatalf("MasterArgs of a TLS slave: %s", args)
	}
	os.WriteFile(filepath.Join(s.src, "f"), []byte("x"), 0o644)
	s.sync(t)
	s.check(t, harness.CompareOptions{}, "over the harness's TLS")
	s.slave.Stop()
	s.slave.Restart(t)
	proxy := harness.StartProxy(t, s.slave.Addr)
	os.WriteFile(filepath.Join(s.src, "g"), []byte("y"), 0o644)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	harness.MustOneshot(t, ctx, harness.MasterArgs(proxy.Addr, s.src, s.work, "--oneshot-timeout", "60s")...)
	s.check(t, harness.CompareOptions{}, "through a proxy to the restarted TLS slave")
}

// TestAllowedMasters: a slave with allowed-masters serves only those master
// identities; another certificate of the same CA is refused on its first
// call, the error names its identity and the key, and the replica is not
// touched.
func TestAllowedMasters(t *testing.T) {
	harness.RequireRsync(t)
	t.Parallel()
	dir := t.TempDir()
	// Two masters of one CA: copy A's files away before B's are made.
	ca := filepath.Join(dir, "ca")
	a := harness.MakeCertsFor(t, ca, "master-a")
	keep := filepath.Join(dir, "a")
	os.Mkdir(keep, 0o700)
	for _, p := range []*string{&a.MasterCert, &a.MasterKey} {
		b, err := os.ReadFile(*p)
		if err != nil {
			t.Fatal(err)
		}
		*p = filepath.Join(keep, filepath.Base(*p))
		os.WriteFile(*p, b, 0o600)
	}
	b := harness.MakeCertsFor(t, ca, "master-b.example.net")

	srcA, srcB, replica := filepath.Join(dir, "srcA"), filepath.Join(dir, "srcB"), filepath.Join(dir, "replica")
	for _, d := range []string{srcA, srcB, replica} {
		os.Mkdir(d, 0o755)
	}
	os.WriteFile(filepath.Join(srcA, "from-A"), []byte(strings.Repeat("A", 1<<20)), 0o644)
	os.WriteFile(filepath.Join(srcB, "from-B"), []byte("B"), 0o644)
	slave := harness.StartSlaveTLS(t, replica, b, "--allowed-masters", "master-a")
	if strings.Contains(slave.Log(), "allowed-masters is empty") {
		t.Errorf("warned about an empty allowed-masters that is not empty:\n%s", slave.Log())
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	masterArgs := func(c harness.Certs, src, work string, extra ...string) []string {
		return append([]string{"--slave", slave.Addr, "--source", src, "--work-dir", work,
			"--tls-cert", c.MasterCert, "--tls-key", c.MasterKey, "--tls-ca", c.CA}, extra...)
	}

	t.Run("identity not listed", func(t *testing.T) {
		code, out := harness.Oneshot(t, ctx, masterArgs(b, srcB, filepath.Join(dir, "workB"), "--oneshot-timeout", "3s")...)
		if code != 1 { // a refusal retrying cannot change: exit 1 at once, not 3 after the timeout
			t.Fatalf("master-b.example.net: exit %d, want 1:\n%s", code, out)
		}
		for _, want := range []string{"PermissionDenied", `"master-b.example.net"`, "allowed-masters"} {
			if !strings.Contains(out, want) {
				t.Errorf("the master's output does not say %q:\n%s", want, lastLines(out, 3))
			}
		}
		if ents, _ := os.ReadDir(replica); len(ents) > 1 {
			t.Errorf("the refused master changed the replica: %v", ents)
		}
	})
	t.Run("identity listed", func(t *testing.T) {
		harness.MustOneshot(t, ctx, masterArgs(a, srcA, filepath.Join(dir, "workA"), "--oneshot-timeout", "60s")...)
		if diffs, err := harness.Compare(srcA, replica, harness.CompareOptions{}); err != nil || len(diffs) > 0 {
			t.Fatalf("replica differs after master-a's sync: %v %v", err, diffs)
		}
	})
	// B, refused by identity, cannot get in with A's volume id either (its
	// work dir copied): the session is never reached.
	t.Run("identity not listed, allowed master's work dir", func(t *testing.T) {
		stolen := filepath.Join(dir, "stolen")
		os.Mkdir(stolen, 0o700)
		vid, err := os.ReadFile(filepath.Join(dir, "workA", "volume-id"))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(stolen, "volume-id"), vid, 0o600)
		os.WriteFile(filepath.Join(srcA, "evil"), []byte("evil"), 0o644)
		defer os.Remove(filepath.Join(srcA, "evil"))
		code, out := harness.Oneshot(t, ctx, masterArgs(b, srcA, stolen, "--oneshot-timeout", "3s")...)
		if code == 0 || !strings.Contains(out, "PermissionDenied") {
			t.Fatalf("master-b with master-a's volume id: exit %d:\n%s", code, lastLines(out, 3))
		}
		if _, err := os.Lstat(filepath.Join(replica, "evil")); err == nil {
			t.Fatal("master-b wrote into the replica with master-a's volume id")
		}
	})
}

// TestStatusMutualTLS serves the master's status service over mutual TLS
// (status-tls-cert, status-allowed-clients) and drives it with georepctl's
// certificate: status answers; plaintext, a client certificate not in the
// list, or none is refused; georepctl refuses plaintext to an address that
// is not loopback before dialling; a master refuses to serve status-listen
// in plaintext on such an address unless told status-insecure.
func TestStatusMutualTLS(t *testing.T) {
	harness.RequireRsync(t)
	t.Parallel()
	s := newSite(t)
	os.WriteFile(filepath.Join(s.src, "f"), []byte("f"), 0o644)
	dir := t.TempDir()
	c := harness.MakeCerts(t, filepath.Join(dir, "tls"))
	other := harness.MakeCertsFor(t, filepath.Join(dir, "other"), "someone-else") // another CA
	addr := harness.FreeAddr(t)
	m := harness.StartMasterProc(t, nil, harness.MasterArgs(s.slave.Addr, s.src, s.work, "--change-interval", "500ms",
		"--status-listen", addr, "--status-tls-cert", c.StatusCert, "--status-tls-key", c.StatusKey, "--status-tls-ca", c.CA,
		"--status-allowed-clients", "georepctl")...)
	withTLS := []string{"--master", addr, "--tls-cert", c.CtlCert, "--tls-key", c.CtlKey, "--tls-ca", c.CA}
	waitStatus(t, m, withTLS, "an Active worker over mutual TLS", activeSynced)
	if !strings.Contains(m.Log(), `msg="serving status" addr=`+addr+" tls=true") {
		t.Errorf("the master does not log its status service as TLS:\n%s", lastLines(m.Log(), 20))
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"plaintext", []string{"--master", addr}, "cannot reach the master"},
		{"the refusal names the key", []string{"--master", addr, "--tls-cert", c.MasterCert, "--tls-key", c.MasterKey, "--tls-ca", c.CA},
			"status-allowed-clients"},
		{"a certificate not allowed", []string{"--master", addr, "--tls-cert", c.MasterCert, "--tls-key", c.MasterKey, "--tls-ca", c.CA},
			`"georep-master" (serial`},
		{"a certificate of another CA", []string{"--master", addr, "--tls-cert", other.CtlCert, "--tls-key", other.CtlKey, "--tls-ca", c.CA},
			"cannot reach the master"},
		{"half the TLS flags", []string{"--master", addr, "--tls-cert", c.CtlCert}, "needs --tls-cert, --tls-key and --tls-ca"},
		{"plaintext to a remote address", []string{"--master", "192.0.2.1:7101"}, "is not a loopback address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := ctl(t, append(tc.args, "status")...)
			if code == 0 || !strings.Contains(out, tc.want) {
				t.Errorf("georepctl %s status: exit %d, want a refusal saying %q:\n%s", strings.Join(tc.args, " "), code, tc.want, out)
			}
		})
	}

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	args := harness.MasterArgs(s.slave.Addr, s.src, filepath.Join(dir, "work2"), "--oneshot", "--status-listen", "0.0.0.0:0")
	if code, out := harness.Run(t, ctx, nil, "georep-master", args...); code != 2 || !strings.Contains(out, "status-listen 0.0.0.0:0 is not a loopback address") {
		t.Errorf("status-listen on every address in plaintext: exit %d, want 2 with the reason:\n%s", code, lastLines(out, 10))
	}
}
