package state

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Health is what [Check] found in a state directory.
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

// ErrUnhealthy is matched (errors.Is) by every problem [Check] reports.
var ErrUnhealthy = errors.New("state directory unhealthy")

// healthProblem is one problem; its message says what is wrong on its own.
type healthProblem struct{ msg string }

func (e *healthProblem) Error() string        { return e.msg }
func (e *healthProblem) Is(target error) bool { return target == ErrUnhealthy }

func (h *Health) problem(format string, a ...any) {
	h.Problems = append(h.Problems, &healthProblem{fmt.Sprintf(format, a...)})
}

// Check examines the state directory dir without creating anything: it
// must be a directory of mode 0700 holding state.db of mode 0600 (and
// its -wal and -shm files, if any, no looser); the database must open,
// pass PRAGMA quick_check, and its serial counters, trusted senders and
// ledger must read back. A directory or database that does not exist yet
// is a note, not a problem: [Open] creates them on first use.
func Check(ctx context.Context, dir string) *Health {
	h := &Health{Dir: dir}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		h.Notes = append(h.Notes, fmt.Sprintf("state directory %s does not exist yet: it is created (mode 0700) on first use", dir))
		return h
	case err != nil:
		h.problem("state directory %s: %v", dir, unwrapPath(err))
		return h
	case !fi.IsDir():
		h.problem("state directory %s is not a directory", dir)
		return h
	}
	h.Exists, h.DirMode = true, fi.Mode().Perm()
	if h.DirMode != 0o700 {
		h.problem("state directory %s has mode %04o, want 0700 (chmod 700 %s)", dir, h.DirMode, dir)
	}
	db := filepath.Join(dir, "state.db")
	fi, err = os.Lstat(db)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		h.Notes = append(h.Notes, fmt.Sprintf("no state database in %s yet: it is created (mode 0600) on first use", dir))
		return h
	case err != nil:
		h.problem("state database %s: %v", db, unwrapPath(err))
		return h
	case !fi.Mode().IsRegular():
		h.problem("state database %s is not a regular file", db)
		return h
	}
	h.DBExists, h.DBMode = true, fi.Mode().Perm()
	if h.DBMode != 0o600 {
		h.problem("state database %s has mode %04o, want 0600 (chmod 600 %s)", db, h.DBMode, db)
	}
	for _, side := range []string{db + "-wal", db + "-shm"} {
		if fi, err := os.Lstat(side); err == nil && fi.Mode().Perm()&0o077 != 0 {
			h.problem("%s has mode %04o: others may read it (chmod 600 %s)", side, fi.Mode().Perm(), side)
		}
	}

	s, err := Open(dir)
	if err != nil {
		h.problem("the ledger does not open: %v", err)
		return h
	}
	defer s.Close()
	h.Opens = true
	if err := s.db.QueryRowContext(ctx, `PRAGMA quick_check`).Scan(&h.QuickCheck); err != nil {
		h.problem("state database %s: quick_check: %v", db, err)
	} else if h.QuickCheck != "ok" {
		h.problem("state database %s is damaged: quick_check says %q", db, h.QuickCheck)
	}
	if n, err := s.checkCounters(ctx); err != nil {
		h.problem("serial counters in %s cannot be read: %v", db, err)
	} else {
		h.CountersReadable, h.Counters = true, n
	}
	if ts, err := s.ListTrusted(ctx); err != nil {
		h.problem("trusted senders in %s cannot be read: %v", db, err)
	} else {
		h.Trusted = len(ts)
	}
	if es, err := s.Ledger(ctx); err != nil {
		h.problem("the replay ledger in %s cannot be read: %v", db, err)
	} else {
		h.Streams = len(es)
	}
	return h
}

// checkCounters reads every serial counter and checks it is well formed:
// a 32-byte key identifier and a serial within range.
func (s *Store) checkCounters(ctx context.Context) (int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT key_id, stream_id, last FROM counters`)
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
		if len(id) != 32 || last < 0 {
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
