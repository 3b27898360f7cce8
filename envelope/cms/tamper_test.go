package cms

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"testing"
)

// Tampered, truncated and re-ordered messages: every one is refused with
// an error wrapping ErrRejected, and DecryptTo discards what it wrote
// (openBytes panics otherwise); changes to anything secret-dependent give
// exactly ErrDecrypt.

type tamperCase struct {
	name   string
	msg    []byte
	pt     []byte
	key    *testKey
	opts   *OpenOptions
	compat bool
}

// tamperCases are messages of size bytes: AES-GCM to RSA, P-256 and
// P-384 recipients, unsigned and signed (with and without an embedded
// certificate), and one signed AES-CBC (unsigned CBC is malleable by
// design).
func tamperCases(t *testing.T, size int) []tamperCase {
	ks, _ := keys(t)
	var out []tamperCase
	for _, c := range []struct {
		key, signer  string
		cert, compat bool
	}{
		{"rsa2048", "", false, false},
		{"p256", "", false, false},
		{"p384", "sign-rsa2048", false, false},
		{"p256", "sign-p256", true, false},
		{"rsa2048", "sign-p256", false, true},
	} {
		k := ks[c.key]
		r, err := NewCertificateRecipient(k.cert, 0)
		if err != nil {
			t.Fatal(err)
		}
		pt := make([]byte, size)
		rand.Read(pt)
		opts := &SealOptions{Compat: c.compat}
		oo := &OpenOptions{AllowUnsigned: c.signer == "", AllowUnauthenticated: c.compat}
		if c.signer != "" {
			opts.Sender = sender(t, c.signer, c.cert)
			oo.Senders = trusted{opts.Sender.Signer.Public()}
		}
		out = append(out, tamperCase{
			name: fmt.Sprintf("%s/signer=%s/cert=%v/compat=%v", c.key, c.signer, c.cert, c.compat),
			msg:  sealBytes(t, pt, []*Recipient{r}, opts), pt: pt, key: k, opts: oo, compat: c.compat,
		})
	}
	return out
}

// mustRefuse opens msg and fails the test unless it is refused, or
// (accepted) gives exactly the original plaintext.
func mustRefuse(t *testing.T, c tamperCase, msg []byte, what string) (accepted bool) {
	t.Helper()
	got, _, err := openBytes(msg, c.key.identity(t), c.opts)
	if err == nil {
		if !bytes.Equal(got, c.pt) {
			t.Fatalf("%s %s: accepted with a different plaintext", c.name, what)
		}
		return true
	}
	if !errors.Is(err, ErrRejected) {
		t.Fatalf("%s %s: error does not wrap ErrRejected: %v", c.name, what, err)
	}
	return false
}

// TestTamperEveryByte flips one bit in every byte. Nothing is accepted,
// except in EnvelopedData (CBC, unauthenticated) a flip that garbles only
// bytes the signature does not cover: the certificates inside the
// SignedData (RFC 5652 section 5.1 leaves them unsigned). The content and
// the signed attributes are covered; the plaintext is then unchanged
// (mustRefuse checks it).
func TestTamperEveryByte(t *testing.T) {
	for _, c := range tamperCases(t, 40) {
		accepted := 0
		for i := range c.msg {
			m := bytes.Clone(c.msg)
			m[i] ^= 1 << (i % 8)
			if mustRefuse(t, c, m, fmt.Sprintf("bit flip at %d", i)) {
				accepted++
			}
		}
		if accepted != 0 && !c.compat {
			t.Errorf("%s: %d of %d bit flips accepted (with the same plaintext)", c.name, accepted, len(c.msg))
		}
		t.Logf("%s: %d bytes, %d flips accepted with the same plaintext", c.name, len(c.msg), accepted)
	}
}

func TestTamperSampledLarge(t *testing.T) {
	r := mrand.New(mrand.NewPCG(3, 4))
	for _, c := range tamperCases(t, contentChunk+5000)[:4] {
		for range 60 {
			i := r.IntN(len(c.msg))
			m := bytes.Clone(c.msg)
			m[i] ^= byte(1 + r.IntN(255))
			if mustRefuse(t, c, m, fmt.Sprintf("byte changed at %d", i)) {
				t.Fatalf("%s: change at %d accepted", c.name, i)
			}
		}
	}
}

func TestTruncatedAndExtended(t *testing.T) {
	for ci, c := range tamperCases(t, 40) {
		for n := 0; n < len(c.msg); n += 1 + ci {
			if mustRefuse(t, c, c.msg[:n], fmt.Sprintf("cut at %d", n)) {
				t.Fatalf("%s: cut at %d accepted", c.name, n)
			}
		}
		for _, extra := range [][]byte{{0}, {0, 0}, []byte("x"), c.msg} {
			if mustRefuse(t, c, append(bytes.Clone(c.msg), extra...), "with trailing data") {
				t.Fatalf("%s: trailing data accepted", c.name)
			}
		}
	}
}

// mustDecryptErr checks that msg is refused with exactly ErrDecrypt.
func mustDecryptErr(t *testing.T, msg []byte, k *testKey, opts *OpenOptions, what string) {
	t.Helper()
	_, _, err := openBytes(msg, k.identity(t), opts)
	if !errors.Is(err, ErrDecrypt) || err.Error() != ErrDecrypt.Error() {
		t.Fatalf("%s: want the opaque ErrDecrypt, got %v", what, err)
	}
}

func replaceOnce(t *testing.T, msg, old, new []byte) []byte {
	t.Helper()
	if bytes.Count(msg, old) != 1 {
		t.Fatalf("pattern %x found %d times", old, bytes.Count(msg, old))
	}
	return bytes.Replace(msg, old, new, 1)
}

func TestTamperTargeted(t *testing.T) {
	ks, _ := keys(t)
	anyone := &OpenOptions{AllowUnsigned: true}
	pt := make([]byte, 3*contentChunk)
	rand.Read(pt)
	rsaR, _ := NewCertificateRecipient(ks["rsa2048"].cert, 0)
	ecR, _ := NewKeyRecipient(ks["p256"].priv.Public(), 0)
	rsaMsg := sealBytes(t, pt, []*Recipient{rsaR}, nil)
	ecMsg := sealBytes(t, pt, []*Recipient{ecR}, nil)

	t.Run("tag", func(t *testing.T) {
		m := bytes.Clone(rsaMsg)
		m[len(m)-6-1] ^= 0x80 // the tag ends 6 bytes before the end (three EOCs)
		mustDecryptErr(t, m, ks["rsa2048"], anyone, "tag changed")
	})
	t.Run("nonce", func(t *testing.T) {
		i := bytes.Index(rsaMsg, []byte{0x30, 0x11, 0x04, 0x0c})
		m := bytes.Clone(rsaMsg)
		m[i+4] ^= 1
		mustDecryptErr(t, m, ks["rsa2048"], anyone, "nonce changed")
	})
	t.Run("oaep-digest", func(t *testing.T) {
		// SHA-256 to SHA-384 in both the OAEP and MGF1 digests: valid
		// parameters, wrong digest.
		sha256OID, sha384OID := []byte(oidSHA256), []byte(oidSHA384)
		m := bytes.ReplaceAll(rsaMsg, sha256OID, sha384OID)
		mustDecryptErr(t, m, ks["rsa2048"], anyone, "OAEP digest changed")
		// Only one of them: parameters this package refuses to use.
		m = bytes.Replace(rsaMsg, sha256OID, sha384OID, 1)
		if _, _, err := openBytes(m, ks["rsa2048"].identity(t), anyone); !errors.Is(err, ErrRejected) || errors.Is(err, ErrDecrypt) {
			t.Fatalf("OAEP digest != MGF1 digest: %v", err)
		}
	})
	t.Run("kari-ephemeral-point", func(t *testing.T) {
		i := bytes.Index(ecMsg, []byte{0x03, 0x42, 0x00, 0x04})
		for _, off := range []int{5, 20, 40, 60} { // in X and in Y: off the curve
			m := bytes.Clone(ecMsg)
			m[i+off] ^= 1
			mustDecryptErr(t, m, ks["p256"], anyone, fmt.Sprintf("ephemeral point byte %d changed", off))
		}
		// Another valid point: a wrong key-encryption key.
		m := bytes.Clone(ecMsg)
		copy(m[i+3:i+3+65], freshP256Point(t))
		mustDecryptErr(t, m, ks["p256"], anyone, "another ephemeral point")
	})
	t.Run("icv-length", func(t *testing.T) {
		m := replaceOnce(t, rsaMsg, []byte{0x02, 0x01, 0x10, 0xa0, 0x80}, []byte{0x02, 0x01, 0x0c, 0xa0, 0x80})
		if _, _, err := openBytes(m, ks["rsa2048"].identity(t), anyone); !errors.Is(err, ErrRejected) {
			t.Fatalf("12-byte tag: %v", err)
		}
	})
	t.Run("segments-reordered", func(t *testing.T) {
		hdr := append([]byte{0x04}, appendLength(nil, contentChunk)...)
		i := bytes.Index(rsaMsg, hdr)
		seg := len(hdr) + contentChunk
		m := bytes.Clone(rsaMsg)
		copy(m[i:], rsaMsg[i+seg:i+2*seg])
		copy(m[i+seg:], rsaMsg[i:i+seg])
		mustDecryptErr(t, m, ks["rsa2048"], anyone, "segments swapped")
	})
	t.Run("not-addressed", func(t *testing.T) {
		_, _, err := openBytes(rsaMsg, ks["rsa3072"].identity(t), anyone)
		var nr *NoRecipientError
		if !errors.As(err, &nr) || len(nr.Recipients) != 1 || !errors.Is(err, ErrRejected) {
			t.Fatalf("message for another key: %v", err)
		}
	})
}

// TestRecipientInfosSwapped: the encrypted keys swapped between two
// recipient infos give ErrDecrypt; the infos themselves swapped open to
// the same bytes (RFC 5083 leaves recipient infos outside the tag).
func TestRecipientInfosSwapped(t *testing.T) {
	ks, _ := keys(t)
	anyone := &OpenOptions{AllowUnsigned: true}
	pt := make([]byte, 100)
	rand.Read(pt)
	a, _ := NewCertificateRecipient(ks["rsa2048"].cert, 0)
	b, _ := NewCertificateRecipient(ks["rsa2048-b"].cert, 0)
	msg := sealBytes(t, pt, []*Recipient{a, b}, nil)
	m, err := readMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	ka, kb := m.ris[0].ek, m.ris[1].ek
	// The encrypted keys swapped between the two infos: each names a
	// key that cannot undo what it carries.
	swapped := bytes.Replace(bytes.Replace(msg, ka, bytes.Repeat([]byte{0xee}, len(ka)), 1), kb, ka, 1)
	swapped = bytes.Replace(swapped, bytes.Repeat([]byte{0xee}, len(ka)), kb, 1)
	mustDecryptErr(t, swapped, ks["rsa2048"], anyone, "encrypted keys swapped")
	mustDecryptErr(t, swapped, ks["rsa2048-b"], anyone, "encrypted keys swapped")
	// The infos themselves swapped: RFC 5083 leaves recipient infos
	// outside the tag, and the content is unchanged, so this opens to
	// the same bytes (a reader takes the one that names its key).
	ria, rib := riBytes(t, msg, 0), riBytes(t, msg, 1)
	whole := bytes.Replace(msg, append(bytes.Clone(ria), rib...), append(bytes.Clone(rib), ria...), 1)
	if bytes.Equal(whole, msg) {
		t.Fatal("recipient infos not swapped")
	}
	for _, k := range []string{"rsa2048", "rsa2048-b"} {
		got, _, err := openBytes(whole, ks[k].identity(t), anyone)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("recipient infos reordered, %s: %v", k, err)
		}
	}
}

// freshP256Point returns a new valid P-256 point (uncompressed).
func freshP256Point(t *testing.T) []byte {
	k, err := ecdhP256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k.PublicKey().Bytes()
}

// riBytes returns the DER of the i'th RecipientInfo of msg.
func riBytes(t *testing.T, msg []byte, i int) []byte {
	m, err := readMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	ri := m.ris[i]
	// Find the info by its encrypted key and walk back to its start.
	end := bytes.Index(msg, ri.ek) + len(ri.ek)
	for start := end - len(ri.ek); start >= 0; start-- {
		if msg[start] != tagSequence {
			continue
		}
		l := appendLength(nil, end-start-1-len(appendLength(nil, end-start)))
		if bytes.HasPrefix(msg[start+1:], l) && start+1+len(l)+(end-start-1-len(l)) == end {
			return msg[start:end]
		}
	}
	t.Fatal("recipient info not found")
	return nil
}
