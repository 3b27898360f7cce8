package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/tokenseal/tokenseal/envelope/state"
)

// Check examines the state directory dir without creating anything: it
// must be a private directory (as [Open] requires: the user's, no group
// or other permissions, not a symbolic link) holding state.db (and its
// -wal and -shm files, if any) just as private; the database must open,
// pass PRAGMA quick_check, and its serial counters, trusted senders and
// ledger must read back. A directory or database that does not exist yet
// is a note, not a problem: [Open] creates them on first use.
func Check(ctx context.Context, dir string) *state.Health {
	h := &state.Health{Dir: dir}
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		h.Notes = append(h.Notes, fmt.Sprintf("state directory %s does not exist yet: it is created (mode 0700) on first use", dir))
		return h
	case err != nil:
		h.Problem("state directory %s: %v", dir, unwrapPath(err))
		return h
	}
	if err := privateProblem("state directory", dir, fi, true); err != nil {
		h.Problem("%v", err)
		return h
	}
	h.Exists, h.DirMode = true, fi.Mode().Perm()
	db := filepath.Join(dir, "state.db")
	fi, err = os.Lstat(db)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		h.Notes = append(h.Notes, fmt.Sprintf("no state database in %s yet: it is created (mode 0600) on first use", dir))
		return h
	case err != nil:
		h.Problem("state database %s: %v", db, unwrapPath(err))
		return h
	}
	if err := privateProblem("state database", db, fi, false); err != nil {
		h.Problem("%v", err)
		return h
	}
	h.DBExists, h.DBMode = true, fi.Mode().Perm()
	if err := checkSideFiles(db); err != nil {
		h.Problem("%v", err)
		return h
	}

	s, err := Open(dir)
	if err != nil {
		h.Problem("the ledger does not open: %v", err)
		return h
	}
	defer s.Close()
	h.Opens = true
	if err := s.DB.QueryRowContext(ctx, `PRAGMA quick_check`).Scan(&h.QuickCheck); err != nil {
		h.Problem("state database %s: quick_check: %v", db, err)
	} else if h.QuickCheck != "ok" {
		h.Problem("state database %s is damaged: quick_check says %q", db, h.QuickCheck)
	}
	if n, err := s.checkCounters(ctx); err != nil {
		h.Problem("serial counters in %s cannot be read: %v", db, err)
	} else {
		h.CountersReadable, h.Counters = true, n
	}
	if ts, err := s.ListTrusted(ctx); err != nil {
		h.Problem("trusted senders in %s cannot be read: %v", db, err)
	} else {
		h.Trusted = len(ts)
	}
	if es, err := s.Ledger(ctx); err != nil {
		h.Problem("the replay ledger in %s cannot be read: %v", db, err)
	} else {
		h.Streams = len(es)
	}
	return h
}

// checkCounters reads every serial counter and checks it is well formed:
// a 32-byte key identifier and a serial within range.
func (s *Store) checkCounters(ctx context.Context) (int, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT key_id, stream_id, last FROM counters`)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id []byte
		var stream, last int64
		if err := rows.Scan(&id, &stream, &last); err != nil {
			return n, err
		}
		if len(id) != 32 {
			return n, fmt.Errorf("malformed counter row %d", n+1)
		}
		n++
	}
	return n, rows.Err()
}

// unwrapPath drops the *fs.PathError wrapper, whose path the caller
// already names.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
