package master

import (
	"errors"
	"fmt"
)

// ErrGuard marks a pass that a safety guard refused: nothing of it was
// applied. georep-master --oneshot exits 4 on it; a daemon's worker is
// Faulty with the guard's reason until the operator proceeds.
var ErrGuard = errors.New("a safety guard refused")

// GuardError is a refusal by one of the safety guards: which guard, what it
// measured, and how the operator proceeds.
type GuardError struct {
	Guard   string // the guard's name: source-identity, max-delete, replica-not-empty
	Detail  string // what it found, with the figures
	Proceed string // what the operator does to proceed
}

func (e *GuardError) Error() string {
	return fmt.Sprintf("safety guard %s refused the pass, nothing applied: %s; to proceed: %s", e.Guard, e.Detail, e.Proceed)
}

func (e *GuardError) Is(target error) bool { return target == ErrGuard }
