package replica

import (
	"testing"

	"github.com/georep/georep/slave/apply/applytest"
)

// TestParallelCreatesMatchSerial checks the engine's parallel creates
// against applying one entry at a time, on the plain replica, and that the
// data tree still holds regular files only.
func TestParallelCreatesMatchSerial(t *testing.T) {
	par, _ := applytest.ParallelCreatesMatchSerial(t, func(t *testing.T) (applytest.Replica, string) {
		return newReplica(t)
	})
	assertDataDirRegularOnly(t, par.(*Replica))
}
