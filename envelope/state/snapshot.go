package state

import (
	"errors"
	"fmt"
	"time"
)

// Snapshot is every row of a state store, for moving a host's state into
// another store (tokenseal state copy).
//
// [Store.Import] merges a snapshot into a store that may already hold
// entries, in one transaction, keeping every guarantee of both:
//
//   - trusted senders are added; a name trusted with another key, or a
//     key trusted under another name, refuses the whole import (nothing
//     is written);
//   - a serial counter is added when the store has none for the key;
//     when it has one with the same stream, the higher serial is kept;
//     with another stream, the store's stream is kept (the imported
//     one is retired: its serials are never issued again);
//   - ledger streams keep the higher highest serial, the higher floor and
//     the later last-accepted time, and accepted serials are the union of
//     both (so whatever either side accepted stays refused);
//   - rewrap records are the union of both.
type Snapshot struct {
	Counters []Counter
	Trusted  []*Trusted
	Streams  []StreamRow
	Accepted []Acceptance
	Rewraps  []Rewrap
}

// Counter is a signing key's serial counter.
type Counter struct {
	KeyID  [32]byte
	Stream uint64
	Last   uint64 // the last serial issued
}

// StreamRow is one (sender key, stream) of the ledger.
type StreamRow struct {
	KeyID  [32]byte
	Stream uint64
	Window
	LastAccepted time.Time
}

// ImportStats says what an import changed.
type ImportStats struct {
	Counters, Trusted, Streams, Accepted, Rewraps int // rows added or moved forward
	// RetiredStreams are imported counters whose key already had another
	// stream in the store: that stream continues, the imported one ends.
	RetiredStreams []Counter
}

// ConflictError is an import refused because a trusted sender differs.
type ConflictError struct{ Msg string }

func (e *ConflictError) Error() string        { return "cannot merge: " + e.Msg }
func (e *ConflictError) Is(target error) bool { return target == ErrExists }

// SchemaVersion is the version of the state schema this program writes,
// for both stores. Version 1 is the SQLite schema of tokenseal's first
// release (no version recorded); version 2 added envelope digests kept
// beyond the window, rewrap records and serials stored over the whole u64
// range.
const SchemaVersion = 2

// CheckVersion refuses a database whose schema version have is not
// SchemaVersion, with the command that fixes it; where names the
// database in the message.
func CheckVersion(have int, where string) error {
	switch {
	case have < SchemaVersion:
		return fmt.Errorf("%w: %s has schema version %d, this tokenseal needs %d: migrate it", ErrSchema, where, have, SchemaVersion)
	case have > SchemaVersion:
		return fmt.Errorf("%w: %s has schema version %d, newer than this tokenseal knows (%d): upgrade tokenseal", ErrSchema, where, have, SchemaVersion)
	}
	return nil
}

// ErrCounterExhausted is a serial counter at 2^64-1.
var ErrCounterExhausted = errors.New("serial counter exhausted")
