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

// TestMutualTLS replicates over mutually authenticated TLS (the rsync tunnel
// included), and checks that a master without a certificate of the slave's
// CA, or speaking plaintext, is turned away with a clear error.
func TestMutualTLS(t *testing.T) {
	harness.RequireRsync(t)
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
		code, out := harness.Oneshot(t, ctx, "--slave", slave.Addr, "--source", src, "--work-dir", t.TempDir(), "--insecure", "--oneshot-timeout", "3s")
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
