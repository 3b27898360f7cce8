package statetest

import (
	"testing"
	"time"

	"github.com/tokenseal/tokenseal/envelope/state"
)

// BenchAcceptBatch is the body of both stores' BenchmarkAcceptBatch: one
// opener recording batches of 128 new serials of one stream (the shape
// of a batch open), reporting accepted serials per second.
func BenchAcceptBatch(b *testing.B, s state.Store) {
	items := make([]state.AcceptItem, 128)
	serial := uint64(0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := range items {
			serial++
			items[k] = state.AcceptItem{KeyID: [32]byte{1}, Stream: 1, Serial: serial}
		}
		for _, err := range s.AcceptBatch(ctx, items, 0, time.Now()) {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*len(items))/b.Elapsed().Seconds(), "accepted/s")
}
