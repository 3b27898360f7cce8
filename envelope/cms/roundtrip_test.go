package cms

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"
)

// TestRoundTrip seals and opens every combination of key, recipient
// form, content algorithm, signer and armor, the size cycling through the
// boundaries (a full matrix of sizes too would cost minutes under -race).
func TestRoundTrip(t *testing.T) {
	ks, _ := keys(t)
	sizes := []int{0, 1, 15, 16, 17, contentChunk + 3}
	i := 0
	for _, name := range []string{"rsa2048", "rsa3072", "p256", "p384"} {
		k := ks[name]
		for _, byCert := range []bool{true, false} {
			r := recipientFor(t, k, byCert)
			for _, compat := range []bool{false, true} {
				for _, signed := range []string{"", "sign-p256", "sign-rsa2048"} {
					for _, armor := range []bool{false, true} {
						size := sizes[i%len(sizes)]
						i++
						name := fmt.Sprintf("%s/cert=%v/compat=%v/signed=%s/armor=%v/%d", name, byCert, compat, signed, armor, size)
						roundTrip(t, name, k, r, compat, signed, armor, size)
					}
				}
			}
		}
	}
}

func roundTrip(t *testing.T, name string, k *testKey, r *Recipient, compat bool, signer string, armor bool, size int) {
	pt := make([]byte, size)
	rand.Read(pt)
	opts := &SealOptions{Compat: compat, Armor: armor}
	oo := &OpenOptions{AllowUnauthenticated: compat, AllowUnsigned: signer == ""}
	if signer != "" {
		opts.Sender = sender(t, signer, signer == "sign-p256")
		oo.Senders = trusted{opts.Sender.Signer.Public()}
	}
	msg := sealBytes(t, pt, []*Recipient{r}, opts)
	got, res, err := openBytes(msg, k.identity(t), oo)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if !bytes.Equal(got, pt) || res.Length != int64(size) {
		t.Fatalf("%s: plaintext differs", name)
	}
	if (res.Sender != nil) != (signer != "") {
		t.Fatalf("%s: sender %v", name, res.Sender)
	}
	if s := res.Sender; s != nil && (!s.HasStamp || s.Serial != 42 || s.StreamID != 7 || !s.SigningTime.Equal(opts.Sender.Time)) {
		t.Fatalf("%s: sender %+v", name, s)
	}
	// The same through VerifyTo and DecryptFrom.
	d, err := Open(bytes.NewReader(msg), k.identity(t), oo)
	if err != nil {
		t.Fatal(err)
	}
	var spool, out bytes.Buffer
	v, err := d.VerifyTo(&spool)
	if err != nil {
		t.Fatalf("%s: VerifyTo: %v", name, err)
	}
	if err := v.DecryptFrom(&spool, &out); err != nil || !bytes.Equal(out.Bytes(), pt) {
		t.Fatalf("%s: DecryptFrom: %v", name, err)
	}
}

// failWriter fails every write after the first n bytes.
type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n -= len(p); f.n < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

// TestSealWriteError: an output that fails makes Write or Close fail, and
// Seal's worker goroutine stops.
func TestSealWriteError(t *testing.T) {
	ks, _ := keys(t)
	r := recipientFor(t, ks["p256"], false)
	before := runtime.NumGoroutine()
	for _, limit := range []int{0, 100, contentChunk, 3 * contentChunk} {
		w, err := Seal(&failWriter{n: limit}, []*Recipient{r}, &SealOptions{Sender: sender(t, "sign-p256", false)})
		if err != nil {
			if limit == 0 {
				continue // the header did not fit
			}
			t.Fatal(err)
		}
		_, werr := w.Write(make([]byte, 8*contentChunk))
		cerr := w.Close()
		if werr == nil && cerr == nil {
			t.Fatalf("limit %d: no error", limit)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if after := runtime.NumGoroutine(); after > before {
		t.Fatalf("goroutines: %d before, %d after", before, after)
	}
}

// TestStampRange: stream ids and serials over the whole u64 range of a
// tokenseal envelope's (envelope/FORMAT.md); serial 0 is never written.
func TestStampRange(t *testing.T) {
	ks, _ := keys(t)
	k := ks["p256"]
	r := recipientFor(t, k, false)
	for _, c := range []struct{ stream, serial uint64 }{{0, 1}, {1 << 63, 1<<63 + 1}, {1<<64 - 1, 1<<64 - 1}} {
		snd := sender(t, "sign-p256", false)
		snd.StreamID, snd.Serial = c.stream, c.serial
		msg := sealBytes(t, []byte("x"), []*Recipient{r}, &SealOptions{Sender: snd})
		_, res, err := openBytes(msg, k.identity(t), &OpenOptions{Senders: trusted{snd.Signer.Public()}})
		if err != nil || res.Sender.StreamID != c.stream || res.Sender.Serial != c.serial {
			t.Fatalf("stream %d serial %d: %+v, %v", c.stream, c.serial, res, err)
		}
	}
	snd := sender(t, "sign-p256", false)
	snd.Serial = 0
	if _, err := Seal(io.Discard, []*Recipient{r}, &SealOptions{Sender: snd}); err == nil {
		t.Fatal("serial 0 written")
	}
}
