package envelope_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
)

var benchSizes = []int{1 << 10, 1 << 20, 64 << 20}

func BenchmarkSeal(b *testing.B) {
	k := testKeys(b)[2]
	r := recipient(b, k)
	signer, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, signed := range []bool{false, true} {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("signed=%v/%d", signed, n), func(b *testing.B) {
				plain := make([]byte, n)
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					opts := &envelope.SealOptions{}
					if signed {
						opts.Sender = &envelope.Sender{Signer: signer, Serial: uint64(i + 1), Time: time.Now()}
					}
					w, err := envelope.Seal(io.Discard, []envelope.Recipient{r}, opts)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := w.(io.ReaderFrom).ReadFrom(bytes.NewReader(plain)); err != nil {
						b.Fatal(err)
					}
					if err := w.Close(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	k := testKeys(b)[2]
	r, id := recipient(b, k), identity(b, k)
	signer, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, signed := range []bool{false, true} {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("signed=%v/%d", signed, n), func(b *testing.B) {
				opts := &envelope.SealOptions{}
				if signed {
					opts.Sender = &envelope.Sender{Signer: signer, Serial: 1, Time: time.Now()}
				}
				var buf bytes.Buffer
				w, _ := envelope.Seal(&buf, []envelope.Recipient{r}, opts)
				w.Write(make([]byte, n))
				w.Close()
				env := buf.Bytes()
				oo := trusting(signer.Public())
				oo.RefuseAnonymous = false
				b.SetBytes(int64(n))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					rd, err := envelope.Open(bytes.NewReader(env), []envelope.Identity{id}, oo)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.Copy(io.Discard, rd); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkSealRecipients measures the cost of many recipients: it should
// be the public-key work and nothing more.
func BenchmarkSealRecipients(b *testing.B) {
	var rs []envelope.Recipient
	for i := 0; i < 100; i++ {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		r, _ := envelope.NewRecipient(k.Public(), 0)
		rs = append(rs, r)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		w, _ := envelope.Seal(io.Discard, rs, nil)
		w.Write([]byte("hi"))
		w.Close()
	}
}
