// Package postgres is the [state.Store] a fleet of hosts shares: the
// serial counters, trusted senders and replay ledger in a PostgreSQL
// database (through github.com/jackc/pgx/v5), so that an envelope is
// accepted once across every host that opens with it, and hosts signing
// with one key draw their serials from one stream.
//
// # Connecting
//
// [Open] takes what libpq takes: a postgres:// (or postgresql://) URL or
// a key=value connection string, with libpq's environment variables
// (PGHOST, PGUSER, PGPASSWORD, PGSSLMODE…) and password file (PGPASSFILE,
// else ~/.pgpass) filling in what it leaves out, and sslmode honoured
// (libpq's default, prefer, tries TLS first). The tables live in the
// schema "tokenseal" (search_path is set to it). Unless the connection
// string says otherwise, connecting gives up after 10 s, and the server
// ends a session left idle inside a transaction for 30 s, so a stopped
// client cannot hold the ledger's locks.
//
// # Exactly once
//
// Accepting a batch is one READ COMMITTED transaction that first locks
// the row of every (sender key, stream) the batch touches — created if
// missing with INSERT … ON CONFLICT DO NOTHING, then SELECT … FOR UPDATE,
// in key order, so two batches never deadlock — and only then reads the
// window, decides with [state.Window.Admit] and writes. Batches on one
// stream take turns; batches on different streams run in parallel. The
// accepted serials' primary key is a second guard: two writers can never
// both record one serial. A SERIALIZABLE variant with bounded retries
// ([Options].Serializable) exists for measurement; see docs/fleet.md for
// the figures that made row locks the default.
//
// # Failing closed
//
// A lost connection, a server restart, a timeout: the transaction is not
// committed, nothing is recorded, and the error is returned (the caller
// releases no output). If the connection is lost during COMMIT itself,
// the batch may have been recorded without the caller knowing: its
// envelopes then count as accepted and are refused as replays later,
// never accepted twice.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/tokenseal/tokenseal/envelope/state"
	"github.com/tokenseal/tokenseal/envelope/state/internal/sqlstore"
)

// Options changes how a Store works; the zero value is the default.
type Options struct {
	// Serializable runs AcceptBatch as a SERIALIZABLE transaction without
	// row locks, retried up to Retries times on serialization failures,
	// instead of locking the streams' rows.
	Serializable bool
	Retries      int // 0: 10
	// Stats, when set, counts retried and abandoned transactions.
	Stats *Stats
}

// Stats counts what the retry loop did, for measurements.
type Stats struct {
	Retries atomic.Int64 // transactions run again
	GaveUp  atomic.Int64 // transactions abandoned after the last attempt
}

// Store is an open PostgreSQL state database.
type Store struct {
	*sqlstore.Store
	where string // the connection string without any password, for messages
}

// IsSpec reports whether s names a PostgreSQL database (a postgres:// or
// postgresql:// URL, or a key=value connection string) rather than a
// state directory.
func IsSpec(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") || kvSpec.MatchString(s)
}

var kvSpec = regexp.MustCompile(`^\s*[a-z_]+\s*=`)

// HasPassword reports whether the connection string s carries a
// password itself.
func HasPassword(s string) bool {
	if u, err := url.Parse(s); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		_, ok := u.User.Password()
		return ok || u.Query().Has("password")
	}
	return kvPassword.MatchString(s)
}

var kvPassword = regexp.MustCompile(`(^|\s)password\s*=`)

// Redact returns s without a password, for messages.
func Redact(s string) string {
	if u, err := url.Parse(s); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		if _, ok := u.User.Password(); ok {
			u.User = url.User(u.User.Username())
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	return kvPasswordValue.ReplaceAllString(s, "${1}password=xxxxx")
}

var kvPasswordValue = regexp.MustCompile(`(^|\s)password\s*=\s*('(\\.|[^'])*'|\S*)`)

// Open connects to the database spec and checks its schema, creating it
// in a database that has none. A schema of another version is refused
// (see [Migrate]).
func Open(ctx context.Context, spec string, opts Options) (*Store, error) {
	s, v, err := open(ctx, spec, opts, true)
	if err != nil {
		return nil, err
	}
	if err := state.CheckVersion(v, "state database "+s.where); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Migrate brings the database spec to the current schema, creating it if
// needed, and returns its version before and after.
func Migrate(ctx context.Context, spec string) (from, to int, err error) {
	s, v, err := open(ctx, spec, Options{}, false)
	if err != nil {
		return 0, 0, err
	}
	defer s.Close()
	if v == 0 {
		if _, err := s.create(ctx); err != nil {
			return 0, 0, fmt.Errorf("state database %s: %w", s.where, err)
		}
	}
	if v > state.SchemaVersion {
		return v, v, state.CheckVersion(v, "state database "+s.where)
	}
	if v != 0 && v < state.SchemaVersion {
		// Version 2 is the first PostgreSQL schema: nothing older exists.
		return v, v, fmt.Errorf("%w: state database %s has schema version %d, which no tokenseal wrote for PostgreSQL", state.ErrSchema, s.where, v)
	}
	return v, state.SchemaVersion, nil
}

// open connects and returns the schema version, creating the schema in
// an empty database when create is set.
func open(ctx context.Context, spec string, opts Options, create bool) (*Store, int, error) {
	where := Redact(spec)
	cfg, err := pgx.ParseConfig(spec)
	if err != nil {
		return nil, 0, fmt.Errorf("state database %s: %w", where, err)
	}
	cfg.RuntimeParams["search_path"] = "tokenseal"
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "tokenseal"
	}
	if _, ok := cfg.RuntimeParams["idle_in_transaction_session_timeout"]; !ok && !strings.Contains(cfg.RuntimeParams["options"], "idle_in_transaction_session_timeout") {
		cfg.RuntimeParams["idle_in_transaction_session_timeout"] = "30000"
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(2)
	s := &Store{Store: &sqlstore.Store{DB: db, D: dialect(opts)}, where: where}
	v, err := s.version(ctx)
	if err == nil && v == 0 && create {
		v, err = s.create(ctx)
	}
	if err != nil {
		db.Close()
		return nil, 0, fmt.Errorf("state database %s: %w", where, err)
	}
	return s, v, nil
}

// dialect is how transactions run on PostgreSQL.
func dialect(opts Options) sqlstore.Dialect {
	iso, attempts := sql.LevelReadCommitted, 5
	if opts.Serializable {
		iso, attempts = sql.LevelSerializable, 10
		if opts.Retries > 0 {
			attempts = opts.Retries
		}
	}
	return sqlstore.Dialect{
		LockStreams:  !opts.Serializable,
		PrefetchSeen: true,
		Tx: func(ctx context.Context, db *sql.DB, f func(*sql.Tx) error) error {
			err := runTx(ctx, db, &sql.TxOptions{Isolation: iso}, attempts, opts.Stats, f)
			return err
		},
	}
}

// runTx runs f in a transaction, again after a serialization failure or
// a deadlock (at most attempts times, with a growing random pause).
func runTx(ctx context.Context, db *sql.DB, opts *sql.TxOptions, attempts int, stats *Stats, f func(*sql.Tx) error) error {
	var err error
	for attempt := 0; attempt < attempts; attempt++ {
		if attempt > 0 {
			if stats != nil {
				stats.Retries.Add(1)
			}
			pause := time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 7)))
			select {
			case <-time.After(pause):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err = sqlstore.RunOnce(ctx, db, opts, f); !Retryable(err) {
			return err
		}
	}
	if stats != nil {
		stats.GaveUp.Add(1)
	}
	return fmt.Errorf("gave up after %d attempts: %w", attempts, err)
}

// Retryable reports whether err is a serialization failure, a deadlock
// or a unique violation (two transactions recording one serial, which
// SERIALIZABLE reports that way when neither read the row first): the
// transaction changed nothing and may run again, and will then see what
// the other committed.
func Retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01" || pe.Code == "23505")
}

// Where is the database, as given without any password.
func (s *Store) Where() string { return s.where }
