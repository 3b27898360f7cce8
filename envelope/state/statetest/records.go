package statetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tokenseal/tokenseal/envelope/state"
)

// Issue 12 item 9: one stream of a sender can be forgotten, by trusted
// name or by key id, leaving its other streams.
func testForgetOneStream(t *testing.T, open Opener) {
	s := must(t, open)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tr, err := s.AddTrusted(ctx, "bob", k.Public())
	if err != nil {
		t.Fatal(err)
	}
	for stream := uint64(1); stream <= 3; stream++ {
		if err := accept(s, tr.KeyID, stream, 5, 0); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.Forget(ctx, hex.EncodeToString(tr.KeyID[:]), 2); err != nil || n != 1 {
		t.Fatalf("forget stream 2 by key id: %d %v", n, err)
	}
	if n, err := s.Forget(ctx, "bob", 2); err != nil || n != 0 {
		t.Fatalf("forget stream 2 again: %d %v", n, err)
	}
	if err := accept(s, tr.KeyID, 2, 5, 0); err != nil {
		t.Fatalf("stream 2 after forgetting it: %v", err)
	}
	for _, stream := range []uint64{1, 3} {
		if err := accept(s, tr.KeyID, stream, 5, 0); !errors.Is(err, state.ErrReplay) {
			t.Fatalf("stream %d after forgetting stream 2: %v", stream, err)
		}
	}
	if n, err := s.Forget(ctx, "bob", 1, 3); err != nil || n != 2 {
		t.Fatalf("forget streams 1 and 3: %d %v", n, err)
	}
	if l, err := s.Ledger(ctx); err != nil || len(l) != 1 || l[0].StreamID != 2 {
		t.Fatalf("ledger: %+v %v", l, err)
	}
}

// Issue 12 item 2: the ledger keeps each accepted envelope's digest and
// time, also once the window moved far past it, so the very same
// envelope can be recognised.
func testDigest(t *testing.T, open Opener) {
	s := must(t, open)
	key := [32]byte{10}
	d := state.EnvelopeDigest([32]byte{1}, []byte("signature"))
	if d == state.EnvelopeDigest([32]byte{1}, []byte("signaturf")) {
		t.Fatal("digest ignores the trailer")
	}
	at := time.UnixMilli(time.Now().Add(-time.Hour).UnixMilli())
	if errs := s.AcceptBatch(ctx, []state.AcceptItem{{KeyID: key, Stream: 1, Serial: 7, Digest: d}, {KeyID: key, Stream: 1, Serial: 8}}, 16, at); errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	for _, far := range []uint64{100, 5000} {
		if err := accept(s, key, 1, far, 16); err != nil {
			t.Fatal(err)
		}
	}
	a, err := s.Accepted(ctx, key, 1, 7)
	if err != nil || !a.SameEnvelope(d) || !a.At.Equal(at) || a.Serial != 7 || a.Stream != 1 || a.KeyID != key {
		t.Fatalf("record of serial 7: %+v %v", a, err)
	}
	if a.SameEnvelope(state.EnvelopeDigest([32]byte{3}, []byte("signature"))) {
		t.Fatal("another envelope with the same serial matches")
	}
	if a, err := s.Accepted(ctx, key, 1, 8); err != nil || a.SameEnvelope([32]byte{}) {
		t.Fatalf("record without a digest: %+v %v", a, err)
	}
	for _, serial := range []uint64{9, 6} {
		if _, err := s.Accepted(ctx, key, 1, serial); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("serial %d never accepted: %v", serial, err)
		}
	}
	if l, err := s.Ledger(ctx); err != nil || l[0].Occupancy != 1 {
		t.Fatalf("history below the floor counted in the window: %+v %v", l[0], err)
	}
}

// Issue 11 item 3: a rewrapped original is recorded once; openers racing
// on one original see exactly one first record.
func testRecordRewrap(t *testing.T, open Opener) {
	key := [32]byte{11}
	base := time.UnixMilli(time.Now().UnixMilli())
	var now time.Time
	var mu sync.Mutex
	firsts := 0
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		s := must(t, open)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec, first, err := s.RecordRewrap(ctx, key, 1<<63, 1<<63+1, base.Add(time.Duration(i)*time.Second))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if first {
				firsts++
				now = rec.At
			}
		}()
	}
	wg.Wait()
	if firsts != 1 {
		t.Fatalf("%d first records", firsts)
	}
	s := must(t, open)
	rec, first, err := s.RecordRewrap(ctx, key, 1<<63, 1<<63+1, time.Now())
	if err != nil || first || !rec.At.Equal(now) || rec.Serial != 1<<63+1 {
		t.Fatalf("again: %+v %v %v, want the first record at %v", rec, first, err, now)
	}
	if _, first, err := s.RecordRewrap(ctx, key, 1<<63, 1<<63+2, time.Now()); err != nil || !first {
		t.Fatalf("next serial: %v %v", first, err)
	}
}

// populate gives s a trusted sender, a counter and ledger entries, and
// returns the trusted sender.
func populate(t *testing.T, s state.Store, name string) *state.Trusted {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tr, err := s.AddTrusted(ctx, name, k.Public())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, _, err := s.NextSerial(ctx, [32]byte{12}); err != nil {
			t.Fatal(err)
		}
	}
	d := state.EnvelopeDigest([32]byte{4}, nil)
	for _, n := range []uint64{3, 1, 2000, 1990} {
		if err := state.Accept(ctx, s, state.AcceptItem{KeyID: tr.KeyID, Stream: 1 << 63, Serial: n, Digest: d}, 0, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.RecordRewrap(ctx, tr.KeyID, 1<<63, 3, time.Now()); err != nil {
		t.Fatal(err)
	}
	return tr
}

// A snapshot imported into an empty store gives the same state, and
// imported again changes nothing.
func testExportImport(t *testing.T, fresh Fresh) {
	src := must(t, fresh(t))
	tr := populate(t, src, "carol")
	snap, err := src.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Counters) != 1 || len(snap.Trusted) != 1 || len(snap.Streams) != 1 || len(snap.Accepted) != 4 || len(snap.Rewraps) != 1 {
		t.Fatalf("snapshot: %+v", snap)
	}
	dst := must(t, fresh(t))
	for i := 0; i < 2; i++ {
		if _, err := dst.Import(ctx, snap); err != nil {
			t.Fatal(err)
		}
	}
	got, err := dst.Export(ctx)
	if err != nil || len(got.Accepted) != 4 || got.Streams[0] != snap.Streams[0] || got.Counters[0] != snap.Counters[0] ||
		len(got.Trusted) != 1 || got.Trusted[0].KeyID != tr.KeyID || got.Rewraps[0] != snap.Rewraps[0] {
		t.Fatalf("imported: %+v %v", got, err)
	}
	st, n, err := dst.NextSerial(ctx, [32]byte{12})
	if err != nil || st != snap.Counters[0].Stream || n != 4 {
		t.Fatalf("serial after the import: %d %d %v", st, n, err)
	}
	for _, n := range []uint64{3, 1, 1990, 2000} {
		if err := accept(dst, tr.KeyID, 1<<63, n, 0); !errors.Is(err, state.ErrReplay) {
			t.Fatalf("serial %d accepted again after the copy: %v", n, err)
		}
	}
	if a, err := dst.Accepted(ctx, tr.KeyID, 1<<63, 1); err != nil || a.Digest != snap.Accepted[0].Digest {
		t.Fatalf("history: %+v %v", a, err)
	}
}

// Importing into a store with entries of its own merges: whatever either
// accepted stays refused, the store's own serial stream continues.
func testImportMerges(t *testing.T, fresh Fresh) {
	src, dst := must(t, fresh(t)), must(t, fresh(t))
	tr := populate(t, src, "dave")
	if _, err := dst.AddTrusted(ctx, "dave", tr.Public); err != nil {
		t.Fatal(err)
	}
	dstStream, _, err := dst.NextSerial(ctx, [32]byte{12})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []uint64{1995, 2100} {
		if err := accept(dst, tr.KeyID, 1<<63, n, 0); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := src.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stats, err := dst.Import(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	if len(stats.RetiredStreams) != 1 || stats.RetiredStreams[0].Stream != snap.Counters[0].Stream {
		t.Fatalf("stats: %+v", stats)
	}
	if st, n, err := dst.NextSerial(ctx, [32]byte{12}); err != nil || st != dstStream || n != 2 {
		t.Fatalf("serial after the merge: stream %d serial %d %v, want stream %d serial 2", st, n, err, dstStream)
	}
	for _, n := range []uint64{1990, 1995, 2000, 2100} {
		if err := accept(dst, tr.KeyID, 1<<63, n, 0); !errors.Is(err, state.ErrReplay) {
			t.Fatalf("serial %d accepted again after the merge: %v", n, err)
		}
	}
	if err := accept(dst, tr.KeyID, 1<<63, 2050, 0); err != nil {
		t.Fatalf("serial 2050, in the window and never accepted: %v", err)
	}
	if l, err := dst.Ledger(ctx); err != nil || len(l) != 1 || l[0].Highest != 2100 || l[0].Name != "dave" {
		t.Fatalf("ledger: %+v %v", l, err)
	}
}

// A trusted sender that differs refuses the whole import.
func testImportConflict(t *testing.T, fresh Fresh) {
	src, dst := must(t, fresh(t)), must(t, fresh(t))
	populate(t, src, "erin")
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := dst.AddTrusted(ctx, "erin", k.Public()); err != nil {
		t.Fatal(err)
	}
	snap, err := src.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ce *state.ConflictError
	if _, err := dst.Import(ctx, snap); !errors.As(err, &ce) || !errors.Is(err, state.ErrExists) {
		t.Fatalf("conflicting import: %v", err)
	}
	got, err := dst.Export(ctx)
	if err != nil || len(got.Counters)+len(got.Streams)+len(got.Accepted)+len(got.Rewraps) != 0 || len(got.Trusted) != 1 {
		t.Fatalf("a refused import wrote: %+v %v", got, err)
	}
}
