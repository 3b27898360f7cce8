package token

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"math/big"
	"testing"
)

// TestDecodeOAEP checks the host-side decoding against crypto/rsa, using a
// software key to play the token's raw RSA.
func TestDecodeOAEP(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	raw := func(ct []byte) []byte {
		m := new(big.Int).Exp(new(big.Int).SetBytes(ct), priv.D, priv.N)
		return m.FillBytes(make([]byte, priv.Size()))
	}
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA512} {
		for _, n := range []int{0, 1, 32, priv.Size() - 2*h.Size() - 2} {
			msg := make([]byte, n)
			rand.Read(msg)
			ct, err := rsa.EncryptOAEP(h.New(), rand.Reader, &priv.PublicKey, msg, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeOAEP(h.New(), raw(ct))
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("%v len %d: %v", h, n, err)
			}
			// Any flipped bit of the encoded message is rejected.
			for i := 0; i < 20; i++ {
				em := raw(ct)
				em[i*len(em)/20] ^= 1 << (i % 8)
				if _, err := decodeOAEP(h.New(), em); err == nil {
					t.Fatalf("%v: corrupted em at %d accepted", h, i)
				}
			}
			// A label mismatch is rejected.
			ct, _ = rsa.EncryptOAEP(h.New(), rand.Reader, &priv.PublicKey, msg, []byte("l"))
			if _, err := decodeOAEP(h.New(), raw(ct)); err == nil {
				t.Fatalf("%v: labelled ciphertext accepted", h)
			}
		}
	}
	if _, err := decodeOAEP(crypto.SHA256.New(), make([]byte, 65)); err == nil {
		t.Error("too short accepted")
	}
}
