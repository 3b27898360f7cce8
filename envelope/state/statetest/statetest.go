// Package statetest is the conformance suite of [state.Store]: one table
// of tests that every implementation passes (SQLite and PostgreSQL, each
// from its own package's tests, against a real database).
package statetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tokenseal/tokenseal/envelope/state"
)

// Opener opens one more Store on the same state, as another process (or
// host) would.
type Opener func() (state.Store, error)

// Fresh makes a new, empty state for one test and returns its Opener.
type Fresh func(t *testing.T) Opener

var ctx = context.Background()

// Run runs every test of the suite, each on a fresh state.
func Run(t *testing.T, fresh Fresh) {
	for _, tc := range []struct {
		name string
		f    func(*testing.T, Opener)
	}{
		{"NextSerialConcurrent", testNextSerialConcurrent},
		{"Window", testWindow},
		{"WindowFloor", testWindowFloor},
		{"AcceptBatch", testAcceptBatch},
		{"AcceptRace", testAcceptRace},
		{"Full64BitStream", testFull64BitStream},
		{"FullU64Serials", testFullU64Serials},
		{"SerialZero", testSerialZero},
		{"TrustAndForget", testTrustAndForget},
		{"ForgetOneStream", testForgetOneStream},
		{"Digest", testDigest},
		{"RecordRewrap", testRecordRewrap},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.f(t, fresh(t)) })
	}
	for _, tc := range []struct {
		name string
		f    func(*testing.T, Fresh)
	}{
		{"ExportImport", testExportImport},
		{"ImportMerges", testImportMerges},
		{"ImportConflict", testImportConflict},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.f(t, fresh) })
	}
}

// must opens a store closed at the end of the test.
func must(t *testing.T, open Opener) state.Store {
	t.Helper()
	s, err := open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func accept(s state.Store, key [32]byte, stream, serial, window uint64) error {
	return state.Accept(ctx, s, state.AcceptItem{KeyID: key, Stream: stream, Serial: serial, Name: "alice"}, window, time.Now())
}

// Several stores on one state (as separate processes would have)
// reserving serials at once never get the same serial, and share one
// stream per key.
func testNextSerialConcurrent(t *testing.T, open Opener) {
	key := [32]byte{1}
	const workers, each = 4, 50
	var mu sync.Mutex
	seen := map[uint64]bool{}
	streams := map[uint64]bool{}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		s := must(t, open)
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := uint64(0)
			for i := 0; i < each; i++ {
				st, n, err := s.NextSerial(ctx, key)
				if err != nil {
					t.Error(err)
					return
				}
				if n <= last {
					t.Errorf("serial %d after %d from the same store", n, last)
				}
				last = n
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
	st2, n2, err := must(t, open).NextSerial(ctx, [32]byte{2})
	if err != nil || streams[st2] || n2 != 1 {
		t.Fatalf("second key: stream %d serial %d: %v", st2, n2, err)
	}
}

func testWindow(t *testing.T, open Opener) {
	s := must(t, open)
	key := [32]byte{3}
	acc := func(serial uint64) error { return accept(s, key, 7, serial, 8) }
	for _, n := range []uint64{5, 3, 10, 4, 9} {
		if err := acc(n); err != nil {
			t.Fatalf("serial %d: %v", n, err)
		}
	}
	for _, n := range []uint64{5, 3, 10, 9} {
		var re *state.ReplayError
		if err := acc(n); !errors.As(err, &re) || re.TooOld || !errors.Is(err, state.ErrReplay) {
			t.Fatalf("replay of %d: %v", n, err)
		}
	}
	// Window is 8 wide: with highest 10 it covers 3..10; 2 is too old.
	var re *state.ReplayError
	if err := acc(2); !errors.As(err, &re) || !re.TooOld {
		t.Fatalf("serial 2: %v", err)
	}
	if err := acc(8); err != nil {
		t.Fatalf("serial 8 in window: %v", err)
	}
	if err := acc(20); err != nil {
		t.Fatal(err)
	}
	if err := acc(12); !errors.As(err, &re) || !re.TooOld {
		t.Fatalf("serial 12 after 20: %v", err)
	}
	if err := acc(13); err != nil {
		t.Fatalf("serial 13 after 20: %v", err)
	}
	// Another stream of the same key is independent.
	if err := accept(s, key, 8, 5, 8); err != nil {
		t.Fatal(err)
	}
	entries, err := s.Ledger(ctx)
	if err != nil || len(entries) != 2 {
		t.Fatalf("ledger: %v %v", entries, err)
	}
	if e := entries[0]; e.StreamID != 7 || e.Highest != 20 || e.Occupancy != 2 || e.Name != "" {
		t.Fatalf("entry %+v", e)
	}
	if e := entries[1]; e.StreamID != 8 || e.Highest != 5 || e.Occupancy != 1 {
		t.Fatalf("entry %+v", e)
	}
}

// Serials a narrow window pushed below the floor stay refused under a
// wider one.
func testWindowFloor(t *testing.T, open Opener) {
	s := must(t, open)
	k := [32]byte{6}
	if err := accept(s, k, 1, 5, 1024); err != nil {
		t.Fatal(err)
	}
	if err := accept(s, k, 1, 10, 4); err != nil {
		t.Fatal(err)
	}
	var re *state.ReplayError
	if err := accept(s, k, 1, 5, 1024); !errors.As(err, &re) || !re.TooOld {
		t.Fatalf("serial 5 after pruning: %v", err)
	}
	if err := accept(s, k, 1, 6, 1024); !errors.As(err, &re) || !re.TooOld {
		t.Fatalf("serial 6 (the floor): %v", err)
	}
	if err := accept(s, k, 1, 7, 1024); err != nil {
		t.Fatalf("serial 7 above the floor: %v", err)
	}
}

// A batch is one transaction taken in order: a duplicate within it is a
// replay of the earlier item, and refused items change nothing.
func testAcceptBatch(t *testing.T, open Opener) {
	s := must(t, open)
	k := [32]byte{5}
	now := time.Now()
	items := []state.AcceptItem{
		{KeyID: k, Stream: 1, Serial: 3, Name: "a"},
		{KeyID: k, Stream: 1, Serial: 3, Name: "a"},
		{KeyID: k, Stream: 1, Serial: 1, Name: "a"},
		{KeyID: k, Stream: 2, Serial: 3, Name: "a"},
		{KeyID: k, Stream: 1, Serial: 0, Name: "a"},
	}
	want := []bool{true, false, true, true, false}
	for i, err := range s.AcceptBatch(ctx, items, 8, now) {
		if (err == nil) != want[i] {
			t.Errorf("item %d: %v", i, err)
		}
		if err != nil && !errors.Is(err, state.ErrReplay) {
			t.Errorf("item %d: %v is not a replay", i, err)
		}
	}
	for i, err := range s.AcceptBatch(ctx, items[:4], 8, now) {
		if !errors.Is(err, state.ErrReplay) {
			t.Errorf("second batch item %d: %v", i, err)
		}
	}
	// A batch that moves the window past its own earlier items.
	errs := s.AcceptBatch(ctx, []state.AcceptItem{
		{KeyID: k, Stream: 3, Serial: 2}, {KeyID: k, Stream: 3, Serial: 100}, {KeyID: k, Stream: 3, Serial: 2}, {KeyID: k, Stream: 3, Serial: 99},
	}, 8, now)
	var re *state.ReplayError
	if errs[0] != nil || errs[1] != nil || !errors.As(errs[2], &re) || !re.TooOld || errs[3] != nil {
		t.Fatalf("window moved within a batch: %v", errs)
	}
}

// Stores racing to accept the same serials of several streams: each
// accepted exactly once.
func testAcceptRace(t *testing.T, open Opener) {
	const racers, serials = 4, 60
	key := [32]byte{4}
	var mu sync.Mutex
	wins := map[[2]uint64]int{}
	var wg sync.WaitGroup
	for r := 0; r < racers; r++ {
		s := must(t, open)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := uint64(1); n <= serials; n++ {
				var items []state.AcceptItem
				for stream := uint64(1); stream <= 2; stream++ {
					items = append(items, state.AcceptItem{KeyID: key, Stream: stream, Serial: n})
				}
				for i, err := range s.AcceptBatch(ctx, items, 0, time.Now()) {
					switch {
					case err == nil:
						mu.Lock()
						wins[[2]uint64{items[i].Stream, n}]++
						mu.Unlock()
					case !errors.Is(err, state.ErrReplay):
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	if len(wins) != 2*serials {
		t.Fatalf("%d of %d serials accepted", len(wins), 2*serials)
	}
	for k, n := range wins {
		if n != 1 {
			t.Fatalf("stream %d serial %d accepted %d times", k[0], k[1], n)
		}
	}
}

// FORMAT.md makes stream_id any random u64: a stream id with the top bit
// set is its own stream, and replays in it are refused.
func testFull64BitStream(t *testing.T, open Opener) {
	s := must(t, open)
	key := [32]byte{7}
	const stream = 1<<63 | 12345
	if err := accept(s, key, stream, 1, 0); err != nil {
		t.Fatalf("serial 1 of stream %#x: %v", uint64(stream), err)
	}
	if err := accept(s, key, stream, 1, 0); !errors.Is(err, state.ErrReplay) {
		t.Fatalf("replay of serial 1: %v, want a replay refusal", err)
	}
	if err := accept(s, key, stream&^(1<<63), 1, 0); err != nil {
		t.Fatalf("serial 1 of stream %#x: %v", uint64(stream&^(1<<63)), err)
	}
	l, err := s.Ledger(ctx)
	if err != nil || len(l) != 2 || l[0].StreamID != stream&^(1<<63) || l[1].StreamID != stream {
		t.Fatalf("ledger: %+v %v", l, err)
	}
}

// Issue 11 item 8: serials are u64. A new stream's serial of 2^63 or more
// was refused as "below the replay window (highest accepted 0)"; the
// window works across 2^63 and up to 2^64-1.
func testFullU64Serials(t *testing.T, open Opener) {
	s := must(t, open)
	key := [32]byte{8}
	const top = 1 << 63
	for _, n := range []uint64{top, top + 5, top - 3, 1<<64 - 1} {
		if err := accept(s, key, 1, n, 1024); err != nil {
			t.Fatalf("serial %d: %v", n, err)
		}
	}
	var re *state.ReplayError
	for _, n := range []uint64{top, top - 3, 1<<64 - 1, top - 2000} {
		if err := accept(s, key, 1, n, 1024); !errors.As(err, &re) {
			t.Fatalf("serial %d again: %v", n, err)
		}
	}
	if err := accept(s, key, 1, 1<<64-1-1023, 1024); err != nil {
		t.Fatalf("serial 2^64-1024 in the window: %v", err)
	}
	if err := accept(s, key, 1, 1<<64-1-1024, 1024); !errors.As(err, &re) || !re.TooOld {
		t.Fatalf("serial 2^64-1025 below the window: %v", err)
	}
	if l, err := s.Ledger(ctx); err != nil || l[0].Highest != 1<<64-1 || l[0].Occupancy != 2 {
		t.Fatalf("ledger: %+v %v", l[0], err)
	}
	if a, err := s.Accepted(ctx, key, 1, top-3); err != nil || a.Serial != top-3 {
		t.Fatalf("record of %d: %+v %v", uint64(top-3), a, err)
	}
}

// Serial 0 is never written; a reader refuses it, saying so.
func testSerialZero(t *testing.T, open Opener) {
	s := must(t, open)
	var re *state.ReplayError
	if err := accept(s, [32]byte{9}, 1, 0, 0); !errors.As(err, &re) || !re.Invalid {
		t.Fatalf("serial 0: %v", err)
	}
	if l, err := s.Ledger(ctx); err != nil || len(l) != 0 {
		t.Fatalf("ledger after serial 0: %+v %v", l, err)
	}
}

func testTrustAndForget(t *testing.T, open Opener) {
	s := must(t, open)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tr, err := s.AddTrusted(ctx, "alice", k.Public())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddTrusted(ctx, "alice2", k.Public()); !errors.Is(err, state.ErrExists) {
		t.Fatalf("same key twice: %v", err)
	}
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := s.AddTrusted(ctx, "alice", k2.Public()); !errors.Is(err, state.ErrExists) {
		t.Fatalf("same name twice: %v", err)
	}
	if _, err := s.AddTrusted(ctx, "bad name", k2.Public()); err == nil {
		t.Fatal("bad name accepted")
	}
	got, err := s.LookupTrusted(ctx, tr.KeyID)
	if err != nil || got.Name != "alice" || !k.PublicKey.Equal(got.Public) || !got.Added.Equal(tr.Added) {
		t.Fatalf("lookup: %+v %v", got, err)
	}
	if ts, err := s.ListTrusted(ctx); err != nil || len(ts) != 1 || ts[0].Name != "alice" {
		t.Fatalf("list: %v %v", ts, err)
	}
	if err := accept(s, tr.KeyID, 1, 1, 0); err != nil {
		t.Fatal(err)
	}
	if l, err := s.Ledger(ctx); err != nil || len(l) != 1 || l[0].Name != "alice" {
		t.Fatalf("ledger names the sender: %+v %v", l, err)
	}
	if n, err := s.Forget(ctx, "alice"); err != nil || n != 1 {
		t.Fatalf("forget: %d %v", n, err)
	}
	if err := accept(s, tr.KeyID, 1, 1, 0); err != nil {
		t.Fatalf("after forget: %v", err)
	}
	if err := s.RemoveTrusted(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LookupTrusted(ctx, tr.KeyID); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("after remove: %v", err)
	}
	if err := s.RemoveTrusted(ctx, "alice"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("remove twice: %v", err)
	}
	if _, err := s.Forget(ctx, "nobody"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("forget an unknown name: %v", err)
	}
}
