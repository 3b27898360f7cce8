// Command bytecost measures, for scripts/bench.sh, what one core spends
// per byte on the work a tokenseal payload needs: AES-256-GCM sealing and
// opening 64 KiB chunks, and SHA-256 over them (the chunk digests of a
// signed envelope). It counts the CPU time of the thread doing the work
// (so time stolen by other processes is not counted), keeps the best of
// a few rounds, and prints nanoseconds per byte:
//
//	gcm-seal ns/byte=0.170
//	gcm-open ns/byte=0.172
//	sha256 ns/byte=0.556
//
//	bytecost [-mib 256] [-rounds 5]
package main

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

const chunk = 64 << 10

func main() {
	mib := flag.Int("mib", 256, "MiB processed per round")
	rounds := flag.Int("rounds", 5, "rounds; the best is kept")
	flag.Parse()
	runtime.LockOSThread()
	b, err := aes.NewCipher(make([]byte, 32))
	if err != nil {
		fail(err)
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		fail(err)
	}
	n := *mib << 20 / chunk
	nonce := make([]byte, a.NonceSize())
	pt := make([]byte, chunk)
	buf := make([]byte, 0, chunk+a.Overhead())
	ct := a.Seal(nil, nonce, pt, nil)
	measure("gcm-seal", *rounds, n*chunk, func() {
		for range n {
			buf = a.Seal(buf[:0], nonce, pt, nil)
		}
	})
	measure("gcm-open", *rounds, n*chunk, func() {
		for range n {
			if _, err := a.Open(buf[:0], nonce, ct, nil); err != nil {
				fail(err)
			}
		}
	})
	h := sha256.New()
	var sum [32]byte
	measure("sha256", *rounds, n*len(ct), func() {
		for range n {
			h.Reset()
			h.Write(ct)
			h.Sum(sum[:0])
		}
	})
}

// measure prints the best CPU time per byte of f over rounds.
func measure(name string, rounds, bytes int, f func()) {
	best := time.Duration(1<<63 - 1)
	for range rounds {
		t0 := threadCPU()
		f()
		best = min(best, threadCPU()-t0)
	}
	fmt.Printf("%s ns/byte=%.3f\n", name, float64(best.Nanoseconds())/float64(bytes))
}

func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		fail(err)
	}
	return time.Duration(ts.Nano())
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bytecost: error:", err)
	os.Exit(1)
}
