package master

import (
	"strings"
	"testing"

	"github.com/georep/georep/rpc"
)

// TestStatusTLSConfig: status-listen serves mutual TLS given a certificate,
// a key and a CA; plaintext only on loopback or with status-insecure.
func TestStatusTLSConfig(t *testing.T) {
	full := rpc.TLSFiles{Cert: "s.crt", Key: "s.key", CA: "ca.crt"}
	for _, tc := range []struct {
		name   string
		listen string
		tls    rpc.TLSFiles
		allow  []string
		insec  bool
		want   string // "" : accepted
	}{
		{"no status-listen", "", rpc.TLSFiles{}, nil, false, ""},
		{"loopback plaintext", "127.0.0.1:7101", rpc.TLSFiles{}, nil, false, ""},
		{"localhost plaintext", "localhost:7101", rpc.TLSFiles{}, nil, false, ""},
		{"remote plaintext", "10.0.0.1:7101", rpc.TLSFiles{}, nil, false, "not a loopback address"},
		{"every address plaintext", ":7101", rpc.TLSFiles{}, nil, false, "not a loopback address"},
		{"remote plaintext asked for", "10.0.0.1:7101", rpc.TLSFiles{}, nil, true, ""},
		{"remote TLS", "10.0.0.1:7101", full, []string{"georepctl"}, false, ""},
		{"TLS and insecure", "10.0.0.1:7101", full, nil, true, "give one of them"},
		{"cert without key", "10.0.0.1:7101", rpc.TLSFiles{Cert: "s.crt", CA: "ca.crt"}, nil, false, "give both"},
		{"no CA", "10.0.0.1:7101", rpc.TLSFiles{Cert: "s.crt", Key: "s.key"}, nil, false, "status-tls-ca"},
		{"allowlist without TLS", "127.0.0.1:7101", rpc.TLSFiles{}, []string{"georepctl"}, false, "need status-tls-cert"},
		{"TLS without status-listen", "", full, nil, false, "status-listen, which is not set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{StatusListen: tc.listen, StatusTLS: tc.tls, StatusAllowedClients: tc.allow, StatusInsecure: tc.insec}
			errs := c.statusTLSErrs()
			switch {
			case tc.want == "" && len(errs) > 0:
				t.Errorf("refused: %v", errs)
			case tc.want != "" && (len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.want)):
				t.Errorf("got %v, want an error saying %q", errs, tc.want)
			}
		})
	}
}
