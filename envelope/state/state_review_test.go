package state

import (
	"errors"
	"testing"
	"time"
)

// TestAcceptFull64BitStream: FORMAT.md makes stream_id any random u64; a
// sender whose stream id has the top bit set (half of all random ones
// drawn by another writer) was refused as "below the replay window".
// Stream ids are only compared, so they are stored as their int64 bit
// pattern; replays in such a stream are still refused.
func TestAcceptFull64BitStream(t *testing.T) {
	s := open(t, t.TempDir())
	key := [32]byte{7}
	const stream = 1<<63 | 12345
	now := time.Now()
	if err := s.Accept(ctx, key, stream, 1, 0, "x", now); err != nil {
		t.Fatalf("serial 1 of stream %#x: %v", uint64(stream), err)
	}
	if err := s.Accept(ctx, key, stream, 1, 0, "x", now); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay of serial 1: %v, want a replay refusal", err)
	}
	// The same low 63 bits without the top bit is another stream.
	if err := s.Accept(ctx, key, stream&^(1<<63), 1, 0, "x", now); err != nil {
		t.Fatalf("serial 1 of stream %#x: %v", uint64(stream&^(1<<63)), err)
	}
	l, err := s.Ledger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range l {
		found = found || e.StreamID == stream
	}
	if !found {
		t.Fatalf("ledger does not show stream %#x: %+v", uint64(stream), l)
	}
}
