package sqlite

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/tokenseal/tokenseal/envelope/state"
)

// BenchmarkAcceptBatch: one opener recording batches of 128 new serials
// of one stream (the shape of a batch open), each batch one transaction
// and one fsync (WAL, synchronous=FULL). Compare with the PostgreSQL
// store's benchmark of the same name.
func BenchmarkAcceptBatch(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "state"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
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
