package state

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var ctx = context.Background()

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	open(t, dir)
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

// Several stores on one directory (as separate processes would have)
// reserving serials at once never get the same serial.
func TestNextSerialConcurrent(t *testing.T) {
	dir := t.TempDir()
	key := [32]byte{1}
	const workers, each = 4, 50
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var streams = map[uint64]bool{}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		s := open(t, dir)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				st, n, err := s.NextSerial(ctx, key)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[n] {
					t.Errorf("serial %d issued twice", n)
				}
				seen[n] = true
				streams[st] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != workers*each || len(streams) != 1 {
		t.Fatalf("%d serials, %d streams", len(seen), len(streams))
	}
	// Another key has its own stream.
	st2, n2, _ := open(t, dir).NextSerial(ctx, [32]byte{2})
	if streams[st2] || n2 != 1 {
		t.Fatalf("second key: stream %d serial %d", st2, n2)
	}
}

func TestWindow(t *testing.T) {
	s := open(t, t.TempDir())
	key := [32]byte{3}
	now := time.Now()
	accept := func(serial uint64) error { return s.Accept(ctx, key, 7, serial, 8, "alice", now) }
	for _, n := range []uint64{5, 3, 10, 4, 9} {
		if err := accept(n); err != nil {
			t.Fatalf("serial %d: %v", n, err)
		}
	}
	for _, n := range []uint64{5, 3, 10, 9} {
		var re *ReplayError
		if err := accept(n); !errors.As(err, &re) || re.TooOld || !errors.Is(err, ErrReplay) {
			t.Fatalf("replay of %d: %v", n, err)
		}
	}
	// Window is 8 wide: with highest 10 it covers 3..10; 2 is too old.
	var re *ReplayError
	if err := accept(2); !errors.As(err, &re) || !re.TooOld {
		t.Fatalf("serial 2: %v", err)
	}
	if err := accept(8); err != nil {
		t.Fatalf("serial 8 in window: %v", err)
	}
	if err := accept(20); err != nil {
		t.Fatal(err)
	}
	if err := accept(12); !errors.As(err, &re) || !re.TooOld {
		t.Fatalf("serial 12 after 20: %v", err)
	}
	if err := accept(13); err != nil {
		t.Fatalf("serial 13 after 20: %v", err)
	}
	// Another stream of the same key is independent.
	if err := s.Accept(ctx, key, 8, 5, 8, "alice", now); err != nil {
		t.Fatal(err)
	}
	entries, err := s.Ledger(ctx)
	if err != nil || len(entries) != 2 {
		t.Fatalf("ledger: %v %v", entries, err)
	}
	if e := entries[0]; e.Highest != 20 || e.Occupancy != 2 {
		t.Fatalf("entry %+v", e)
	}
}

func TestTrustAndForget(t *testing.T) {
	s := open(t, t.TempDir())
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tr, err := s.AddTrusted(ctx, "alice", k.Public())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddTrusted(ctx, "alice2", k.Public()); !errors.Is(err, ErrExists) {
		t.Fatalf("same key twice: %v", err)
	}
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := s.AddTrusted(ctx, "alice", k2.Public()); !errors.Is(err, ErrExists) {
		t.Fatalf("same name twice: %v", err)
	}
	if _, err := s.AddTrusted(ctx, "bad name", k2.Public()); err == nil {
		t.Fatal("bad name accepted")
	}
	got, err := s.LookupTrusted(ctx, tr.KeyID)
	if err != nil || got.Name != "alice" || !k.PublicKey.Equal(got.Public) {
		t.Fatalf("lookup: %+v %v", got, err)
	}
	if err := s.Accept(ctx, tr.KeyID, 1, 1, 0, "alice", time.Now()); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Forget(ctx, "alice"); err != nil || n != 1 {
		t.Fatalf("forget: %d %v", n, err)
	}
	if err := s.Accept(ctx, tr.KeyID, 1, 1, 0, "alice", time.Now()); err != nil {
		t.Fatalf("after forget: %v", err)
	}
	if err := s.RemoveTrusted(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LookupTrusted(ctx, tr.KeyID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after remove: %v", err)
	}
	if err := s.RemoveTrusted(ctx, "alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("remove twice: %v", err)
	}
}

func TestFreshness(t *testing.T) {
	now := time.Now()
	day := 24 * time.Hour
	if err := CheckFreshness(now.Add(-6*day), now, 7*day, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := CheckFreshness(now.Add(4*time.Minute), now, 7*day, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, ts := range []time.Time{now.Add(-8 * day), now.Add(6 * time.Minute)} {
		if err := CheckFreshness(ts, now, 7*day, 5*time.Minute); !errors.Is(err, ErrReplay) {
			t.Fatalf("%v: %v", ts, err)
		}
	}
}

// Two stores racing to accept the same serials: each accepted exactly once.
func TestAcceptRace(t *testing.T) {
	dir := t.TempDir()
	a, b := open(t, dir), open(t, dir)
	key := [32]byte{4}
	var wins [2]int
	var wg sync.WaitGroup
	for i, s := range []*Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := uint64(1); n <= 100; n++ {
				err := s.Accept(ctx, key, 1, n, 0, "x", time.Now())
				if err == nil {
					wins[i]++
				} else if !errors.Is(err, ErrReplay) {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if wins[0]+wins[1] != 100 {
		t.Fatalf("accepted %d + %d, want 100 in all", wins[0], wins[1])
	}
}

// A batch is one transaction taken in order: a duplicate within it is a
// replay of the earlier item, and refused items change nothing.
func TestAcceptBatch(t *testing.T) {
	s := open(t, t.TempDir())
	k := [32]byte{5}
	now := time.Now()
	items := []AcceptItem{
		{KeyID: k, Stream: 1, Serial: 3, Name: "a"},
		{KeyID: k, Stream: 1, Serial: 3, Name: "a"},
		{KeyID: k, Stream: 1, Serial: 1, Name: "a"},
		{KeyID: k, Stream: 2, Serial: 3, Name: "a"},
		{KeyID: k, Stream: 1, Serial: 0, Name: "a"},
	}
	errs := s.AcceptBatch(ctx, items, 8, now)
	want := []bool{true, false, true, true, false}
	for i, err := range errs {
		if (err == nil) != want[i] {
			t.Errorf("item %d: %v", i, err)
		}
		if err != nil && !errors.Is(err, ErrReplay) {
			t.Errorf("item %d: %v is not a replay", i, err)
		}
	}
	for i, err := range s.AcceptBatch(ctx, items[:4], 8, now) {
		if !errors.Is(err, ErrReplay) {
			t.Errorf("second batch item %d: %v", i, err)
		}
	}
}

// Serials pruned under a narrow window stay refused under a wider one.
func TestWindowFloor(t *testing.T) {
	s := open(t, t.TempDir())
	k := [32]byte{6}
	now := time.Now()
	if err := s.Accept(ctx, k, 1, 5, 1024, "a", now); err != nil {
		t.Fatal(err)
	}
	if err := s.Accept(ctx, k, 1, 10, 4, "a", now); err != nil {
		t.Fatal(err)
	}
	var re *ReplayError
	if err := s.Accept(ctx, k, 1, 5, 1024, "a", now); !errors.As(err, &re) || !re.TooOld {
		t.Fatalf("serial 5 after pruning: %v", err)
	}
	if err := s.Accept(ctx, k, 1, 6, 1024, "a", now); !errors.As(err, &re) || !re.TooOld {
		t.Fatalf("serial 6 (the floor): %v", err)
	}
	if err := s.Accept(ctx, k, 1, 7, 1024, "a", now); err != nil {
		t.Fatalf("serial 7 above the floor: %v", err)
	}
}
