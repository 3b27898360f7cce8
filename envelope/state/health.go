package state

import (
	"errors"
	"fmt"
	"io/fs"
)

// Health is what sqlite.Check found in a state directory.
type Health struct {
	Dir      string
	Exists   bool        // the directory exists
	DirMode  fs.FileMode // its permission bits, when it exists
	DBExists bool        // state.db exists
	DBMode   fs.FileMode // its permission bits, when it exists
	// Opens: the database opened (schema in place, a write transaction
	// went through); CountersReadable: every serial counter row read back
	// well-formed; QuickCheck is SQLite's PRAGMA quick_check verdict.
	Opens            bool
	CountersReadable bool
	QuickCheck       string
	Counters         int // signing keys with a serial counter
	Trusted          int // trusted senders
	Streams          int // (sender, stream) entries in the replay ledger
	// Problems are what keeps tokenseal from using the directory safely;
	// empty means healthy. Notes are worth knowing but harmless.
	Problems []error
	Notes    []string
}

// ErrUnhealthy is matched (errors.Is) by every problem sqlite.Check reports.
var ErrUnhealthy = errors.New("state directory unhealthy")

// healthProblem is one problem; its message says what is wrong on its own.
type healthProblem struct{ msg string }

func (e *healthProblem) Error() string        { return e.msg }
func (e *healthProblem) Is(target error) bool { return target == ErrUnhealthy }

// Problem adds a problem.
func (h *Health) Problem(format string, a ...any) {
	h.Problems = append(h.Problems, &healthProblem{fmt.Sprintf(format, a...)})
}
