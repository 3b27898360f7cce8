// Package state keeps tokenseal's durable state in one SQLite database
// (through database/sql and github.com/mattn/go-sqlite3) in the state
// directory: the sender's serial counters, the recipient's
// trusted senders and the replay ledger.
//
// # Durability
//
// The database runs in WAL mode with synchronous=FULL: a transaction that
// committed survives kill -9 and power loss. Every change is one
// transaction started with BEGIN IMMEDIATE, so concurrent processes are
// serialised by SQLite's lock; a busy database is waited for (busy_timeout)
// and retried a bounded number of times.
//
// # Serial numbers
//
// [Store.NextSerial] reserves a serial durably before it returns: a serial
// is never issued twice, even if the process dies right after, at the cost
// of a gap. Each (signing key, state directory) pair has its own random
// 64-bit stream identifier, so one key used from two hosts gives two
// independent streams that cannot collide. A state directory copied to a
// second host shares the stream: then serials repeat, and recipients
// refuse the second envelope of each pair as a replay (refused, never
// accepted twice).
//
// # Replay ledger
//
// For each (sender key, stream) the ledger keeps the highest accepted
// serial and the serials accepted within a sliding window below it, as in
// IPsec's anti-replay window (RFC 4303, section 3.4.3). A serial above the
// highest is accepted and moves the window; one inside the window is
// accepted once; one below the window, or seen before, is refused. The
// width is given per call; serials a narrower window pruned from the
// ledger stay refused under a wider one (the stream's floor).
package state

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
)

// DefaultWindow is the default width of the anti-replay window.
const DefaultWindow = 1024

// MaxSerial bounds serials so they fit SQLite's signed integers.
const MaxSerial = 1<<63 - 1

const schema = `
CREATE TABLE IF NOT EXISTS counters (
	key_id     BLOB PRIMARY KEY,
	stream_id  INTEGER NOT NULL,
	last       INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS trusted (
	name       TEXT PRIMARY KEY,
	key_id     BLOB NOT NULL UNIQUE,
	spki       BLOB NOT NULL,
	added_ms   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS streams (
	key_id     BLOB NOT NULL,
	stream_id  INTEGER NOT NULL,
	highest    INTEGER NOT NULL,
	last_ms    INTEGER NOT NULL,
	floor      INTEGER NOT NULL DEFAULT 0, -- serials up to here may have been pruned: refused
	PRIMARY KEY (key_id, stream_id)
);
CREATE TABLE IF NOT EXISTS accepted (
	key_id     BLOB NOT NULL,
	stream_id  INTEGER NOT NULL,
	serial     INTEGER NOT NULL,
	at_ms      INTEGER NOT NULL,
	PRIMARY KEY (key_id, stream_id, serial)
);
`

// Errors callers can check.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	// ErrReplay is wrapped by every refusal of the ledger and of the
	// freshness check.
	ErrReplay = errors.New("replay rejected")
)

// ReplayError is the ledger's refusal of a serial.
type ReplayError struct {
	Serial     uint64
	Sender     string // trusted name, or the key identifier in hex
	AcceptedAt time.Time
	TooOld     bool   // below the window; AcceptedAt is unknown
	Highest    uint64 // when TooOld
}

func (e *ReplayError) Error() string {
	if e.TooOld {
		return fmt.Sprintf("replayed or stale envelope: serial %d from %s is below the replay window (highest accepted %d)", e.Serial, e.Sender, e.Highest)
	}
	return fmt.Sprintf("replayed envelope: serial %d from %s was accepted at %s", e.Serial, e.Sender, e.AcceptedAt.UTC().Format(time.RFC3339))
}

func (e *ReplayError) Is(target error) bool { return target == ErrReplay }

// StaleError is a refusal for the envelope's timestamp.
type StaleError struct{ Reason string }

func (e *StaleError) Error() string        { return "stale envelope: " + e.Reason }
func (e *StaleError) Is(target error) bool { return target == ErrReplay }

// CheckFreshness refuses a timestamp older than maxAge or more than
// maxSkew in the future, relative to now.
func CheckFreshness(ts, now time.Time, maxAge, maxSkew time.Duration) error {
	if ts.After(now.Add(maxSkew)) {
		return &StaleError{fmt.Sprintf("timestamp %s is %s in the future (max skew %s)", ts.UTC().Format(time.RFC3339), ts.Sub(now).Round(time.Second), maxSkew)}
	}
	if now.Sub(ts) > maxAge {
		return &StaleError{fmt.Sprintf("timestamp %s is older than the maximum age %s", ts.UTC().Format(time.RFC3339), maxAge)}
	}
	return nil
}

// Store is an open state directory.
type Store struct {
	db  *sql.DB
	dir string
}

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

// Open opens (creating if needed) the state database in dir. The directory
// is made 0700 and the database 0600.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	path := filepath.Join(dir, "state.db")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state database: %w", err)
	}
	f.Close()
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("state directory %q: the path must not contain '?' or '#'", dir)
	}
	q := url.Values{}
	q.Set("_busy_timeout", "10000")
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "FULL")
	q.Set("_foreign_keys", "on")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite3", path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("state database: %w", err)
	}
	db.SetMaxOpenConns(1)
	s := &Store{db: db, dir: dir}
	if err := s.tx(context.Background(), func(tx *sql.Tx) error {
		_, err := tx.Exec(schema)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("state database %s: %w", path, err)
	}
	return s, nil
}

// Dir is the state directory.
func (s *Store) Dir() string { return s.dir }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func isBusy(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.Code == sqlite3.ErrBusy || se.Code == sqlite3.ErrLocked
	}
	return false
}

// tx runs f in one immediate transaction, retrying a busy database a
// bounded number of times.
func (s *Store) tx(ctx context.Context, f func(*sql.Tx) error) error {
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		err = s.tx1(ctx, f)
		if !isBusy(err) {
			return err
		}
		time.Sleep(time.Duration(10*(attempt+1)) * time.Millisecond)
	}
	return fmt.Errorf("state database stayed busy: %w", err)
}

func (s *Store) tx1(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// NextSerial reserves and returns the next serial of the signing key
// keyID, with the stream identifier of this state directory for that key.
// The reservation is committed before NextSerial returns.
func (s *Store) NextSerial(ctx context.Context, keyID [32]byte) (stream, serial uint64, err error) {
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var st, last int64
		err := tx.QueryRow(`SELECT stream_id, last FROM counters WHERE key_id = ?`, keyID[:]).Scan(&st, &last)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			var b [8]byte
			if _, err := rand.Read(b[:]); err != nil {
				return err
			}
			st = int64(binary.BigEndian.Uint64(b[:]) >> 1)
			last = 1
			_, err = tx.Exec(`INSERT INTO counters (key_id, stream_id, last) VALUES (?, ?, ?)`, keyID[:], st, last)
			if err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			if last >= MaxSerial {
				return errors.New("serial counter exhausted")
			}
			last++
			if _, err := tx.Exec(`UPDATE counters SET last = ? WHERE key_id = ?`, last, keyID[:]); err != nil {
				return err
			}
		}
		stream, serial = uint64(st), uint64(last)
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("reserving a serial number: %w", err)
	}
	return stream, serial, nil
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

// AddTrusted trusts pub as name.
func (s *Store) AddTrusted(ctx context.Context, name string, pub crypto.PublicKey) (*Trusted, error) {
	if !ValidName(name) {
		return nil, fmt.Errorf("invalid sender name %q: use 1 to 64 letters, digits, '.', '_', '@' or '-'", name)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	id := sha256.Sum256(der)
	now := time.Now()
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var other string
		err := tx.QueryRow(`SELECT name FROM trusted WHERE name = ? OR key_id = ?`, name, id[:]).Scan(&other)
		if err == nil {
			if other == name {
				return fmt.Errorf("sender %q %w", name, ErrExists)
			}
			return fmt.Errorf("this key is already trusted as %q: %w", other, ErrExists)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		_, err = tx.Exec(`INSERT INTO trusted (name, key_id, spki, added_ms) VALUES (?, ?, ?, ?)`, name, id[:], der, now.UnixMilli())
		return err
	})
	if err != nil {
		return nil, err
	}
	return &Trusted{Name: name, KeyID: id, Public: pub, Added: now}, nil
}

// RemoveTrusted stops trusting name. The ledger keeps its entries.
func (s *Store) RemoveTrusted(ctx context.Context, name string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM trusted WHERE name = ?`, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("trusted sender %q %w", name, ErrNotFound)
		}
		return nil
	})
}

func scanTrusted(name string, id, der []byte, added int64) (*Trusted, error) {
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("trusted sender %q: stored key unreadable: %w", name, err)
	}
	if sha256.Sum256(der) != [32]byte(id) {
		return nil, fmt.Errorf("trusted sender %q: stored key does not match its identifier", name)
	}
	return &Trusted{Name: name, KeyID: [32]byte(id), Public: pub, Added: time.UnixMilli(added)}, nil
}

// ListTrusted returns the trusted senders by name.
func (s *Store) ListTrusted(ctx context.Context) ([]*Trusted, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, key_id, spki, added_ms FROM trusted ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Trusted
	for rows.Next() {
		var name string
		var id, der []byte
		var added int64
		if err := rows.Scan(&name, &id, &der, &added); err != nil {
			return nil, err
		}
		t, err := scanTrusted(name, id, der, added)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// LookupTrusted returns the trusted sender with key identifier id, or an
// error wrapping ErrNotFound.
func (s *Store) LookupTrusted(ctx context.Context, id [32]byte) (*Trusted, error) {
	var name string
	var kid, der []byte
	var added int64
	err := s.db.QueryRowContext(ctx, `SELECT name, key_id, spki, added_ms FROM trusted WHERE key_id = ?`, id[:]).Scan(&name, &kid, &der, &added)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sender %x: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return scanTrusted(name, kid, der, added)
}

// Accept records serial of (keyID, stream) in the ledger, or refuses it
// with a *ReplayError. senderName is used in the error message only.
// Nothing is changed when it refuses.
func (s *Store) Accept(ctx context.Context, keyID [32]byte, stream, serial uint64, window uint64, senderName string, now time.Time) error {
	return s.AcceptBatch(ctx, []AcceptItem{{KeyID: keyID, Stream: stream, Serial: serial, Name: senderName}}, window, now)[0]
}

// AcceptItem is one envelope for AcceptBatch.
type AcceptItem struct {
	KeyID  [32]byte
	Stream uint64
	Serial uint64
	Name   string // for the error message only
}

// AcceptBatch records several serials in one transaction, in order, so a
// batch costs one commit (one fsync). It returns one error per item: nil
// when recorded, a *ReplayError when refused (that item changes nothing),
// or, for every item, the error that made the transaction fail.
func (s *Store) AcceptBatch(ctx context.Context, items []AcceptItem, window uint64, now time.Time) []error {
	if window == 0 {
		window = DefaultWindow
	}
	errs := make([]error, len(items))
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for i, it := range items {
			refusal, err := acceptOne(tx, it, window, now)
			if err != nil {
				return err
			}
			if refusal != nil {
				errs[i] = refusal
			}
		}
		return nil
	})
	if err != nil {
		for i := range errs {
			errs[i] = fmt.Errorf("recording in the replay ledger: %w", err)
		}
	}
	return errs
}

// acceptOne applies the window to one item inside tx. A refusal is
// returned as the first result and leaves the database as it was.
func acceptOne(tx *sql.Tx, it AcceptItem, window uint64, now time.Time) (*ReplayError, error) {
	keyID, stream, serial := it.KeyID, it.Stream, it.Serial
	// The stream id is any u64 (FORMAT.md): it is only compared, and is
	// stored as its int64 bit pattern.
	if serial == 0 || serial > MaxSerial {
		return &ReplayError{Serial: serial, Sender: it.Name, TooOld: true}, nil
	}
	var highest, floor int64
	err := tx.QueryRow(`SELECT highest, floor FROM streams WHERE key_id = ? AND stream_id = ?`, keyID[:], int64(stream)).Scan(&highest, &floor)
	fresh := errors.Is(err, sql.ErrNoRows)
	if err != nil && !fresh {
		return nil, err
	}
	h := uint64(highest)
	switch {
	case fresh:
		if _, err := tx.Exec(`INSERT INTO streams (key_id, stream_id, highest, last_ms) VALUES (?, ?, ?, ?)`,
			keyID[:], int64(stream), int64(serial), now.UnixMilli()); err != nil {
			return nil, err
		}
	case serial > h:
		if _, err := tx.Exec(`UPDATE streams SET highest = ?, last_ms = ? WHERE key_id = ? AND stream_id = ?`,
			int64(serial), now.UnixMilli(), keyID[:], int64(stream)); err != nil {
			return nil, err
		}
		if serial >= window {
			// Forget the serials below this call's window, and
			// remember that they are forgotten: a later call with a
			// wider window must not take them for unseen.
			if _, err := tx.Exec(`DELETE FROM accepted WHERE key_id = ? AND stream_id = ? AND serial <= ?`,
				keyID[:], int64(stream), int64(serial-window)); err != nil {
				return nil, err
			}
			if _, err := tx.Exec(`UPDATE streams SET floor = MAX(floor, ?) WHERE key_id = ? AND stream_id = ?`,
				int64(serial-window), keyID[:], int64(stream)); err != nil {
				return nil, err
			}
		}
	case serial <= uint64(floor), h >= window && serial <= h-window:
		return &ReplayError{Serial: serial, Sender: it.Name, TooOld: true, Highest: h}, nil
	default:
		var at int64
		err := tx.QueryRow(`SELECT at_ms FROM accepted WHERE key_id = ? AND stream_id = ? AND serial = ?`,
			keyID[:], int64(stream), int64(serial)).Scan(&at)
		if err == nil {
			return &ReplayError{Serial: serial, Sender: it.Name, AcceptedAt: time.UnixMilli(at)}, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return nil, err
		}
		if _, err := tx.Exec(`UPDATE streams SET last_ms = ? WHERE key_id = ? AND stream_id = ?`,
			now.UnixMilli(), keyID[:], int64(stream)); err != nil {
			return nil, err
		}
	}
	_, err = tx.Exec(`INSERT INTO accepted (key_id, stream_id, serial, at_ms) VALUES (?, ?, ?, ?)`,
		keyID[:], int64(stream), int64(serial), now.UnixMilli())
	return nil, err
}

// LedgerEntry summarises one (sender, stream) of the ledger.
type LedgerEntry struct {
	Name         string // trusted name, empty if no longer trusted
	KeyID        [32]byte
	StreamID     uint64
	Highest      uint64
	Occupancy    int // serials recorded within the window
	LastAccepted time.Time
}

// KeyIDHex is the key identifier in hex.
func (e *LedgerEntry) KeyIDHex() string { return hex.EncodeToString(e.KeyID[:]) }

// Ledger lists the ledger's entries.
func (s *Store) Ledger(ctx context.Context) ([]*LedgerEntry, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT COALESCE(t.name, ''), s.key_id, s.stream_id, s.highest, s.last_ms,
		       (SELECT COUNT(*) FROM accepted a WHERE a.key_id = s.key_id AND a.stream_id = s.stream_id)
		FROM streams s LEFT JOIN trusted t ON t.key_id = s.key_id
		ORDER BY 1, s.key_id, s.stream_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*LedgerEntry
	for rows.Next() {
		e := &LedgerEntry{}
		var id []byte
		var st, hi, last int64
		if err := rows.Scan(&e.Name, &id, &st, &hi, &last, &e.Occupancy); err != nil {
			return nil, err
		}
		e.KeyID, e.StreamID, e.Highest, e.LastAccepted = [32]byte(id), uint64(st), uint64(hi), time.UnixMilli(last)
		out = append(out, e)
	}
	return out, rows.Err()
}

// Forget removes every ledger entry of the trusted sender name. After it,
// that sender's old envelopes would be accepted again: a deliberate act.
func (s *Store) Forget(ctx context.Context, name string) (int, error) {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var id []byte
		if err := tx.QueryRow(`SELECT key_id FROM trusted WHERE name = ?`, name).Scan(&id); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				b, herr := hex.DecodeString(name)
				if herr != nil || len(b) != 32 {
					return fmt.Errorf("trusted sender %q %w", name, ErrNotFound)
				}
				id = b
			} else {
				return err
			}
		}
		res, err := tx.Exec(`DELETE FROM streams WHERE key_id = ?`, id)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		_, err = tx.Exec(`DELETE FROM accepted WHERE key_id = ?`, id)
		return err
	})
	return int(n), err
}
