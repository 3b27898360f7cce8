package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"testing"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/internal/reference"
)

// An envelope of format version 1 (crafted by the independent encoder,
// signed under FORMAT.md 6.1) still opens on the token, to a file and to
// standard output, and counts in the ledger.
func TestOpenVersion1(t *testing.T) {
	r := newRig(t)
	bobPEM := r.key("bob", "p256", "exchange")
	soft := p256Key(t)
	r.trust("soft", r.write("soft.pem", pemOf(t, soft.Public())))
	bobPub := readECPub(t, r.read(bobPEM))
	plain := randomBytes(3*65536 + 11)
	stream := randomStream()
	for serial, toFile := range map[uint64]bool{1: true, 2: false} {
		c := reference.NewCraft(rand.Reader)
		c.Version = reference.Version1
		c.Stanzas = [][]byte{reference.StanzaFor(rand.Reader, bobPub, c.FK)}
		c.Exts = [][]byte{reference.SenderExt(soft, stream, serial, uint64(time.Now().UnixMilli()))}
		h := c.Header()
		p := reference.EncryptPayload(c.PayloadKey(), plain)
		in := r.write("v1.tseal", append(append(h, p...), reference.Sign(rand.Reader, soft, h, p, reference.SigGood)...))
		if toFile {
			out := r.path("v1.out")
			r.expect(0, r.recv, "open", "-o", out, in)
			if !bytes.Equal(r.read(out), plain) {
				t.Fatal("version 1 envelope opened to the wrong plaintext")
			}
			continue
		}
		res := r.expect(0, r.recv, "open", in)
		if res.stdout != string(plain) {
			t.Fatal("version 1 envelope opened to stdout: wrong plaintext")
		}
	}
	r.ledgerIs("soft", 2, 2)
}

func readECPub(t *testing.T, pemBytes []byte) *ecdsa.PublicKey {
	t.Helper()
	pub, err := envelope.ParsePublicKey(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	return pub.(*ecdsa.PublicKey)
}
