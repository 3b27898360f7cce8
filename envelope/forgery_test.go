package envelope

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/tokenseal/tokenseal/envelope/internal/format"
	"github.com/tokenseal/tokenseal/envelope/internal/stream"
)

// A co-recipient knows the file key: she unwraps it with her own key,
// encrypts a payload of her choosing under the original header's payload
// key, and keeps the original header (whose MAC still verifies) and the
// original signature. The signature covers the ciphertext, so the other
// recipient refuses it.
func TestCoRecipientForgery(t *testing.T) {
	signer, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	alice, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mallory, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ra, _ := NewRecipient(alice.Public(), 0)
	rm, _ := NewRecipient(mallory.Public(), 0)
	var buf bytes.Buffer
	w, err := Seal(&buf, []Recipient{ra, rm}, &SealOptions{Sender: &Sender{Signer: signer, Serial: 1, Time: time.Now()}})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("pay bob 100"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	env := buf.Bytes()

	// Mallory's side.
	h, raw, err := format.ReadHeader(bytes.NewReader(env))
	if err != nil {
		t.Fatal(err)
	}
	mid, _ := NewSoftwareIdentity(mallory)
	fk, err := mid.Unwrap(stanzasOf(h))
	if err != nil {
		t.Fatal(err)
	}
	ks, _ := deriveKeys(fk, h.Salt[:])
	var forged bytes.Buffer
	forged.Write(raw)
	sw, _ := stream.NewWriter(ks.payload, &forged)
	sw.Write([]byte("pay eve 999"))
	sw.Close()
	forged.Write(env[len(env)-64:]) // the original signature

	trust := &OpenOptions{Senders: func(id KeyID) (crypto.PublicKey, error) { return signer.Public(), nil }}
	aid, _ := NewSoftwareIdentity(alice)
	r, err := Open(bytes.NewReader(forged.Bytes()), []Identity{aid}, trust)
	if err != nil {
		t.Fatalf("header should still authenticate: %v", err)
	}
	_, err = io.ReadAll(r)
	if !errors.Is(err, ErrSignature) {
		t.Fatalf("forged payload: err = %v, want ErrSignature", err)
	}
	// The genuine envelope opens.
	r, err = Open(bytes.NewReader(env), []Identity{aid}, trust)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(r); err != nil || string(b) != "pay bob 100" {
		t.Fatalf("genuine: %q %v", b, err)
	}
}
