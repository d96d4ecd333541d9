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

// TestParallelEntriesMatchSerial: the plain replica applies entries other
// than creates in order; the batch must still give what one entry at a
// time gives.
func TestParallelEntriesMatchSerial(t *testing.T) {
	applytest.ParallelEntriesMatchSerial(t, func(t *testing.T) (applytest.Replica, string) {
		return newReplica(t)
	})
}
