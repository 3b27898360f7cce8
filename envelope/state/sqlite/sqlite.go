// Package sqlite is the default [state.Store]: one SQLite database,
// state.db, in a private state directory (through database/sql and
// github.com/mattn/go-sqlite3).
//
// # Durability
//
// The database runs in WAL mode with synchronous=FULL: a transaction that
// committed survives kill -9 and power loss. Every change is one
// transaction started with BEGIN IMMEDIATE, so concurrent processes are
// serialised by SQLite's lock; a busy database is waited for (busy_timeout)
// and retried a bounded number of times.
//
// # A private directory
//
// Whoever can write the state directory decides whom tokenseal trusts and
// what it takes for a replay. [Open] checks it at every use: the
// directory and state.db (and its -wal and -shm files) must belong to the
// user, be neither group- nor world-accessible, and not be symbolic
// links; state.db is opened with O_NOFOLLOW. A refusal says which chmod or
// chown fixes it.
//
// # Schema
//
// The schema version is SQLite's PRAGMA user_version: [state.SchemaVersion]
// now. A database of tokenseal's first release has none and is version 1;
// [Migrate] brings it up to date in place, and [Open] refuses one older
// or newer than this program.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/tokenseal/tokenseal/envelope/state"
	"github.com/tokenseal/tokenseal/envelope/state/internal/sqlstore"
)

// Store is an open state directory.
type Store struct {
	*sqlstore.Store
	dir string
}

// Dir is the state directory.
func (s *Store) Dir() string { return s.dir }

// Open opens the state database in dir, creating the directory (0700)
// and the database (0600, current schema) if needed. It refuses a
// directory or database others could change, and a database whose schema
// is not the current one (see [Migrate]).
func Open(dir string) (*Store, error) {
	s, v, err := open(dir)
	if err != nil {
		return nil, err
	}
	if v == 0 {
		v = state.SchemaVersion // made just now
	}
	if err := state.CheckVersion(v, "state database "+s.path()); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Migrate brings the database in dir to the current schema (creating it
// if needed) and returns its version before and after.
func Migrate(dir string) (from, to int, err error) {
	s, v, err := open(dir)
	if err != nil {
		return 0, 0, err
	}
	defer s.Close()
	if v > state.SchemaVersion {
		return v, v, state.CheckVersion(v, "state database "+s.path())
	}
	if v == 1 {
		err = s.tx(func(tx *sql.Tx) error { return migrate1to2(tx) })
		if err != nil {
			return v, v, fmt.Errorf("state database %s: migrating from version 1: %w", s.path(), err)
		}
	}
	return v, state.SchemaVersion, nil
}

func (s *Store) path() string { return filepath.Join(s.dir, "state.db") }

func (s *Store) tx(f func(*sql.Tx) error) error {
	return s.D.Tx(context.Background(), s.DB, f)
}

// open opens the database, creating the current schema in an empty one,
// and returns its schema version as found: 0 when it made it.
func open(dir string) (*Store, int, error) {
	path, err := preparePrivate(dir)
	if err != nil {
		return nil, 0, err
	}
	if strings.ContainsAny(path, "?#") {
		return nil, 0, fmt.Errorf("state directory %q: the path must not contain '?' or '#'", dir)
	}
	q := url.Values{}
	q.Set("_busy_timeout", "10000")
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "FULL")
	q.Set("_foreign_keys", "on")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite3", path+"?"+q.Encode())
	if err != nil {
		return nil, 0, fmt.Errorf("state database: %w", err)
	}
	db.SetMaxOpenConns(1)
	s := &Store{Store: &sqlstore.Store{DB: db, D: sqlstore.Dialect{Tx: tx}}, dir: dir}
	var v int
	err = s.tx(func(tx *sql.Tx) error {
		if v, err = version(tx); err != nil || v != 0 {
			return err
		}
		return create(tx)
	})
	if err != nil {
		db.Close()
		return nil, 0, fmt.Errorf("state database %s: %w", path, err)
	}
	return s, v, nil
}

func isBusy(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.Code == sqlite3.ErrBusy || se.Code == sqlite3.ErrLocked
	}
	return false
}

// tx runs f in one immediate transaction, retrying a busy database a
// bounded number of times.
func tx(ctx context.Context, db *sql.DB, f func(*sql.Tx) error) error {
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		err = sqlstore.RunOnce(ctx, db, nil, f)
		if !isBusy(err) {
			return err
		}
		time.Sleep(time.Duration(10*(attempt+1)) * time.Millisecond)
	}
	return fmt.Errorf("state database stayed busy: %w", err)
}
