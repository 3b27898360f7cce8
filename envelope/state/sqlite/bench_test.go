package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/tokenseal/tokenseal/envelope/state/statetest"
)

// BenchmarkAcceptBatch: each batch one transaction and one fsync (WAL,
// synchronous=FULL). Compare with the PostgreSQL store's.
func BenchmarkAcceptBatch(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "state"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	statetest.BenchAcceptBatch(b, s)
}
