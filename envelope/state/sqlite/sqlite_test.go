package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenseal/tokenseal/envelope/state"
	"github.com/tokenseal/tokenseal/envelope/state/statetest"
)

var ctx = context.Background()

func openT(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	statetest.Run(t, func(t *testing.T) statetest.Opener {
		dir := filepath.Join(t.TempDir(), "state")
		return func() (state.Store, error) { return Open(dir) }
	})
}

func TestPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	openT(t, dir)
	for p, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "state.db"): 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
}

// Issue 11 item 4: a state directory or database others could change is
// refused at every open, with the command that fixes it; the database is
// never reached through a symbolic link.
func TestRefusesUnsafeState(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"open directory", func(t *testing.T, dir string) { os.Chmod(dir, 0o777) }, "has mode 0777, want 0700"},
		{"group-readable directory", func(t *testing.T, dir string) { os.Chmod(dir, 0o750) }, "want 0700 (chmod 700 "},
		{"readable database", func(t *testing.T, dir string) { os.Chmod(filepath.Join(dir, "state.db"), 0o644) }, "want 0600 (chmod 600 "},
		{"symlinked database", func(t *testing.T, dir string) {
			db := filepath.Join(dir, "state.db")
			other := filepath.Join(t.TempDir(), "elsewhere.db")
			if err := os.Rename(db, other); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(other, db); err != nil {
				t.Fatal(err)
			}
		}, "is a symbolic link"},
		{"symlinked directory", func(t *testing.T, dir string) {
			real := dir + ".real"
			if err := os.Rename(dir, real); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(real, dir); err != nil {
				t.Fatal(err)
			}
		}, "is a symbolic link"},
		{"symlinked wal", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "state.db-wal"))
			if err := os.Symlink("/dev/null", filepath.Join(dir, "state.db-wal")); err != nil {
				t.Fatal(err)
			}
		}, "is a symbolic link"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			s, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			tc.setup(t, dir)
			_, err = Open(dir)
			if !errors.Is(err, state.ErrUnsafe) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Open: %v, want ErrUnsafe with %q", err, tc.want)
			}
			if _, _, err := Migrate(dir); !errors.Is(err, state.ErrUnsafe) {
				t.Fatalf("Migrate: %v", err)
			}
			if h := Check(ctx, dir); len(h.Problems) == 0 || !strings.Contains(h.Problems[0].Error(), tc.want) {
				t.Fatalf("Check: %v", h.Problems)
			}
		})
	}
}

// schemaV1 is the schema of tokenseal's first release, which recorded
// no version.
const schemaV1 = `
CREATE TABLE counters (key_id BLOB PRIMARY KEY, stream_id INTEGER NOT NULL, last INTEGER NOT NULL);
CREATE TABLE trusted (name TEXT PRIMARY KEY, key_id BLOB NOT NULL UNIQUE, spki BLOB NOT NULL, added_ms INTEGER NOT NULL);
CREATE TABLE streams (key_id BLOB NOT NULL, stream_id INTEGER NOT NULL, highest INTEGER NOT NULL, last_ms INTEGER NOT NULL,
	floor INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (key_id, stream_id));
CREATE TABLE accepted (key_id BLOB NOT NULL, stream_id INTEGER NOT NULL, serial INTEGER NOT NULL, at_ms INTEGER NOT NULL,
	PRIMARY KEY (key_id, stream_id, serial));
INSERT INTO counters VALUES (x'0101010101010101010101010101010101010101010101010101010101010101', -5, 41);
INSERT INTO streams VALUES (x'0202020202020202020202020202020202020202020202020202020202020202', 9, 3000, 1700000000000, 1976);
INSERT INTO accepted VALUES (x'0202020202020202020202020202020202020202020202020202020202020202', 9, 3000, 1700000000000);
INSERT INTO accepted VALUES (x'0202020202020202020202020202020202020202020202020202020202020202', 9, 2990, 1700000000000);
`

// makeDB writes a database with script in a new state directory.
func makeDB(t *testing.T, script string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite3", filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(script); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(dir, "state.db"), 0o600)
	return dir
}

// A first-release database is version 1: refused until migrated, then
// migrated in place with every serial and window kept.
func TestMigrateFromVersion1(t *testing.T) {
	dir := makeDB(t, schemaV1)
	if _, err := Open(dir); !errors.Is(err, state.ErrSchema) || !strings.Contains(err.Error(), "has schema version 1, this tokenseal needs 2: migrate it") {
		t.Fatalf("open of a version 1 database: %v", err)
	}
	from, to, err := Migrate(dir)
	if err != nil || from != 1 || to != 2 {
		t.Fatalf("migrate: %d → %d, %v", from, to, err)
	}
	if from, to, err := Migrate(dir); err != nil || from != 2 || to != 2 {
		t.Fatalf("migrate again: %d → %d, %v", from, to, err)
	}
	s := openT(t, dir)
	if st, n, err := s.NextSerial(ctx, [32]byte{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}); err != nil || st != 1<<64-5 || n != 42 {
		t.Fatalf("serial after migration: stream %d serial %d %v", st, n, err)
	}
	key := [32]byte{2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2}
	l, err := s.Ledger(ctx)
	if err != nil || len(l) != 1 || l[0].Highest != 3000 || l[0].Occupancy != 2 || l[0].StreamID != 9 {
		t.Fatalf("ledger after migration: %+v %v", l, err)
	}
	for serial, want := range map[uint64]bool{2990: false, 3000: false, 1976: false, 2500: true, 3001: true} {
		err := state.Accept(ctx, s, state.AcceptItem{KeyID: key, Stream: 9, Serial: serial}, 0, time.Now())
		if (err == nil) != want {
			t.Errorf("serial %d after migration: %v", serial, err)
		}
	}
}

// A database newer than this program is refused, and not touched by
// Migrate.
func TestRefusesNewerSchema(t *testing.T) {
	dir := makeDB(t, schema+"PRAGMA user_version = 3;")
	for _, err := range []error{openErr(dir), migrateErr(dir)} {
		if !errors.Is(err, state.ErrSchema) || !strings.Contains(err.Error(), "has schema version 3, newer than this tokenseal knows (2): upgrade tokenseal") {
			t.Fatalf("%v", err)
		}
	}
}

func openErr(dir string) error {
	s, err := Open(dir)
	if err == nil {
		s.Close()
	}
	return err
}

func migrateErr(dir string) error { _, _, err := Migrate(dir); return err }
