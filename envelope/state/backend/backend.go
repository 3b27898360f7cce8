// Package backend opens the [state.Store] a user named: a PostgreSQL
// database when given a postgres:// URL or a key=value connection string
// (see package state/postgres), else the SQLite database in a state
// directory (package state/sqlite). It is apart from package state so
// that neither implementation imports the other.
package backend

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/tokenseal/tokenseal/envelope/state"
	"github.com/tokenseal/tokenseal/envelope/state/postgres"
	"github.com/tokenseal/tokenseal/envelope/state/sqlite"
)

// IsURL reports whether spec names a PostgreSQL database rather than a
// state directory.
func IsURL(spec string) bool { return postgres.IsSpec(spec) }

// Open opens the store spec names: a database URL or a state directory.
func Open(ctx context.Context, spec string) (state.Store, error) {
	// No typed nil in the interface on failure.
	if IsURL(spec) {
		if s, err := postgres.Open(ctx, spec, postgres.Options{}); err == nil {
			return s, nil
		} else {
			return nil, err
		}
	}
	if s, err := sqlite.Open(spec); err == nil {
		return s, nil
	} else {
		return nil, err
	}
}

// Migrate brings the store spec names to the current schema (creating it
// if needed) and returns its schema version before and after.
func Migrate(ctx context.Context, spec string) (from, to int, err error) {
	if IsURL(spec) {
		return postgres.Migrate(ctx, spec)
	}
	return sqlite.Migrate(spec)
}

// Describe names spec in messages: a URL without its password, or the
// state database's path.
func Describe(spec string) string {
	if IsURL(spec) {
		return postgres.Redact(spec)
	}
	return filepath.Join(spec, "state.db")
}

// Copy merges everything in the store from into the store to (see
// [state.Snapshot] for the merge rules), in one transaction on to. from
// must exist: a state directory without a database is an error, never an
// empty copy.
func Copy(ctx context.Context, from, to string) (*state.ImportStats, error) {
	if !IsURL(from) {
		if _, err := os.Lstat(filepath.Join(from, "state.db")); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no state database in %s to copy from", from)
		}
	}
	src, err := Open(ctx, from)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	snap, err := src.Export(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Describe(from), err)
	}
	dst, err := Open(ctx, to)
	if err != nil {
		return nil, err
	}
	defer dst.Close()
	stats, err := dst.Import(ctx, snap)
	if err != nil {
		return nil, fmt.Errorf("copying into %s: %w", Describe(to), err)
	}
	return stats, nil
}
