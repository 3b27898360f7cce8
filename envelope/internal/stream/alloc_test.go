package stream

import (
	"bytes"
	"io"
	"testing"
)

// Neither path allocates per chunk: a stream of 128 chunks allocates no
// more than one of 16 (what it allocates is per stream: workers, their
// AEADs and hashers). Per-chunk garbage would grow the heap, and so the
// peak RSS, with the input size until the collector caught up.
func TestAllocsPerChunk(t *testing.T) {
	allocs := func(n int, readFrom bool) (seal, open float64) {
		plain := make([]byte, n)
		var env []byte
		seal = testing.AllocsPerRun(3, func() {
			var buf bytes.Buffer
			buf.Grow(n + n/64 + 1024)
			w, _ := NewWriter(key, &buf)
			w.Digests = NewDigests()
			if readFrom {
				w.ReadFrom(bytes.NewReader(plain))
			} else {
				w.Write(plain)
			}
			w.Close()
			env = buf.Bytes()
		})
		open = testing.AllocsPerRun(3, func() {
			r, _ := NewReader(key, bytes.NewReader(env), 0)
			r.Digests = NewDigests()
			if readFrom {
				r.WriteTo(io.Discard)
			} else {
				io.Copy(onlyWriter{io.Discard}, struct{ io.Reader }{r})
			}
		})
		return seal, open
	}
	for _, pipelined := range []bool{true, false} {
		s1, o1 := allocs(16*ChunkSize, pipelined)
		s8, o8 := allocs(128*ChunkSize, pipelined)
		if s8 > s1+2 || o8 > o1+2 {
			t.Errorf("pipelined=%v: 16 chunks: %.0f allocations to seal, %.0f to open; 128 chunks: %.0f and %.0f", pipelined, s1, o1, s8, o8)
		}
	}
}
