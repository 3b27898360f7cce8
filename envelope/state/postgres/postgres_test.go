package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tokenseal/tokenseal/envelope/state"
	"github.com/tokenseal/tokenseal/envelope/state/statetest"
	"github.com/tokenseal/tokenseal/internal/pgtest"
)

var (
	ctx = context.Background()
	srv *pgtest.Server // one server for the package's tests; a database each
)

func TestMain(m *testing.M) {
	s, stop, err := pgtest.StartMain("fsync=off")
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		os.Exit(1) // never skip: CI must have PostgreSQL
	}
	srv = s
	os.Setenv("PGPASSFILE", s.PassFile)
	code := m.Run()
	stop()
	os.Exit(code)
}

// freshDB returns the URL of a new, empty database.
func freshDB(t *testing.T) string {
	return srv.URL(srv.NewDatabase(t))
}

func openT(t testing.TB, url string, opts Options) *Store {
	t.Helper()
	s, err := Open(ctx, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	statetest.Run(t, func(t *testing.T) statetest.Opener {
		url := freshDB(t)
		return func() (state.Store, error) { return Open(ctx, url, Options{}) }
	})
}

func TestConformanceSerializable(t *testing.T) {
	statetest.Run(t, func(t *testing.T) statetest.Opener {
		url := freshDB(t)
		return func() (state.Store, error) { return Open(ctx, url, Options{Serializable: true, Retries: 50}) }
	})
}

// The key=value form, over the Unix socket.
func TestKeyValueSpec(t *testing.T) {
	db := srv.NewDatabase(t)
	spec := srv.SocketURL(db)
	if !IsSpec(spec) || !IsSpec("postgres://h/db") || IsSpec("/var/lib/tokenseal") || IsSpec("./state=x") {
		t.Fatal("IsSpec")
	}
	s := openT(t, spec, Options{})
	if _, _, err := s.NextSerial(ctx, [32]byte{1}); err != nil {
		t.Fatal(err)
	}
}

func TestPasswords(t *testing.T) {
	for spec, want := range map[string]bool{
		"postgres://u:secret@h/db":           true,
		"postgres://u@h/db?password=secret":  true,
		"postgresql://u@h/db?sslmode=verify": false,
		"host=h user=u password=secret":      true,
		"host=h user=u password = 'a b'":     true,
		"host=h user=u passfile=/x":          false,
	} {
		if HasPassword(spec) != want {
			t.Errorf("HasPassword(%q) != %v", spec, want)
		}
		if r := Redact(spec); strings.Contains(r, "secret") || strings.Contains(r, "a b") {
			t.Errorf("Redact(%q) = %q", spec, r)
		}
	}
}

// The password comes from PGPASSFILE (set by TestMain), as libpq takes
// it; without it the server refuses, and the error names no password.
func TestPassfile(t *testing.T) {
	url := freshDB(t)
	t.Setenv("PGPASSFILE", os.DevNull)
	_, err := Open(ctx, url, Options{})
	if err == nil || !strings.Contains(err.Error(), "password") || strings.Contains(err.Error(), pgtest.Password) {
		t.Fatalf("without the password file: %v", err)
	}
	t.Setenv("PGPASSFILE", "")
	t.Setenv("PGPASSWORD", pgtest.Password)
	openT(t, url, Options{})
}

func TestUnreachable(t *testing.T) {
	start := time.Now()
	_, err := Open(ctx, "postgres://tokenseal@127.0.0.1:1/x?sslmode=disable", Options{})
	if err == nil || !strings.Contains(err.Error(), "state database postgres://tokenseal@127.0.0.1:1/x") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("unreachable: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("took %s", time.Since(start))
	}
}

// A database of another schema version is refused with the command that
// fixes it; Migrate makes an empty one and leaves a newer one alone.
func TestSchemaVersions(t *testing.T) {
	db := srv.NewDatabase(t)
	url := srv.URL(db)
	if from, to, err := Migrate(ctx, url); err != nil || from != 0 || to != 2 {
		t.Fatalf("migrate an empty database: %d → %d %v", from, to, err)
	}
	if from, to, err := Migrate(ctx, url); err != nil || from != 2 || to != 2 {
		t.Fatalf("migrate again: %d → %d %v", from, to, err)
	}
	for _, c := range []struct {
		v    int
		want string
	}{
		{1, "has schema version 1, this tokenseal needs 2: migrate it"},
		{3, "has schema version 3, newer than this tokenseal knows (2): upgrade tokenseal"},
	} {
		v, want := c.v, c.want
		if err := srv.Exec(ctx, db, `UPDATE tokenseal.schema_version SET version = $1`, v); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(ctx, url, Options{}); !errors.Is(err, state.ErrSchema) || !strings.Contains(err.Error(), want) {
			t.Fatalf("version %d: %v", v, err)
		}
	}
	if _, _, err := Migrate(ctx, url); !errors.Is(err, state.ErrSchema) {
		t.Fatalf("migrate a newer database: %v", err)
	}
	if err := srv.Exec(ctx, db, `UPDATE tokenseal.schema_version SET version = 1`); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Migrate(ctx, url); !errors.Is(err, state.ErrSchema) || !strings.Contains(err.Error(), "which no tokenseal wrote") {
		t.Fatalf("migrate a version 1 database: %v", err)
	}
}

// Hosts opening an empty database at once make its schema once.
func TestConcurrentCreate(t *testing.T) {
	url := freshDB(t)
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() {
			s, err := Open(ctx, url, Options{})
			if err == nil {
				_, _, err = s.NextSerial(ctx, [32]byte{1})
				s.Close()
			}
			errs <- err
		}()
	}
	for i := 0; i < 8; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestCheck(t *testing.T) {
	db := srv.NewDatabase(t)
	url := srv.URL(db)
	h := Check(ctx, url)
	if len(h.Problems) != 0 || !h.Connects || h.SchemaVersion != 0 || len(h.Notes) == 0 || !strings.HasPrefix(h.ServerVersion, "1") {
		t.Fatalf("empty database: %+v", h)
	}
	openT(t, url, Options{})
	h = Check(ctx, url)
	if len(h.Problems) != 0 || h.SchemaVersion != 2 || !h.Privileged || h.ClockSkew.Abs() > time.Second {
		t.Fatalf("healthy: %+v", h)
	}
	// A user who may read but not write.
	for _, q := range []string{`CREATE ROLE reader LOGIN`, `GRANT USAGE ON SCHEMA tokenseal TO reader`, `GRANT SELECT ON ALL TABLES IN SCHEMA tokenseal TO reader`} {
		if err := srv.Exec(ctx, db, q); err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatal(err)
		}
	}
	h = Check(ctx, fmt.Sprintf("host=%s port=%d user=reader dbname=%s sslmode=disable", srv.Socket, srv.Port, db))
	if h.Privileged || len(h.Problems) != len(tables) || !errors.Is(h.Problems[0], state.ErrUnhealthy) || !strings.Contains(h.Problems[0].Error(), "may not read and write") {
		t.Fatalf("reader: %+v", h)
	}
	h = Check(ctx, "postgres://tokenseal@127.0.0.1:1/x?sslmode=disable")
	if h.Connects || len(h.Problems) != 1 {
		t.Fatalf("unreachable: %+v", h)
	}
}
