// Package state defines tokenseal's durable state — the sender's serial
// counters, the recipient's trusted senders and the replay ledger — as
// one interface, [Store], with two implementations: an embedded SQLite
// database in a state directory (package state/sqlite, the default) and a
// PostgreSQL database shared by a fleet of hosts (package state/postgres).
// Package state/backend opens either from what the user gave; package
// state/statetest is the conformance suite both pass.
//
// # Serial numbers
//
// [Store.NextSerial] reserves a serial durably before it returns: a
// serial is never issued twice, even if the process dies right after, at
// the cost of a gap. Each (signing key, store) pair has its own random
// 64-bit stream identifier: one key used from two hosts with two state
// directories gives two independent streams; hosts sharing one database
// share the key's stream and draw its serials atomically from it.
//
// # Replay ledger
//
// For each (sender key, stream) the ledger keeps the highest accepted
// serial and the serials accepted above a floor, as in IPsec's
// anti-replay window (RFC 4303, section 3.4.3); the rule is [Window.Admit],
// which both implementations call. A serial above the highest is
// accepted and moves the window; one inside the window is accepted once;
// one below the window, at or below the floor, or seen before, is
// refused. The width is given per call; serials a narrower window moved
// below the floor stay refused under a wider one.
//
// Each accepted envelope is kept with the time it was accepted and its
// digest ([EnvelopeDigest]), also once it fell below the window, so that
// [Store.Accepted] can tell whether the very same envelope was accepted
// before (for a recipient re-reading an archive) until [Store.Forget]
// drops the stream.
//
// # Serials in SQL
//
// Serials are u64 (FORMAT.md) and SQL integers are signed 64-bit: every
// serial is stored as [SerialToSQL] (the top bit flipped), which maps the
// unsigned order onto the signed one, so comparisons in SQL stay right
// over the whole range. Stream identifiers are only compared for
// equality and are stored as their int64 bit pattern.
package state

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tokenseal/tokenseal/internal/keyid"
)

// DefaultWindow is the default width of the anti-replay window.
const DefaultWindow = 1024

// Errors callers can check.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	// ErrReplay is wrapped by every refusal of the ledger and of the
	// freshness check.
	ErrReplay = errors.New("replay rejected")
	// ErrSchema is wrapped by the refusal of a database whose schema is
	// older or newer than this program's.
	ErrSchema = errors.New("state schema version mismatch")
	// ErrUnsafe is wrapped by the refusal of a state directory or
	// database that others could change (owner, mode, symbolic link).
	ErrUnsafe = errors.New("state not private")
)

// Store is tokenseal's durable state. Implementations are safe for
// concurrent use by the goroutines of one process, and any number of
// processes (on any number of hosts, for a shared database) may use the
// same state at once: every method is one transaction.
type Store interface {
	// NextSerial reserves and returns the next serial of the signing key
	// keyID, with the key's stream identifier in this store. The
	// reservation is committed before NextSerial returns; serials of one
	// stream are strictly increasing and never reused, gaps allowed.
	NextSerial(ctx context.Context, keyID [32]byte) (stream, serial uint64, err error)

	// AddTrusted trusts pub as name; a name or key already trusted is an
	// error wrapping ErrExists.
	AddTrusted(ctx context.Context, name string, pub crypto.PublicKey) (*Trusted, error)
	// RemoveTrusted stops trusting name (ErrNotFound if it was not); its
	// ledger entries stay.
	RemoveTrusted(ctx context.Context, name string) error
	// ListTrusted returns the trusted senders by name.
	ListTrusted(ctx context.Context) ([]*Trusted, error)
	// LookupTrusted returns the sender trusted with key identifier id, or
	// an error wrapping ErrNotFound.
	LookupTrusted(ctx context.Context, id [32]byte) (*Trusted, error)

	// AcceptBatch applies the window rule to items in order and records
	// the accepted ones, all in one transaction. It returns one error per
	// item: nil when recorded, a *ReplayError when refused (that item
	// changes nothing), or, for every item, the error that made the
	// transaction fail (then nothing at all was recorded). A window of 0
	// means DefaultWindow.
	AcceptBatch(ctx context.Context, items []AcceptItem, window uint64, now time.Time) []error
	// Accepted returns the record of an accepted envelope, or an error
	// wrapping ErrNotFound.
	Accepted(ctx context.Context, keyID [32]byte, stream, serial uint64) (*Acceptance, error)
	// Ledger lists the ledger's (sender, stream) entries, ordered by
	// trusted name, key identifier and stream.
	Ledger(ctx context.Context) ([]*LedgerEntry, error)
	// Forget removes the ledger entries of sender — a trusted name, or a
	// key identifier in hex — and returns how many streams it removed;
	// given streams, only those. After it, that sender's old envelopes
	// would be accepted again: a deliberate act.
	Forget(ctx context.Context, sender string, streams ...uint64) (int, error)

	// RecordRewrap records that the envelope (keyID, stream, serial) was
	// rewrapped, if it was not recorded before. It returns the record,
	// and first true when this call made it.
	RecordRewrap(ctx context.Context, keyID [32]byte, stream, serial uint64, now time.Time) (rec *Rewrap, first bool, err error)

	// Export returns every row of the state; Import merges a snapshot in
	// one transaction (see [Snapshot]).
	Export(ctx context.Context) (*Snapshot, error)
	Import(ctx context.Context, snap *Snapshot) (*ImportStats, error)

	// Close releases the store.
	Close() error
}

// ReplayError is the ledger's refusal of a serial.
type ReplayError struct {
	Serial     uint64
	Sender     string // trusted name, or the key identifier in hex
	AcceptedAt time.Time
	TooOld     bool   // below the window; AcceptedAt is unknown
	Highest    uint64 // when TooOld
	Invalid    bool   // serial 0, which no writer uses
}

func (e *ReplayError) Error() string {
	switch {
	case e.Invalid:
		return fmt.Sprintf("invalid serial %d from %s: serials start at 1", e.Serial, e.Sender)
	case e.TooOld:
		return fmt.Sprintf("replayed or stale envelope: serial %d from %s is below the replay window (highest accepted %d)", e.Serial, e.Sender, e.Highest)
	}
	return fmt.Sprintf("replayed envelope: serial %d from %s was accepted at %s", e.Serial, e.Sender, e.AcceptedAt.UTC().Format(time.RFC3339))
}

func (e *ReplayError) Is(target error) bool { return target == ErrReplay }

// StaleError is a refusal for the envelope's timestamp.
type StaleError struct{ Reason string }

func (e *StaleError) Error() string        { return "stale envelope: " + e.Reason }
func (e *StaleError) Is(target error) bool { return target == ErrReplay }

// MaxTimestamp is the first timestamp, in milliseconds since 1970, that
// no clock gives: 10000-01-01T00:00:00Z.
const MaxTimestamp = 253402300800000

// CheckFreshness refuses a timestamp older than maxAge or more than
// maxSkew in the future, relative to now, and refuses outright one that
// no clock gives: before 1970 (which is where a u64 timestamp of 2^63 ms
// or more lands when read as time.UnixMilli(int64(ts))) or from the year
// 10000 on.
func CheckFreshness(ts, now time.Time, maxAge, maxSkew time.Duration) error {
	if ms := ts.UnixMilli(); ms < 0 || ms >= MaxTimestamp {
		return &StaleError{fmt.Sprintf("impossible timestamp %d ms: a timestamp is 0 to %d ms since 1970 (before the year 10000)", uint64(ms), MaxTimestamp-1)}
	}
	if ts.After(now.Add(maxSkew)) {
		return &StaleError{fmt.Sprintf("timestamp %s is %s in the future (max skew %s)", ts.UTC().Format(time.RFC3339), ts.Sub(now).Round(time.Second), maxSkew)}
	}
	if now.Sub(ts) > maxAge {
		return &StaleError{fmt.Sprintf("timestamp %s is older than the maximum age %s", ts.UTC().Format(time.RFC3339), maxAge)}
	}
	return nil
}

// Trusted is a trusted sender.
type Trusted struct {
	Name   string
	KeyID  [32]byte
	Public crypto.PublicKey
	Added  time.Time
}

// ValidName reports whether name can name a trusted sender.
func ValidName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._@-", r)) {
			return false
		}
	}
	return true
}

// AcceptItem is one envelope for AcceptBatch.
type AcceptItem struct {
	KeyID  [32]byte
	Stream uint64
	Serial uint64
	Name   string // for the error message only
	// Digest identifies the envelope byte for byte ([EnvelopeDigest]);
	// the zero value records no digest.
	Digest [32]byte
}

// Accept records one envelope: AcceptBatch of one item.
func Accept(ctx context.Context, s Store, it AcceptItem, window uint64, now time.Time) error {
	return s.AcceptBatch(ctx, []AcceptItem{it}, window, now)[0]
}

// Acceptance is the ledger's record of one accepted envelope.
type Acceptance struct {
	KeyID  [32]byte
	Stream uint64
	Serial uint64
	At     time.Time
	Digest [32]byte // zero when recorded without one (before schema 2)
}

// SameEnvelope reports whether digest is the one recorded; a record
// without a digest matches nothing.
func (a *Acceptance) SameEnvelope(digest [32]byte) bool {
	return a.Digest != [32]byte{} && a.Digest == digest
}

// KeyIDOf is a sender's key identifier from its DER SubjectPublicKeyInfo
// (internal/keyid; the identifier envelope.KeyIDOf gives).
func KeyIDOf(spki []byte) [32]byte { return keyid.OfSPKI(spki) }

// EnvelopeDigest is the digest the ledger keeps of an accepted envelope:
//
//	SHA-256("tokenseal accepted" || 0x00 || d || trailer)
//
// where d is the digest the sender's signature covers and trailer is the
// signature (FORMAT.md section 6, version 1 or 2; armor removed). d
// commits to the header and to every payload byte, so the digest changes
// with any byte of the envelope, and it is what a reader already computed
// for the signature: it costs no second pass over the payload.
func EnvelopeDigest(signed [32]byte, trailer []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte("tokenseal accepted\x00"))
	h.Write(signed[:])
	h.Write(trailer)
	return [32]byte(h.Sum(nil))
}

// Rewrap is the record of a rewrapped original.
type Rewrap struct {
	KeyID  [32]byte
	Stream uint64
	Serial uint64
	At     time.Time // when it was first rewrapped
}

// LedgerEntry summarises one (sender, stream) of the ledger.
type LedgerEntry struct {
	Name         string // trusted name, empty if no longer trusted
	KeyID        [32]byte
	StreamID     uint64
	Highest      uint64
	Occupancy    int // serials recorded above the floor
	LastAccepted time.Time
}

// KeyIDHex is the key identifier in hex.
func (e *LedgerEntry) KeyIDHex() string { return hex.EncodeToString(e.KeyID[:]) }

// SerialToSQL is how a serial is stored: the top bit flipped, so that
// the signed order of the stored values is the unsigned order of the
// serials.
func SerialToSQL(s uint64) int64 { return int64(s ^ 1<<63) }

// SerialFromSQL undoes SerialToSQL.
func SerialFromSQL(v int64) uint64 { return uint64(v) ^ 1<<63 }

// DefaultDir is $XDG_STATE_HOME/tokenseal, or ~/.local/state/tokenseal.
func DefaultDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "tokenseal"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no state directory: set TOKENSEAL_STATE_DIR or XDG_STATE_HOME: %w", err)
	}
	return filepath.Join(home, ".local", "state", "tokenseal"), nil
}
