package sqlite

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenseal/tokenseal/envelope/state"
)

func TestCheckHealthy(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s := openT(t, dir)
	if _, _, err := s.NextSerial(ctx, [32]byte{1}); err != nil {
		t.Fatal(err)
	}
	h := Check(ctx, dir)
	if len(h.Problems) != 0 {
		t.Fatalf("problems: %v", h.Problems)
	}
	if !h.Exists || !h.DBExists || !h.Opens || !h.CountersReadable || h.QuickCheck != "ok" ||
		h.DirMode != 0o700 || h.DBMode != 0o600 || h.Counters != 1 {
		t.Errorf("health: %+v", h)
	}
}

func TestCheckDoesNotCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	h := Check(ctx, dir)
	if len(h.Problems) != 0 || len(h.Notes) != 1 || h.Exists {
		t.Fatalf("missing dir: %+v", h)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Check created %s", dir)
	}
	os.Mkdir(dir, 0o700)
	h = Check(ctx, dir)
	if len(h.Problems) != 0 || len(h.Notes) != 1 || h.DBExists {
		t.Fatalf("empty dir: %+v", h)
	}
	if _, err := os.Stat(filepath.Join(dir, "state.db")); !errors.Is(err, os.ErrNotExist) {
		t.Error("Check created state.db")
	}
}

func TestCheckProblems(t *testing.T) {
	problem := func(t *testing.T, h *state.Health, want string) {
		t.Helper()
		if len(h.Problems) == 0 {
			t.Fatalf("no problem reported, want %q", want)
		}
		var all []string
		for _, p := range h.Problems {
			if !errors.Is(p, state.ErrUnhealthy) {
				t.Errorf("%v does not match state.ErrUnhealthy", p)
			}
			all = append(all, p.Error())
		}
		if !strings.Contains(strings.Join(all, "\n"), want) {
			t.Errorf("problems %q, want one with %q", all, want)
		}
	}
	t.Run("file instead of directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "state")
		os.WriteFile(dir, []byte("x"), 0o600)
		problem(t, Check(ctx, dir), "is not a directory")
	})
	t.Run("loose directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "state")
		openT(t, dir)
		os.Chmod(dir, 0o755)
		problem(t, Check(ctx, dir), "has mode 0755, want 0700")
	})
	t.Run("loose database", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "state")
		openT(t, dir)
		os.Chmod(filepath.Join(dir, "state.db"), 0o644)
		problem(t, Check(ctx, dir), "has mode 0644, want 0600")
	})
	t.Run("not a database", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "state")
		os.Mkdir(dir, 0o700)
		os.WriteFile(filepath.Join(dir, "state.db"), []byte(strings.Repeat("not sqlite ", 100)), 0o600)
		h := Check(ctx, dir)
		problem(t, h, "the ledger does not open")
		if h.Opens {
			t.Error("Opens is true")
		}
	})
	t.Run("database is a directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "state")
		os.MkdirAll(filepath.Join(dir, "state.db"), 0o700)
		problem(t, Check(ctx, dir), "is not a regular file")
	})
}
