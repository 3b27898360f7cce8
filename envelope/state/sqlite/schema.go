package sqlite

import (
	"database/sql"
	"strings"
)

// schema is the current schema (version 2). Serials are stored as
// state.SerialToSQL; stream ids as their int64 bit pattern. accepted
// keeps every accepted envelope; those at or below a stream's floor are
// history (their digest, for re-opening), no longer part of the window.
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
	floor      INTEGER NOT NULL,
	PRIMARY KEY (key_id, stream_id)
);
CREATE TABLE IF NOT EXISTS accepted (
	key_id     BLOB NOT NULL,
	stream_id  INTEGER NOT NULL,
	serial     INTEGER NOT NULL,
	at_ms      INTEGER NOT NULL,
	digest     BLOB,
	PRIMARY KEY (key_id, stream_id, serial)
);
CREATE TABLE IF NOT EXISTS rewrapped (
	key_id     BLOB NOT NULL,
	stream_id  INTEGER NOT NULL,
	serial     INTEGER NOT NULL,
	at_ms      INTEGER NOT NULL,
	PRIMARY KEY (key_id, stream_id, serial)
);
PRAGMA user_version = 2;
`

// migration1to2: version 1 (tokenseal's first release) stored serials
// as plain integers below 2^63 and dropped accepted serials that left the
// window. Every serial becomes state.SerialToSQL(serial), i.e. serial -
// 2^63 (written so that SQLite's integers never overflow); accepted rows
// gain a digest (unknown for the old ones); rewrap records are new.
const migration1to2 = `
ALTER TABLE accepted ADD COLUMN digest BLOB;
CREATE TABLE rewrapped (
	key_id     BLOB NOT NULL,
	stream_id  INTEGER NOT NULL,
	serial     INTEGER NOT NULL,
	at_ms      INTEGER NOT NULL,
	PRIMARY KEY (key_id, stream_id, serial)
);
UPDATE counters SET last = (last - 9223372036854775807) - 1;
UPDATE streams SET highest = (highest - 9223372036854775807) - 1, floor = (floor - 9223372036854775807) - 1;
UPDATE accepted SET serial = (serial - 9223372036854775807) - 1;
PRAGMA user_version = 2;
`

// version reads the schema version: PRAGMA user_version, or 1 for a
// database of the first release (tables, no version), or 0 for an empty
// one.
func version(tx *sql.Tx) (int, error) {
	var v int
	if err := tx.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil || v != 0 {
		return v, err
	}
	var n int
	if err := tx.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'counters'`).Scan(&n); err != nil {
		return 0, err
	}
	if n > 0 {
		return 1, nil
	}
	return 0, nil
}

func create(tx *sql.Tx) error { return execAll(tx, schema) }

func migrate1to2(tx *sql.Tx) error {
	if v, err := version(tx); err != nil || v != 1 {
		return err // migrated meanwhile by another process
	}
	return execAll(tx, migration1to2)
}

// execAll runs each statement of script.
func execAll(tx *sql.Tx, script string) error {
	for _, stmt := range strings.Split(script, ";") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := tx.Exec(stmt); err != nil {
			return err
		}
	}
	return nil
}
