package receive_test

import (
	"bytes"
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/state"
	ref "github.com/tokenseal/tokenseal/internal/reference"
)

// lyingSigner claims pub's identity and signs with another key.
type lyingSigner struct {
	pub crypto.PublicKey
	key crypto.Signer
}

func (l lyingSigner) Public() crypto.PublicKey { return l.pub }
func (l lyingSigner) Sign(rnd io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	return l.key.Sign(rnd, d, o)
}

// Forged envelopes are rejected (never as replays) and leave the ledger
// as it was; afterwards the genuine envelopes with the serials they
// claimed are accepted, so no serial was burnt and the window was not
// pushed.
//
// The co-recipient forgery is built from the exported API and FORMAT.md
// (internal/reference): Mallory, a second recipient, unwraps the file key
// with her own identity, derives the payload key (section 3) and
// encrypts her own payload (section 5) under the original header, whose
// MAC still verifies, keeping the sender's signature. She can also
// rewrite the header (a far-future serial, with a MAC she recomputes),
// which would push the sender's genuine serials below the window if the
// ledger moved.
func TestForgeries(t *testing.T) {
	r := newRig(t)
	alice, mallory, eve := p256(t), p256(t), p256(t) // eve: untrusted
	r.trust("alice", alice.Public())
	toMallory, err := envelope.NewRecipient(mallory.Public(), 0)
	if err != nil {
		t.Fatal(err)
	}
	stream := randomStream()
	genuine := map[int][]byte{1: []byte("pay bob 100\n"), 2: []byte("pay carol 200\n"), 3: []byte("pay dave 300\n")}
	env := map[int][]byte{}
	for s := 1; s <= 3; s++ {
		var extra []envelope.Recipient
		if s == 1 {
			extra = append(extra, toMallory)
		}
		env[s] = r.seal(genuine[s], &envelope.Sender{Signer: alice, StreamID: stream, Serial: uint64(s), Time: time.Now()}, extra...)
	}
	h1, _, trailer1 := split(t, env[1])
	if h1.Sender.Serial != 1 || len(h1.Stanzas) != 2 {
		t.Fatalf("g1: serial %d, %d stanzas", h1.Sender.Serial, len(h1.Stanzas))
	}

	type forgery struct {
		name, reason string
		data         []byte
	}
	var forgeries []forgery
	evil := []byte("pay eve 999\n")
	// Re-signed by an untrusted key, claiming alice's stream and serial 1.
	forgeries = append(forgeries, forgery{"untrusted signer", `signed by an untrusted key`,
		r.seal(evil, &envelope.Sender{Signer: eve, StreamID: stream, Serial: 1, Time: time.Now()})})
	// Naming alice's key but signed by eve's.
	forgeries = append(forgeries, forgery{"signature by another key", `sender signature does not verify`,
		r.seal(evil, &envelope.Sender{Signer: lyingSigner{alice.Public(), eve}, StreamID: stream, Serial: 1, Time: time.Now()})})

	// Mallory's file key from her own stanza of g1.
	fk, err := ref.Unwrap(h1, []crypto.PrivateKey{mallory})
	if err != nil {
		t.Fatal(err)
	}
	_, kPayload := ref.DeriveKeys(fk, h1.Salt)
	forgeries = append(forgeries,
		forgery{"co-recipient payload under the original header", `sender signature does not verify`,
			slices.Concat(h1.Raw(), ref.EncryptPayload(kPayload, evil), trailer1)},
		// Her payload, the original header, and a short trailer.
		forgery{"co-recipient, signature cut", `.`,
			slices.Concat(h1.Raw(), ref.EncryptPayload(kPayload, evil), trailer1[:10])})
	// The original payload under a header claiming serial 1,000,000, MAC
	// recomputed with K_header.
	hdr := bytes.Clone(h1.Raw())
	binary.BigEndian.PutUint64(hdr[h1.Sender.At+43:], 1_000_000)
	kHeader, _ := ref.DeriveKeys(fk, h1.Salt)
	mac := hmac.New(sha256.New, kHeader)
	mac.Write(hdr[:len(hdr)-ref.MACSize])
	copy(hdr[len(hdr)-ref.MACSize:], mac.Sum(nil))
	if hh, _, err := ref.Parse(hdr); err != nil || hh.Sender.Serial != 1_000_000 {
		t.Fatalf("rewritten header: %v", err)
	}
	forgeries = append(forgeries, forgery{"co-recipient header with serial 1000000", `sender signature does not verify`,
		slices.Concat(hdr, env[1][len(h1.Raw()):])})

	// Payload swapped between two envelopes of the same sender.
	h2, _, trailer2 := split(t, env[2])
	_, payload3, trailer3 := split(t, env[3])
	forgeries = append(forgeries,
		forgery{"g2 header, g3 payload and signature", `payload authentication failed`, slices.Concat(h2.Raw(), payload3, trailer3)},
		forgery{"g2 header and signature, g3 payload", `payload authentication failed`, slices.Concat(h2.Raw(), payload3, trailer2)})

	rcv := r.receiver()
	check := func(round string) {
		t.Helper()
		for _, f := range forgeries {
			t.Run(round+"/"+f.name, func(t *testing.T) {
				(&rig{t: t, st: r.st}).refused(rcv, f.data, envelope.ErrRejected, f.reason)
			})
		}
	}
	check("before")
	r.ledgerIs("", 0, 0) // nothing recorded

	for s := 1; s <= 3; s++ {
		r.openOK(rcv, env[s], genuine[s])
	}
	r.ledgerIs("alice", 3, 3)
	r.refused(rcv, env[1], state.ErrReplay, `^replayed envelope: serial 1 from alice`)
	// Verification comes before the ledger: forgeries of accepted serials
	// are still forgeries, and still change nothing.
	check("after")
	r.ledgerIs("alice", 3, 3)
}

// split cuts a binary envelope into header, payload and trailer.
func split(t *testing.T, env []byte) (h *ref.Header, payload, trailer []byte) {
	t.Helper()
	h, rest, err := ref.Parse(env)
	if err != nil {
		t.Fatal(err)
	}
	end := len(rest) - h.TrailerLen()
	return h, rest[:end], rest[end:]
}
