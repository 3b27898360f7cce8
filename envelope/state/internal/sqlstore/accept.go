package sqlstore

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tokenseal/tokenseal/envelope/state"
)

// streamKey names one (sender key, stream).
type streamKey struct {
	id     [32]byte
	stream uint64
}

func compareStreamKeys(a, b streamKey) int {
	if c := bytes.Compare(a.id[:], b.id[:]); c != 0 {
		return c
	}
	return cmp.Compare(a.stream, b.stream)
}

func compareStreamRows(a, b state.StreamRow) int {
	return compareStreamKeys(streamKey{a.KeyID, a.Stream}, streamKey{b.KeyID, b.Stream})
}

// batch is one AcceptBatch in memory: the windows of the streams it
// touches, as read (and locked) at its start and moved by each accepted
// item, and what it accepted.
type batch struct {
	ctx      context.Context
	tx       *sql.Tx
	windows  map[streamKey]*state.Window
	accepted map[streamKey]map[uint64]bool
	// seen holds, with PrefetchSeen, every serial of the batch the
	// database had accepted, and when.
	seen map[streamKey]map[uint64]time.Time
	rows []state.Acceptance
}

// AcceptBatch implements [state.Store]. The window of every stream the
// batch touches is read once (locked first where the dialect needs it),
// each item is decided in memory by [state.Window.Admit] — a serial
// within the window is looked up in the database, or in what this batch
// accepted — and the accepted rows and moved windows are written at the
// end: a handful of statements per batch, whatever its size.
func (s *Store) AcceptBatch(ctx context.Context, items []state.AcceptItem, window uint64, now time.Time) []error {
	errs := make([]error, len(items))
	err := s.tx(ctx, func(tx *sql.Tx) error {
		clear(errs)
		b := &batch{ctx: ctx, tx: tx, accepted: map[streamKey]map[uint64]bool{}}
		if err := s.readWindows(b, items); err != nil {
			return err
		}
		for i, it := range items {
			refusal, err := b.admit(it, window, now)
			if err != nil {
				return err
			}
			if refusal != nil {
				errs[i] = refusal
			}
		}
		return b.write(now)
	})
	if err != nil {
		for i := range errs {
			errs[i] = fmt.Errorf("recording in the replay ledger: %w", err)
		}
	}
	return errs
}

// readWindows reads the window of every stream of items, in key order;
// with LockStreams each row is first made to exist and then locked, so
// concurrent batches on one stream take turns and never deadlock.
func (s *Store) readWindows(b *batch, items []state.AcceptItem) error {
	var keys []streamKey
	for _, it := range items {
		keys = append(keys, streamKey{it.KeyID, it.Stream})
	}
	slices.SortFunc(keys, compareStreamKeys)
	keys = slices.Compact(keys)
	b.windows = make(map[streamKey]*state.Window, len(keys))
	for _, k := range keys {
		w, err := s.readWindow(b.ctx, b.tx, k)
		if err != nil {
			return err
		}
		b.windows[k] = &w
	}
	if s.D.PrefetchSeen {
		return b.prefetchSeen(items)
	}
	return nil
}

// prefetchSeen reads which serials of items each stream accepted before.
// Only serials within the window (above the floor, up to the highest) can
// have been seen as far as Admit asks, so the scan is bounded to them
// explicitly: the planner need not guess that the array is selective.
func (b *batch) prefetchSeen(items []state.AcceptItem) error {
	serials := map[streamKey][]int64{}
	for _, it := range items {
		k := streamKey{it.KeyID, it.Stream}
		if w := b.windows[k]; it.Serial > w.Floor && it.Serial <= w.Highest {
			serials[k] = append(serials[k], state.SerialToSQL(it.Serial))
		}
	}
	b.seen = map[streamKey]map[uint64]time.Time{}
	for k, list := range serials {
		m := map[uint64]time.Time{}
		b.seen[k] = m
		err := each(b.ctx, b.tx, `SELECT serial, at_ms FROM accepted
			WHERE key_id = $1 AND stream_id = $2 AND serial BETWEEN $3 AND $4 AND serial = ANY($5)`, func(sc scanner) error {
			var serial, at int64
			if err := sc.Scan(&serial, &at); err != nil {
				return err
			}
			m[state.SerialFromSQL(serial)] = time.UnixMilli(at)
			return nil
		}, k.id[:], int64(k.stream), slices.Min(list), slices.Max(list), list)
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) readWindow(ctx context.Context, tx *sql.Tx, k streamKey) (state.Window, error) {
	q := `SELECT highest, floor FROM streams WHERE key_id = $1 AND stream_id = $2`
	if s.D.LockStreams {
		q += ` FOR UPDATE`
	}
	// With locks, a missing row is made (a placeholder whose highest is 0)
	// and then locked; a row deleted by ledger forget while this waited
	// for it is not returned either, and is made again.
	for attempt := 0; ; attempt++ {
		var hi, floor int64
		err := tx.QueryRowContext(ctx, q, k.id[:], int64(k.stream)).Scan(&hi, &floor)
		switch {
		case err == nil:
			return state.Window{Highest: state.SerialFromSQL(hi), Floor: state.SerialFromSQL(floor)}, nil
		case !errors.Is(err, sql.ErrNoRows):
			return state.Window{}, err
		case !s.D.LockStreams:
			return state.Window{}, nil
		case attempt == 3:
			return state.Window{}, errors.New("a ledger stream kept disappearing while being locked")
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO streams (key_id, stream_id, highest, last_ms, floor) VALUES ($1, $2, $3, 0, $3)
			ON CONFLICT (key_id, stream_id) DO NOTHING`, k.id[:], int64(k.stream), zero); err != nil {
			return state.Window{}, err
		}
	}
}

// admit decides one item and, when it is accepted, remembers it.
func (b *batch) admit(it state.AcceptItem, window uint64, now time.Time) (*state.ReplayError, error) {
	k := streamKey{it.KeyID, it.Stream}
	w := b.windows[k]
	refusal, err := w.Admit(it.Serial, window, it.Name, func(serial uint64) (time.Time, bool, error) {
		if b.accepted[k][serial] {
			return now, true, nil
		}
		if b.seen != nil {
			at, ok := b.seen[k][serial]
			return at, ok, nil
		}
		var at int64
		err := b.tx.QueryRowContext(b.ctx, `SELECT at_ms FROM accepted WHERE key_id = $1 AND stream_id = $2 AND serial = $3`,
			k.id[:], int64(k.stream), state.SerialToSQL(serial)).Scan(&at)
		if errors.Is(err, sql.ErrNoRows) {
			return time.Time{}, false, nil
		}
		return time.UnixMilli(at), err == nil, err
	})
	if refusal != nil || err != nil {
		return refusal, err
	}
	if b.accepted[k] == nil {
		b.accepted[k] = map[uint64]bool{}
	}
	b.accepted[k][it.Serial] = true
	b.rows = append(b.rows, state.Acceptance{KeyID: it.KeyID, Stream: it.Stream, Serial: it.Serial, At: now, Digest: it.Digest})
	return nil, nil
}

// write records the accepted rows and the windows that moved.
func (b *batch) write(now time.Time) error {
	if err := insertAccepted(b.ctx, b.tx, b.rows, false); err != nil {
		return err
	}
	var rows []state.StreamRow
	for k, w := range b.windows {
		if len(b.accepted[k]) > 0 {
			rows = append(rows, state.StreamRow{KeyID: k.id, Stream: k.stream, Window: *w, LastAccepted: now})
		}
	}
	slices.SortFunc(rows, compareStreamRows)
	return upsertStreams(b.ctx, b.tx, rows)
}

// rowsPerInsert bounds the rows of one multi-row INSERT (SQLite allows
// 32766 parameters in a statement).
const rowsPerInsert = 200

// insertAccepted inserts rows; ignoreDup keeps the existing row of a
// serial recorded already (for imports) instead of failing.
func insertAccepted(ctx context.Context, tx *sql.Tx, rows []state.Acceptance, ignoreDup bool) error {
	for len(rows) > 0 {
		n := min(len(rows), rowsPerInsert)
		var q strings.Builder
		q.WriteString(`INSERT INTO accepted (key_id, stream_id, serial, at_ms, digest) VALUES `)
		args := make([]any, 0, 5*n)
		for i, r := range rows[:n] {
			if i > 0 {
				q.WriteString(", ")
			}
			fmt.Fprintf(&q, "($%d, $%d, $%d, $%d, $%d)", 5*i+1, 5*i+2, 5*i+3, 5*i+4, 5*i+5)
			var digest []byte
			if r.Digest != [32]byte{} {
				digest = r.Digest[:]
			}
			args = append(args, r.KeyID[:], int64(r.Stream), state.SerialToSQL(r.Serial), r.At.UnixMilli(), digest)
		}
		if ignoreDup {
			q.WriteString(` ON CONFLICT DO NOTHING`)
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// upsertStreams writes each row's window and last-accepted time.
func upsertStreams(ctx context.Context, tx *sql.Tx, rows []state.StreamRow) error {
	for _, r := range rows {
		if _, err := tx.ExecContext(ctx, `INSERT INTO streams (key_id, stream_id, highest, last_ms, floor) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (key_id, stream_id) DO UPDATE SET highest = excluded.highest, last_ms = excluded.last_ms, floor = excluded.floor`,
			r.KeyID[:], int64(r.Stream), state.SerialToSQL(r.Highest), r.LastAccepted.UnixMilli(), state.SerialToSQL(r.Floor)); err != nil {
			return err
		}
	}
	return nil
}
