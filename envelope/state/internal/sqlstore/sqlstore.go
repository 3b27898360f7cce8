// Package sqlstore implements [state.Store] once over database/sql, for
// both SQLite and PostgreSQL: the statements are written in the SQL the
// two share ($N parameters, INSERT … ON CONFLICT, RETURNING), and a
// [Dialect] supplies what differs — how a write transaction starts and is
// retried, and whether a stream's row is locked before it is read.
package sqlstore

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/tokenseal/tokenseal/envelope/state"
)

// Dialect is what differs between the databases.
type Dialect struct {
	// Tx runs f in one write transaction and commits it, running it
	// again (a bounded number of times) when the database says it may.
	Tx func(ctx context.Context, db *sql.DB, f func(*sql.Tx) error) error
	// LockStreams: the rows of the streams a batch touches are created
	// if missing and locked (SELECT … FOR UPDATE), in one order, before
	// they are read. SQLite needs none: a write transaction holds the
	// whole database.
	LockStreams bool
	// PrefetchSeen: the accepted rows a batch may need are read with one
	// query per stream (serial = ANY($3), an array parameter) rather than
	// one query per serial: on a server, round trips are what costs.
	PrefetchSeen bool
}

// Store is a [state.Store] on a database/sql database holding the
// tokenseal schema (tables counters, trusted, streams, accepted,
// rewrapped).
type Store struct {
	DB *sql.DB
	D  Dialect
}

var _ state.Store = (*Store)(nil)

// zero is serial 0 as stored: the highest serial of a stream row made by
// LockStreams before anything was accepted in it.
var zero = state.SerialToSQL(0)

func (s *Store) tx(ctx context.Context, f func(*sql.Tx) error) error {
	return s.D.Tx(ctx, s.DB, f)
}

// RunOnce runs f in one transaction with opts and commits it, or rolls
// it back if f fails.
func RunOnce(ctx context.Context, db *sql.DB, opts *sql.TxOptions, f func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, opts)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Close closes the database.
func (s *Store) Close() error { return s.DB.Close() }

// NextSerial implements [state.Store]: one upsert, atomic in both
// databases. A new key gets a random stream id.
func (s *Store) NextSerial(ctx context.Context, keyID [32]byte) (stream, serial uint64, err error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, 0, err
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var st, last int64
		err := tx.QueryRowContext(ctx, `INSERT INTO counters (key_id, stream_id, last) VALUES ($1, $2, $3)
			ON CONFLICT (key_id) DO UPDATE SET last = counters.last + 1 WHERE counters.last < $4
			RETURNING stream_id, last`,
			keyID[:], int64(binary.BigEndian.Uint64(b[:])), state.SerialToSQL(1), int64(math.MaxInt64)).Scan(&st, &last)
		if errors.Is(err, sql.ErrNoRows) {
			return state.ErrCounterExhausted
		}
		stream, serial = uint64(st), state.SerialFromSQL(last)
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("reserving a serial number: %w", err)
	}
	return stream, serial, nil
}

// AddTrusted implements [state.Store].
func (s *Store) AddTrusted(ctx context.Context, name string, pub crypto.PublicKey) (*state.Trusted, error) {
	if !state.ValidName(name) {
		return nil, fmt.Errorf("invalid sender name %q: use 1 to 64 letters, digits, '.', '_', '@' or '-'", name)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	t := &state.Trusted{Name: name, KeyID: state.KeyIDOf(der), Public: pub, Added: time.UnixMilli(time.Now().UnixMilli())}
	err = s.tx(ctx, func(tx *sql.Tx) error { return addTrusted(ctx, tx, t, der) })
	if err != nil {
		return nil, err
	}
	return t, nil
}

// addTrusted inserts t unless its name or key is taken (ErrExists).
func addTrusted(ctx context.Context, tx *sql.Tx, t *state.Trusted, der []byte) error {
	res, err := tx.ExecContext(ctx, `INSERT INTO trusted (name, key_id, spki, added_ms) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
		t.Name, t.KeyID[:], der, t.Added.UnixMilli())
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	var other string
	if err := tx.QueryRowContext(ctx, `SELECT name FROM trusted WHERE name = $1 OR key_id = $2`, t.Name, t.KeyID[:]).Scan(&other); err != nil {
		return err
	}
	if other == t.Name {
		return fmt.Errorf("sender %q %w", t.Name, state.ErrExists)
	}
	return fmt.Errorf("this key is already trusted as %q: %w", other, state.ErrExists)
}

// RemoveTrusted implements [state.Store].
func (s *Store) RemoveTrusted(ctx context.Context, name string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM trusted WHERE name = $1`, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("trusted sender %q %w", name, state.ErrNotFound)
		}
		return nil
	})
}

func scanTrusted(name string, id, der []byte, added int64) (*state.Trusted, error) {
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("trusted sender %q: stored key unreadable: %w", name, err)
	}
	if len(id) != 32 || state.KeyIDOf(der) != [32]byte(id) {
		return nil, fmt.Errorf("trusted sender %q: stored key does not match its identifier", name)
	}
	return &state.Trusted{Name: name, KeyID: [32]byte(id), Public: pub, Added: time.UnixMilli(added)}, nil
}

// ListTrusted implements [state.Store].
func (s *Store) ListTrusted(ctx context.Context) ([]*state.Trusted, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT name, key_id, spki, added_ms FROM trusted ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*state.Trusted
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

// LookupTrusted implements [state.Store].
func (s *Store) LookupTrusted(ctx context.Context, id [32]byte) (*state.Trusted, error) {
	var name string
	var kid, der []byte
	var added int64
	err := s.DB.QueryRowContext(ctx, `SELECT name, key_id, spki, added_ms FROM trusted WHERE key_id = $1`, id[:]).Scan(&name, &kid, &der, &added)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sender %x: %w", id, state.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return scanTrusted(name, kid, der, added)
}

// Accepted implements [state.Store].
func (s *Store) Accepted(ctx context.Context, keyID [32]byte, stream, serial uint64) (*state.Acceptance, error) {
	var at int64
	var digest []byte
	err := s.DB.QueryRowContext(ctx, `SELECT at_ms, digest FROM accepted WHERE key_id = $1 AND stream_id = $2 AND serial = $3`,
		keyID[:], int64(stream), state.SerialToSQL(serial)).Scan(&at, &digest)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("serial %d of stream %d from %x: %w", serial, stream, keyID, state.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	a := &state.Acceptance{KeyID: keyID, Stream: stream, Serial: serial, At: time.UnixMilli(at)}
	copy(a.Digest[:], digest)
	return a, nil
}

// Ledger implements [state.Store].
func (s *Store) Ledger(ctx context.Context) ([]*state.LedgerEntry, error) {
	rows, err := s.DB.QueryContext(ctx, `
		SELECT COALESCE(t.name, ''), s.key_id, s.stream_id, s.highest, s.last_ms,
		       (SELECT COUNT(*) FROM accepted a WHERE a.key_id = s.key_id AND a.stream_id = s.stream_id AND a.serial > s.floor)
		FROM streams s LEFT JOIN trusted t ON t.key_id = s.key_id
		WHERE s.highest <> $1`, zero)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*state.LedgerEntry
	for rows.Next() {
		e := &state.LedgerEntry{}
		var id []byte
		var st, hi, last int64
		if err := rows.Scan(&e.Name, &id, &st, &hi, &last, &e.Occupancy); err != nil {
			return nil, err
		}
		if len(id) != 32 {
			return nil, fmt.Errorf("malformed ledger row: key id of %d bytes", len(id))
		}
		e.KeyID, e.StreamID, e.Highest, e.LastAccepted = [32]byte(id), uint64(st), state.SerialFromSQL(hi), time.UnixMilli(last)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(out, compareEntries)
	return out, nil
}

// compareEntries orders the ledger by name, key id, stream.
func compareEntries(a, b *state.LedgerEntry) int {
	switch {
	case a.Name != b.Name:
		if a.Name < b.Name {
			return -1
		}
		return 1
	case a.KeyID != b.KeyID:
		return slices.Compare(a.KeyID[:], b.KeyID[:])
	case a.StreamID < b.StreamID:
		return -1
	case a.StreamID > b.StreamID:
		return 1
	}
	return 0
}

// Forget implements [state.Store].
func (s *Store) Forget(ctx context.Context, sender string, streams ...uint64) (int, error) {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var id []byte
		err := tx.QueryRowContext(ctx, `SELECT key_id FROM trusted WHERE name = $1`, sender).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			b, herr := hex.DecodeString(sender)
			if herr != nil || len(b) != 32 {
				return fmt.Errorf("trusted sender %q %w (give a trusted name or a 64-hex-digit key id)", sender, state.ErrNotFound)
			}
			id, err = b, nil
		}
		if err != nil {
			return err
		}
		n = 0
		if len(streams) == 0 {
			return forgetStreams(ctx, tx, &n, `key_id = $1`, id)
		}
		for _, st := range streams {
			if err := forgetStreams(ctx, tx, &n, `key_id = $1 AND stream_id = $2`, id, int64(st)); err != nil {
				return err
			}
		}
		return nil
	})
	return int(n), err
}

// forgetStreams deletes the streams and accepted rows matching where,
// adding the streams that held an accepted serial to n.
func forgetStreams(ctx context.Context, tx *sql.Tx, n *int64, where string, args ...any) error {
	res, err := tx.ExecContext(ctx, `DELETE FROM streams WHERE `+where+` AND highest <> `+fmt.Sprint(zero), args...)
	if err != nil {
		return err
	}
	k, err := res.RowsAffected()
	if err != nil {
		return err
	}
	*n += k
	if _, err := tx.ExecContext(ctx, `DELETE FROM streams WHERE `+where, args...); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `DELETE FROM accepted WHERE `+where, args...)
	return err
}

// RecordRewrap implements [state.Store].
func (s *Store) RecordRewrap(ctx context.Context, keyID [32]byte, stream, serial uint64, now time.Time) (*state.Rewrap, bool, error) {
	rec := &state.Rewrap{KeyID: keyID, Stream: stream, Serial: serial, At: time.UnixMilli(now.UnixMilli())}
	var first bool
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO rewrapped (key_id, stream_id, serial, at_ms) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
			keyID[:], int64(stream), state.SerialToSQL(serial), now.UnixMilli())
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if first = n == 1; first || err != nil {
			return err
		}
		var at int64
		err = tx.QueryRowContext(ctx, `SELECT at_ms FROM rewrapped WHERE key_id = $1 AND stream_id = $2 AND serial = $3`,
			keyID[:], int64(stream), state.SerialToSQL(serial)).Scan(&at)
		rec.At = time.UnixMilli(at)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("recording the rewrapped original: %w", err)
	}
	return rec, first, nil
}
