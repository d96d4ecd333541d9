package replica_test

import (
	"os"
	"testing"

	"github.com/georep/georep/rpc/ops/opstest"
	"github.com/georep/georep/slave/replica"
)

// TestConformance runs the replica conformance suite against the
// plain-directory replica.
func TestConformance(t *testing.T) {
	opstest.Run(t, opstest.Caps{Root: os.Geteuid() == 0}, func(t *testing.T) opstest.Backend {
		r, err := replica.Open(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	})
}
