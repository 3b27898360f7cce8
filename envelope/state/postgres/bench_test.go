package postgres

import (
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tokenseal/tokenseal/envelope/state"
	"github.com/tokenseal/tokenseal/envelope/state/statetest"
)

// BenchmarkAcceptBatch per strategy (statetest.BenchAcceptBatch). The
// package's server runs with fsync=off; make bench measures with fsync on.
func BenchmarkAcceptBatch(b *testing.B) {
	for _, st := range strategies {
		b.Run(st.name, func(b *testing.B) {
			statetest.BenchAcceptBatch(b, openT(b, srv.URL(srv.NewDatabase(b)), st.opts))
		})
	}
}

var strategies = []struct {
	name string
	opts Options
}{
	{"rowlock", Options{}},
	{"serializable", Options{Serializable: true}},
}

// BenchmarkContention: 8 openers, each its own connection, each round
// every one records a batch of 32 serials. Same stream: they all offer
// the same serials, as openers racing on one set of envelopes do, so each
// serial is accepted once and refused 7 times; lockstep: every round
// starts for all at once (the worst case). Different streams: each its
// own. Reported: accepted serials per second, transactions run again,
// and batches that failed (the serializable strategy gives up after its
// bounded retries: for a user, an exit 1).
func BenchmarkContention(b *testing.B) {
	openers, batch := benchOpeners(), 32
	for _, st := range strategies {
		for _, mode := range []string{"same-stream", "same-stream-lockstep", "different-streams"} {
			same, lockstep := mode != "different-streams", mode == "same-stream-lockstep"
			b.Run(st.name+"/"+mode, func(b *testing.B) {
				url := srv.URL(srv.NewDatabase(b))
				stats := &Stats{}
				opts := st.opts
				opts.Stats = stats
				var stores []*Store
				for w := 0; w < openers; w++ {
					stores = append(stores, openT(b, url, opts))
				}
				var mu sync.Mutex
				accepted, failed := 0, 0
				rounds := make([]sync.WaitGroup, b.N)
				for i := range rounds {
					rounds[i].Add(openers)
				}
				b.ResetTimer()
				var wg sync.WaitGroup
				for w, s := range stores {
					wg.Add(1)
					go func() {
						defer wg.Done()
						stream := uint64(w + 1)
						if same {
							stream = 1
						}
						for i := 0; i < b.N; i++ {
							if lockstep {
								// Everyone starts the round together.
								rounds[i].Done()
								rounds[i].Wait()
							}
							items := make([]state.AcceptItem, batch)
							for k := range items {
								items[k] = state.AcceptItem{KeyID: [32]byte{2}, Stream: stream, Serial: uint64(i*batch + k + 1)}
							}
							errs := s.AcceptBatch(ctx, items, 0, time.Now())
							mu.Lock()
							for _, err := range errs {
								switch {
								case err == nil:
									accepted++
								case !isReplay(err):
									failed++
								}
							}
							mu.Unlock()
						}
					}()
				}
				wg.Wait()
				secs := b.Elapsed().Seconds()
				b.ReportMetric(float64(accepted)/secs, "accepted/s")
				b.ReportMetric(float64(stats.Retries.Load())/float64(b.N), "retries/round")
				b.ReportMetric(float64(failed)/float64(batch), "failed-batches")
			})
		}
	}
}

func isReplay(err error) bool {
	_, ok := err.(*state.ReplayError)
	return ok
}

// benchOpeners is TOKENSEAL_BENCH_OPENERS, else 8.
func benchOpeners() int {
	if n, err := strconv.Atoi(os.Getenv("TOKENSEAL_BENCH_OPENERS")); err == nil && n > 0 {
		return n
	}
	return 8
}
