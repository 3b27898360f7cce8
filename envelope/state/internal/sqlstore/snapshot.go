package sqlstore

import (
	"context"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tokenseal/tokenseal/envelope/state"
)

// Export implements [state.Store]: every row, read in one transaction.
func (s *Store) Export(ctx context.Context) (*state.Snapshot, error) {
	snap := &state.Snapshot{}
	tx, err := s.DB.BeginTx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	for _, read := range []func(context.Context, *sql.Tx, *state.Snapshot) error{
		exportCounters, exportTrusted, exportStreams, exportAccepted, exportRewraps,
	} {
		if err := read(ctx, tx, snap); err != nil {
			return nil, fmt.Errorf("reading the state: %w", err)
		}
	}
	return snap, nil
}

func exportCounters(ctx context.Context, tx *sql.Tx, snap *state.Snapshot) error {
	return each(ctx, tx, `SELECT key_id, stream_id, last FROM counters`, func(sc scanner) error {
		var c state.Counter
		var id []byte
		var st, last int64
		if err := sc.Scan(&id, &st, &last); err != nil {
			return err
		}
		c.Stream, c.Last = uint64(st), state.SerialFromSQL(last)
		return fixed(c.KeyID[:], id, func() { snap.Counters = append(snap.Counters, c) })
	})
}

func exportTrusted(ctx context.Context, tx *sql.Tx, snap *state.Snapshot) error {
	return each(ctx, tx, `SELECT name, key_id, spki, added_ms FROM trusted ORDER BY name`, func(sc scanner) error {
		var name string
		var id, der []byte
		var added int64
		if err := sc.Scan(&name, &id, &der, &added); err != nil {
			return err
		}
		t, err := scanTrusted(name, id, der, added)
		snap.Trusted = append(snap.Trusted, t)
		return err
	})
}

func exportStreams(ctx context.Context, tx *sql.Tx, snap *state.Snapshot) error {
	return each(ctx, tx, `SELECT key_id, stream_id, highest, floor, last_ms FROM streams WHERE highest <> $1`, func(sc scanner) error {
		var r state.StreamRow
		var id []byte
		var st, hi, floor, last int64
		if err := sc.Scan(&id, &st, &hi, &floor, &last); err != nil {
			return err
		}
		r.Stream, r.Highest, r.Floor, r.LastAccepted = uint64(st), state.SerialFromSQL(hi), state.SerialFromSQL(floor), time.UnixMilli(last)
		return fixed(r.KeyID[:], id, func() { snap.Streams = append(snap.Streams, r) })
	}, zero)
}

func exportAccepted(ctx context.Context, tx *sql.Tx, snap *state.Snapshot) error {
	return each(ctx, tx, `SELECT key_id, stream_id, serial, at_ms, digest FROM accepted`, func(sc scanner) error {
		var a state.Acceptance
		var id, digest []byte
		var st, serial, at int64
		if err := sc.Scan(&id, &st, &serial, &at, &digest); err != nil {
			return err
		}
		a.Stream, a.Serial, a.At = uint64(st), state.SerialFromSQL(serial), time.UnixMilli(at)
		copy(a.Digest[:], digest)
		return fixed(a.KeyID[:], id, func() { snap.Accepted = append(snap.Accepted, a) })
	})
}

func exportRewraps(ctx context.Context, tx *sql.Tx, snap *state.Snapshot) error {
	return each(ctx, tx, `SELECT key_id, stream_id, serial, at_ms FROM rewrapped`, func(sc scanner) error {
		var r state.Rewrap
		var id []byte
		var st, serial, at int64
		if err := sc.Scan(&id, &st, &serial, &at); err != nil {
			return err
		}
		r.Stream, r.Serial, r.At = uint64(st), state.SerialFromSQL(serial), time.UnixMilli(at)
		return fixed(r.KeyID[:], id, func() { snap.Rewraps = append(snap.Rewraps, r) })
	})
}

type scanner interface{ Scan(...any) error }

// each runs f on every row of q.
func each(ctx context.Context, tx *sql.Tx, q string, f func(scanner) error, args ...any) error {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := f(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// fixed copies a 32-byte key id read from the database into dst and calls
// keep, or fails on any other length.
func fixed(dst, id []byte, keep func()) error {
	if len(id) != 32 {
		return fmt.Errorf("malformed row: key id of %d bytes", len(id))
	}
	copy(dst, id)
	keep()
	return nil
}

// Import implements [state.Store] with the merge rules of
// [state.Snapshot], in one transaction.
func (s *Store) Import(ctx context.Context, snap *state.Snapshot) (*state.ImportStats, error) {
	var st *state.ImportStats
	err := s.tx(ctx, func(tx *sql.Tx) error {
		st = &state.ImportStats{}
		steps := []func(context.Context, *sql.Tx, *state.Snapshot, *state.ImportStats) error{
			importTrusted, importCounters, s.importStreams, importRows,
		}
		for _, step := range steps {
			if err := step(ctx, tx, snap, st); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

func importTrusted(ctx context.Context, tx *sql.Tx, snap *state.Snapshot, st *state.ImportStats) error {
	for _, t := range snap.Trusted {
		der, err := x509.MarshalPKIXPublicKey(t.Public)
		if err != nil {
			return err
		}
		var name string
		var id []byte
		err = tx.QueryRowContext(ctx, `SELECT name, key_id FROM trusted WHERE name = $1 OR key_id = $2`, t.Name, t.KeyID[:]).Scan(&name, &id)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if err := addTrusted(ctx, tx, t, der); err != nil {
				return err
			}
			st.Trusted++
		case err != nil:
			return err
		case name != t.Name:
			return &state.ConflictError{Msg: fmt.Sprintf("the key of %q is trusted as %q in the target", t.Name, name)}
		case [32]byte(id) != t.KeyID:
			return &state.ConflictError{Msg: fmt.Sprintf("%q is trusted with another key in the target", t.Name)}
		}
	}
	return nil
}

func importCounters(ctx context.Context, tx *sql.Tx, snap *state.Snapshot, st *state.ImportStats) error {
	for _, c := range snap.Counters {
		var stream, last int64
		err := tx.QueryRowContext(ctx, `INSERT INTO counters (key_id, stream_id, last) VALUES ($1, $2, $3)
			ON CONFLICT (key_id) DO UPDATE SET last = counters.last RETURNING stream_id, last`,
			c.KeyID[:], int64(c.Stream), state.SerialToSQL(c.Last)).Scan(&stream, &last)
		switch {
		case err != nil:
			return err
		case uint64(stream) != c.Stream:
			st.RetiredStreams = append(st.RetiredStreams, c)
		case state.SerialFromSQL(last) < c.Last:
			if _, err := tx.ExecContext(ctx, `UPDATE counters SET last = $2 WHERE key_id = $1`, c.KeyID[:], state.SerialToSQL(c.Last)); err != nil {
				return err
			}
			st.Counters++
		case state.SerialFromSQL(last) == c.Last:
			st.Counters++
		}
	}
	return nil
}

// importStreams merges each stream's window under the same locks as
// AcceptBatch.
func (s *Store) importStreams(ctx context.Context, tx *sql.Tx, snap *state.Snapshot, st *state.ImportStats) error {
	in := slices.Clone(snap.Streams)
	slices.SortFunc(in, compareStreamRows)
	var rows []state.StreamRow
	for _, r := range in {
		w, err := s.readWindow(ctx, tx, streamKey{r.KeyID, r.Stream})
		if err != nil {
			return err
		}
		if w.Highest == 0 || r.Highest > w.Highest {
			w.Highest = r.Highest
		}
		w.Floor = max(w.Floor, r.Floor)
		var last int64
		if err := tx.QueryRowContext(ctx, `SELECT last_ms FROM streams WHERE key_id = $1 AND stream_id = $2`, r.KeyID[:], int64(r.Stream)).Scan(&last); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		rows = append(rows, state.StreamRow{KeyID: r.KeyID, Stream: r.Stream, Window: w, LastAccepted: time.UnixMilli(max(last, r.LastAccepted.UnixMilli()))})
	}
	st.Streams = len(rows)
	return upsertStreams(ctx, tx, rows)
}

func importRows(ctx context.Context, tx *sql.Tx, snap *state.Snapshot, st *state.ImportStats) error {
	if err := insertAccepted(ctx, tx, snap.Accepted, true); err != nil {
		return err
	}
	st.Accepted = len(snap.Accepted)
	for _, r := range snap.Rewraps {
		if _, err := tx.ExecContext(ctx, `INSERT INTO rewrapped (key_id, stream_id, serial, at_ms) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
			r.KeyID[:], int64(r.Stream), state.SerialToSQL(r.Serial), r.At.UnixMilli()); err != nil {
			return err
		}
	}
	st.Rewraps = len(snap.Rewraps)
	return nil
}
