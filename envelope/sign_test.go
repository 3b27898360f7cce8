package envelope_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
	ref "github.com/tokenseal/tokenseal/internal/reference"
)

func signers(t testing.TB) map[string]crypto.Signer {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]crypto.Signer{"p256": p256, "rsa": r}
}

// sealSigned seals plain to rs, signed by s (anonymous when s is nil).
func sealSigned(t testing.TB, plain []byte, armor bool, s *envelope.Sender, rs ...envelope.Recipient) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := envelope.Seal(&buf, rs, &envelope.SealOptions{Armor: armor, Sender: s})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func trusting(pubs ...crypto.PublicKey) *envelope.OpenOptions {
	return &envelope.OpenOptions{RefuseAnonymous: true, Senders: func(id envelope.KeyID) (crypto.PublicKey, error) {
		for _, p := range pubs {
			if k, _ := envelope.KeyIDOf(p); k == id {
				return p, nil
			}
		}
		return nil, envelope.ErrUnknownSender
	}}
}

// openWith opens with the serial Read path for odd-length envelopes and
// the pipelined WriteTo path for even ones, so both are exercised.
func openWith(env []byte, opts *envelope.OpenOptions, ids ...envelope.Identity) ([]byte, *envelope.Reader, error) {
	r, err := envelope.Open(bytes.NewReader(env), ids, opts)
	if err != nil {
		return nil, nil, err
	}
	if len(env)%2 == 0 {
		var out bytes.Buffer
		_, err := r.WriteTo(&out)
		return out.Bytes(), r, err
	}
	b, err := io.ReadAll(r)
	return b, r, err
}

func TestSignedRoundTrip(t *testing.T) {
	k := testKeys(t)[2]
	for name, sg := range signers(t) {
		for _, armor := range []bool{false, true} {
			for _, n := range []int{0, 1, 65536, 65537, 200000} {
				plain := make([]byte, n)
				rand.Read(plain)
				now := time.UnixMilli(1764000000123)
				env := sealSigned(t, plain, armor, &envelope.Sender{Signer: sg, StreamID: 99, Serial: 7, Time: now}, recipient(t, k))
				got, r, err := openWith(env, trusting(sg.Public()), identity(t, k))
				if err != nil || !bytes.Equal(got, plain) {
					t.Fatalf("%s armor=%v n=%d: %v", name, armor, n, err)
				}
				if r.Sender.Serial != 7 || r.Sender.StreamID != 99 || r.Sender.Time.UnixMilli() != now.UnixMilli() {
					t.Fatalf("sender info %+v", r.Sender)
				}
			}
		}
	}
}

// TestSerialRange: a writer refuses serial 0 and writes, and a reader
// opens, every serial up to 2^64-1 (FORMAT.md section 2.3).
func TestSerialRange(t *testing.T) {
	k := testKeys(t)[2]
	sg := signers(t)["p256"]
	_, err := envelope.Seal(io.Discard, []envelope.Recipient{recipient(t, k)},
		&envelope.SealOptions{Sender: &envelope.Sender{Signer: sg, Serial: 0, Time: time.Now()}})
	if err == nil {
		t.Fatal("serial 0 sealed")
	}
	for _, serial := range []uint64{1, 1<<63 - 1, 1 << 63, 1<<64 - 1} {
		env := sealSigned(t, []byte("x"), false, &envelope.Sender{Signer: sg, Serial: serial, Time: time.Now()}, recipient(t, k))
		_, r, err := openWith(env, trusting(sg.Public()), identity(t, k))
		if err != nil || r.Sender.Serial != serial {
			t.Fatalf("serial %d: %v", serial, err)
		}
	}
}

func TestSignedRefusals(t *testing.T) {
	k := testKeys(t)[2]
	sg := signers(t)
	p256 := sg["p256"]
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	id := identity(t, k)
	plain := []byte("pay bob 100")
	env := sealSigned(t, plain, false, &envelope.Sender{Signer: p256, Serial: 1, Time: time.Now()}, recipient(t, k))

	// Unknown sender: refused before any unwrap.
	_, _, err := openWith(env, trusting(other.Public()), id)
	var us *envelope.UnknownSenderError
	if !errors.As(err, &us) || !errors.Is(err, envelope.ErrRejected) {
		t.Fatalf("untrusted sender: %v", err)
	}
	// Default options trust nobody.
	if _, _, err := openWith(env, nil, id); !errors.As(err, &us) {
		t.Fatalf("nil options: %v", err)
	}
	// Anonymous refused when asked.
	anon := seal(t, plain, false, recipient(t, k))
	if _, _, err := openWith(anon, trusting(p256.Public()), id); !errors.Is(err, envelope.ErrUnsigned) {
		t.Fatalf("anonymous: %v", err)
	}
	// Every byte flip and every truncation of a signed envelope is refused
	// and nothing is accepted as complete.
	for i := range env {
		bad := bytes.Clone(env)
		bad[i] ^= 0x80
		if _, _, err := openWith(bad, trusting(p256.Public()), id); !errors.Is(err, envelope.ErrRejected) {
			t.Fatalf("flip at %d: %v", i, err)
		}
	}
	for n := range env {
		if _, _, err := openWith(env[:n], trusting(p256.Public()), id); !errors.Is(err, envelope.ErrRejected) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
}

// TestSigned: a signed envelope's Signed, once read to io.EOF, is the
// digest its signature covers (FORMAT.md section 6, computed by the
// reference codec from the binary header and payload) and its trailer,
// the same for its armored form; none before io.EOF or for an anonymous
// envelope.
func TestSigned(t *testing.T) {
	k := testKeys(t)[2]
	sg := signers(t)["p256"]
	plain := make([]byte, 70000)
	rand.Read(plain)
	env := sealSigned(t, plain, false, &envelope.Sender{Signer: sg, StreamID: 1, Serial: 2, Time: time.Now()}, recipient(t, k))
	info, err := envelope.Inspect(bytes.NewReader(env))
	if err != nil {
		t.Fatal(err)
	}
	hl, pl := int64(info.HeaderLen), info.PayloadLen
	d, err := ref.SignedDigest(env[:hl], env[hl:hl+pl])
	if err != nil {
		t.Fatal(err)
	}
	wantD, wantT := [32]byte(d), env[hl+pl:]
	for name, e := range map[string][]byte{"binary": env, "armored": ref.Armor(env)} {
		r, err := envelope.Open(bytes.NewReader(e), []envelope.Identity{identity(t, k)}, trusting(sg.Public()))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, ok := r.Signed(); ok {
			t.Fatalf("%s: Signed before io.EOF", name)
		}
		if _, err := r.WriteTo(io.Discard); err != nil {
			t.Fatal(err)
		}
		got, tr, ok := r.Signed()
		if !ok || got != wantD || !bytes.Equal(tr, wantT) {
			t.Fatalf("%s: Signed = %x %x %v", name, got, tr, ok)
		}
	}
	anon := sealSigned(t, plain, false, nil, recipient(t, k))
	_, r, err := openWith(anon, nil, identity(t, k))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := r.Signed(); ok {
		t.Fatal("Signed of an anonymous envelope")
	}
}
