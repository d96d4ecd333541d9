package replica_test

import (
	"os"
	"testing"

	"github.com/georep/georep/slave/replica"
	"github.com/georep/georep/slave/replica/replicatest"
)

// TestConformance runs the replica conformance suite against the
// plain-directory replica.
func TestConformance(t *testing.T) {
	replicatest.Run(t, replicatest.Caps{Root: os.Geteuid() == 0}, func(t *testing.T) replicatest.Backend {
		r, err := replica.Open(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	})
}
