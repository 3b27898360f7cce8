package envelope_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
	ref "github.com/tokenseal/tokenseal/internal/reference"
)

func TestRewrap(t *testing.T) {
	ks := testKeys(t)
	alice, bob, carol := ks[1], ks[2], ks[3]
	signer, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rotator, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	plain := make([]byte, 200000)
	rand.Read(plain)
	orig := sealSigned(t, plain, false, &envelope.Sender{Signer: signer, StreamID: 4, Serial: 9, Time: time.Now()}, recipient(t, alice), recipient(t, bob))

	aliceID, _ := envelope.KeyIDOf(alice.priv.Public())
	var out bytes.Buffer
	res, err := envelope.Rewrap(&out, bytes.NewReader(orig), []envelope.Identity{identity(t, bob)}, &envelope.RewrapOptions{
		Open:   trusting(signer.Public()),
		Add:    []envelope.Recipient{recipient(t, carol), recipient(t, bob)},
		Remove: []envelope.KeyID{aliceID},
		NewSender: func(orig *envelope.Opened) (*envelope.Sender, error) {
			if orig.Sender == nil || orig.Sender.Serial != 9 {
				t.Errorf("NewSender sees the original's sender %+v", orig.Sender)
			}
			return &envelope.Sender{Signer: rotator, StreamID: 1, Serial: 1, Time: time.Now()}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Added != 1 || res.Removed != 1 {
		t.Fatalf("added %d removed %d", res.Added, res.Removed)
	}
	re := out.Bytes()
	// The payload bytes are unchanged.
	io, _ := envelope.Inspect(bytes.NewReader(orig))
	in, _ := envelope.Inspect(bytes.NewReader(re))
	if in.PayloadLen != io.PayloadLen || in.PlaintextLen != int64(len(plain)) {
		t.Fatalf("payload %d/%d, plaintext %d", in.PayloadLen, io.PayloadLen, in.PlaintextLen)
	}
	op := orig[io.HeaderLen : io.HeaderLen+int(io.PayloadLen)]
	np := re[in.HeaderLen : in.HeaderLen+int(in.PayloadLen)]
	if !bytes.Equal(op, np) {
		t.Fatal("payload bytes changed")
	}
	if in.PreviousSender == nil || in.PreviousSender.Serial != 9 || in.Sender.Serial != 1 {
		t.Fatalf("sender %+v previous %+v", in.Sender, in.PreviousSender)
	}
	// Carol and Bob open it as from the rotator; Alice cannot.
	for _, k := range []testKey{bob, carol} {
		got, r, err := openWith(re, trusting(rotator.Public()), identity(t, k))
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%s: %v", k.name, err)
		}
		if r.PreviousSender == nil || r.PreviousSender.Serial != 9 {
			t.Fatalf("previous sender %+v", r.PreviousSender)
		}
	}
	var nm *envelope.NoIdentityMatchError
	if _, _, err := openWith(re, trusting(rotator.Public()), identity(t, alice)); !errors.As(err, &nm) {
		t.Fatalf("alice: %v", err)
	}
	// The original signer is not the new envelope's signer.
	if _, _, err := openWith(re, trusting(signer.Public()), identity(t, bob)); err == nil {
		t.Fatal("rewrapped envelope verified under the original signer")
	}
	// Removing everyone is refused.
	bobID, _ := envelope.KeyIDOf(bob.priv.Public())
	_, err = envelope.Rewrap(&bytes.Buffer{}, bytes.NewReader(orig), []envelope.Identity{identity(t, bob)}, &envelope.RewrapOptions{
		Open: trusting(signer.Public()), Remove: []envelope.KeyID{aliceID, bobID},
	})
	if !errors.Is(err, envelope.ErrNoRecipientsLeft) {
		t.Fatalf("remove all: %v", err)
	}
	// A tampered original is refused, whatever was written.
	bad := bytes.Clone(orig)
	bad[len(bad)-100] ^= 1
	_, err = envelope.Rewrap(&bytes.Buffer{}, bytes.NewReader(bad), []envelope.Identity{identity(t, bob)}, &envelope.RewrapOptions{
		Open: trusting(signer.Public()), Add: []envelope.Recipient{recipient(t, carol)},
	})
	if !errors.Is(err, envelope.ErrRejected) {
		t.Fatalf("tampered original: %v", err)
	}
}

// A rewrap to an anonymous envelope carries no previous-sender
// extension: in an unsigned envelope anyone could have written it
// (FORMAT.md, section 2.4). Before the fix it named the original signer.
func TestRewrapAnonymousNoPreviousSender(t *testing.T) {
	ks := testKeys(t)
	bob := ks[2]
	signer, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	orig := sealSigned(t, []byte("x"), false, &envelope.Sender{Signer: signer, StreamID: 4, Serial: 9, Time: time.Now()}, recipient(t, bob))
	var out bytes.Buffer
	if _, err := envelope.Rewrap(&out, bytes.NewReader(orig), []envelope.Identity{identity(t, bob)}, &envelope.RewrapOptions{
		Open: trusting(signer.Public()), Add: []envelope.Recipient{recipient(t, ks[1])},
	}); err != nil {
		t.Fatal(err)
	}
	info, err := envelope.Inspect(bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if info.Sender != nil || info.PreviousSender != nil || len(info.Extensions) != 0 {
		t.Fatalf("anonymous rewrap: sender %+v, previous sender %+v, extensions %v", info.Sender, info.PreviousSender, info.Extensions)
	}
}

// Removing a key the original is not addressed to is refused before the
// new sender is asked for (so no serial is reserved) and before anything
// is written. Before the fix it was silently ignored.
func TestRewrapRemoveNotRecipient(t *testing.T) {
	ks := testKeys(t)
	bob := ks[2]
	orig := seal(t, []byte("x"), false, recipient(t, bob))
	other, _ := envelope.KeyIDOf(ks[1].priv.Public())
	var out bytes.Buffer
	_, err := envelope.Rewrap(&out, bytes.NewReader(orig), []envelope.Identity{identity(t, bob)}, &envelope.RewrapOptions{
		Remove: []envelope.KeyID{other},
		NewSender: func(*envelope.Opened) (*envelope.Sender, error) {
			t.Error("NewSender called")
			return nil, nil
		},
	})
	var nr *envelope.NotRecipientError
	if !errors.As(err, &nr) || nr.KeyID != other || out.Len() != 0 {
		t.Fatalf("err = %v, %d bytes written", err, out.Len())
	}
}

func TestInspectLengths(t *testing.T) {
	k := testKeys(t)[2]
	for _, n := range []int{0, 1, 65535, 65536, 65537, 200000} {
		for _, armor := range []bool{false, true} {
			env := seal(t, make([]byte, n), armor, recipient(t, k))
			info, err := envelope.Inspect(bytes.NewReader(env))
			if err != nil {
				t.Fatal(err)
			}
			if info.PlaintextLen != int64(n) || info.Armored != armor || len(info.Stanzas) != 1 || info.Stanzas[0].Alg != "ECDH-P256" {
				t.Fatalf("n=%d armor=%v: %+v", n, armor, info)
			}
		}
	}
}

// A version 1 original (crafted by the independent encoder, signed under
// FORMAT.md 6.1) is verified with its own rules and rewrapped as version
// 2, payload bytes unchanged, signed under 6.2 or anonymous (FORMAT.md
// section 9); the independent decoder opens the result.
func TestRewrapVersion1(t *testing.T) {
	ks := testKeys(t)
	bob, carol := ks[2], ks[3]
	signer, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rotator, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	plain := make([]byte, 3*65536+7)
	rand.Read(plain)
	c := ref.NewCraft(rand.Reader)
	c.Version = ref.Version1
	c.Stanzas = [][]byte{ref.StanzaFor(rand.Reader, bob.priv.Public(), c.FK)}
	c.Exts = [][]byte{ref.SenderExt(signer, 5, 6, uint64(time.Now().UnixMilli()))}
	h := c.Header()
	p := ref.EncryptPayload(c.PayloadKey(), plain)
	orig := append(append(bytes.Clone(h), p...), ref.Sign(rand.Reader, signer, h, p, ref.SigGood)...)
	if got, _, err := openWith(orig, trusting(signer.Public()), identity(t, bob)); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("version 1 original: %v", err)
	}
	for _, sender := range []*envelope.Sender{{Signer: rotator, StreamID: 1, Serial: 2, Time: time.Now()}, nil} {
		var out bytes.Buffer
		_, err := envelope.Rewrap(&out, bytes.NewReader(orig), []envelope.Identity{identity(t, bob)}, &envelope.RewrapOptions{
			Open: trusting(signer.Public()), Add: []envelope.Recipient{recipient(t, carol)},
			NewSender: func(*envelope.Opened) (*envelope.Sender, error) { return sender, nil },
		})
		if err != nil {
			t.Fatal(err)
		}
		re := out.Bytes()
		if re[len(ref.Magic)] != ref.Version2 {
			t.Fatalf("rewrapped as version %d", re[len(ref.Magic)])
		}
		nh, np, err := ref.Parse(re)
		if err != nil || !bytes.Equal(np[:len(p)], p) {
			t.Fatalf("payload bytes changed: %v", err)
		}
		var senders []crypto.PublicKey
		if sender != nil {
			senders = append(senders, rotator.Public())
			if nh.Sender == nil {
				t.Fatal("no sender extension")
			}
		}
		got, err := ref.OpenSigned(re, []crypto.PrivateKey{carol.priv}, senders)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("independent decoder on the rewrapped envelope (signed %v): %v", sender != nil, err)
		}
	}
	// The original's version 1 signature is checked: a bad one is refused.
	bad := bytes.Clone(orig)
	bad[len(bad)-1] ^= 1
	_, err := envelope.Rewrap(&bytes.Buffer{}, bytes.NewReader(bad), []envelope.Identity{identity(t, bob)}, &envelope.RewrapOptions{
		Open: trusting(signer.Public()), Add: []envelope.Recipient{recipient(t, carol)},
	})
	if !errors.Is(err, envelope.ErrSignature) {
		t.Fatalf("bad version 1 signature: %v", err)
	}
}

// FORMAT.md 2.4: an envelope without a sender extension that names a
// previous sender is refused by every reader, Inspect included (before,
// inspect showed "sender: none" followed by the forged previous sender).
func TestPreviousSenderUnsigned(t *testing.T) {
	k := testKeys(t)[2]
	e := ref.NewCraft(rand.Reader)
	e.Stanzas = [][]byte{ref.StanzaFor(rand.Reader, k.priv.Public(), e.FK)}
	v := make([]byte, 56)
	v[39], v[47], v[55] = 1, 1, 1
	e.Exts = [][]byte{ref.EncExt(ref.ExtPrevSender, v)}
	env := e.Seal([]byte("forged history"))
	var pe *envelope.ParseError
	if _, err := envelope.Inspect(bytes.NewReader(env)); !errors.As(err, &pe) || !strings.Contains(err.Error(), "previous-sender extension in an unsigned envelope") {
		t.Errorf("Inspect: %v", err)
	}
	if _, err := open(env, identity(t, k)); !errors.As(err, &pe) {
		t.Errorf("Open: %v", err)
	}
}
