package postgres

import (
	"context"
	"database/sql"
	"strings"

	"github.com/tokenseal/tokenseal/envelope/state"
)

// schema is the current schema, version 2 (the same tables as SQLite's
// version 2; serials stored as state.SerialToSQL). The version is the one
// row of tokenseal.schema_version.
const schema = `
CREATE SCHEMA IF NOT EXISTS tokenseal;
CREATE TABLE tokenseal.schema_version (version integer NOT NULL);
INSERT INTO tokenseal.schema_version VALUES (2);
CREATE TABLE tokenseal.counters (
	key_id     bytea PRIMARY KEY,
	stream_id  bigint NOT NULL,
	last       bigint NOT NULL
);
CREATE TABLE tokenseal.trusted (
	name       text PRIMARY KEY,
	key_id     bytea NOT NULL UNIQUE,
	spki       bytea NOT NULL,
	added_ms   bigint NOT NULL
);
CREATE TABLE tokenseal.streams (
	key_id     bytea NOT NULL,
	stream_id  bigint NOT NULL,
	highest    bigint NOT NULL,
	last_ms    bigint NOT NULL,
	floor      bigint NOT NULL,
	PRIMARY KEY (key_id, stream_id)
);
CREATE TABLE tokenseal.accepted (
	key_id     bytea NOT NULL,
	stream_id  bigint NOT NULL,
	serial     bigint NOT NULL,
	at_ms      bigint NOT NULL,
	digest     bytea,
	PRIMARY KEY (key_id, stream_id, serial)
);
CREATE TABLE tokenseal.rewrapped (
	key_id     bytea NOT NULL,
	stream_id  bigint NOT NULL,
	serial     bigint NOT NULL,
	at_ms      bigint NOT NULL,
	PRIMARY KEY (key_id, stream_id, serial)
)
`

// tables are the tables of the schema, for the privilege check.
var tables = []string{"counters", "trusted", "streams", "accepted", "rewrapped"}

// schemaLock is the advisory lock taken while the schema is made, so that
// hosts opening an empty database at once make it once.
const schemaLock = 0x746f6b656e736561 // "tokensea"

// version reads the schema version: 0 when the database has no tokenseal
// schema.
func (s *Store) version(ctx context.Context) (int, error) {
	return versionIn(ctx, s.DB)
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func versionIn(ctx context.Context, q querier) (int, error) {
	var exists bool
	if err := q.QueryRowContext(ctx, `SELECT to_regclass('tokenseal.schema_version') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var v int
	err := q.QueryRowContext(ctx, `SELECT max(version) FROM tokenseal.schema_version`).Scan(&v)
	return v, err
}

// create makes the schema unless another host made it meanwhile, and
// returns the version found or made. The advisory lock serialises the
// makers, but a waiter's catalog view may predate the schema the first
// one committed: its CREATE then fails, and the version read afresh says
// the schema is there.
func (s *Store) create(ctx context.Context) (int, error) {
	v, err := s.create1(ctx)
	if err != nil {
		if again, err2 := s.version(ctx); err2 == nil && again != 0 {
			return again, nil
		}
	}
	return v, err
}

func (s *Store) create1(ctx context.Context) (int, error) {
	v := 0
	err := runTx(ctx, s.DB, nil, 3, nil, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(schemaLock)); err != nil {
			return err
		}
		var err error
		if v, err = versionIn(ctx, tx); err != nil || v != 0 {
			return err
		}
		for _, stmt := range strings.Split(schema, ";") {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return err
			}
		}
		v = state.SchemaVersion
		return nil
	})
	return v, err
}
