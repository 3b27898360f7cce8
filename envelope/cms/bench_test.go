package cms

import (
	"bytes"
	"io"
	"testing"
)

// Benchmarks (not run by `go test`): throughput of Seal and of Open +
// DecryptTo / VerifyTo over 64 MiB in memory, to io.Discard.

const benchSize = 64 << 20

type discardOut struct{}

func (discardOut) Write(p []byte) (int, error) { return len(p), nil }
func (discardOut) Discard() error              { return nil }

func benchMessage(b *testing.B, opts *SealOptions) ([]byte, *testKey) {
	ks, _ := keys(b)
	k := ks["p256"]
	r, _ := NewKeyRecipient(k.priv.Public(), 0)
	return sealBytes(b, make([]byte, benchSize), []*Recipient{r}, opts), k
}

func BenchmarkSeal(b *testing.B) {
	for _, c := range []struct {
		name string
		opts func() *SealOptions
	}{
		{"gcm", func() *SealOptions { return nil }},
		{"gcm-signed", func() *SealOptions { return &SealOptions{Sender: sender(b, "sign-p256", true)} }},
		{"cbc", func() *SealOptions { return &SealOptions{Compat: true} }},
		{"gcm-pem", func() *SealOptions { return &SealOptions{Armor: true} }},
	} {
		b.Run(c.name, func(b *testing.B) {
			ks, _ := keys(b)
			r, _ := NewKeyRecipient(ks["p256"].priv.Public(), 0)
			src := make([]byte, benchSize)
			b.SetBytes(benchSize)
			for b.Loop() {
				w, err := Seal(io.Discard, []*Recipient{r}, c.opts())
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(w, bytes.NewReader(src)); err != nil {
					b.Fatal(err)
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, c := range []struct {
		name   string
		opts   func() *SealOptions
		verify bool
	}{
		{"gcm", func() *SealOptions { return nil }, false},
		{"gcm-verify-only", func() *SealOptions { return nil }, true},
		{"gcm-signed", func() *SealOptions { return &SealOptions{Sender: sender(b, "sign-p256", true)} }, false},
		{"cbc", func() *SealOptions { return &SealOptions{Compat: true} }, false},
		{"gcm-pem", func() *SealOptions { return &SealOptions{Armor: true} }, false},
	} {
		b.Run(c.name, func(b *testing.B) {
			opts := c.opts()
			msg, k := benchMessage(b, opts)
			oo := &OpenOptions{AllowUnsigned: true, AllowUnauthenticated: true}
			if opts != nil && opts.Sender != nil {
				oo.Senders = trusted{opts.Sender.Signer.Public()}
			}
			ids := k.identity(b)
			b.SetBytes(benchSize)
			for b.Loop() {
				d, err := Open(bytes.NewReader(msg), ids, oo)
				if err != nil {
					b.Fatal(err)
				}
				if c.verify {
					_, err = d.VerifyTo(io.Discard)
				} else {
					_, err = d.DecryptTo(discardOut{})
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
