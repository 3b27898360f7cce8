package keyring_test

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/cms"
	"github.com/tokenseal/tokenseal/internal/p11test"
	"github.com/tokenseal/tokenseal/token"
)

// pending is a cms.PendingOutput in memory.
type pending struct {
	bytes.Buffer
	discarded bool
}

func (p *pending) Discard() error { p.discarded = true; p.Reset(); return nil }

func sealCMS(t *testing.T, plain []byte, rs []*cms.Recipient, opts *cms.SealOptions) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := cms.Seal(&b, rs, opts)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func openCMS(keys cms.KeyFinder, msg []byte, opts *cms.OpenOptions) ([]byte, *cms.Result, error) {
	d, err := cms.Open(bytes.NewReader(msg), keys, opts)
	if err != nil {
		return nil, nil, err
	}
	var out pending
	res, err := d.DecryptTo(&out)
	return out.Bytes(), res, err
}

// trusted trusts one public key.
type trusted struct{ pub crypto.PublicKey }

func (t trusted) SenderKey(id envelope.KeyID) (crypto.PublicKey, error) {
	if got, _ := envelope.KeyIDOf(t.pub); got == id {
		return t.pub, nil
	}
	return nil, nil
}

// cmsIssuer is a signing key on the fixture's token with its
// self-signed certificate.
type cmsIssuer struct {
	key    *token.Key
	cert   *x509.Certificate
	signer crypto.Signer
}

// TestCMS: certificates issued on the token by a signing key for its
// exchange keys, stored beside them; CMS messages to those certificates
// (issuer and serial number) and to the bare keys (key id) open through
// the Keyring on every token; signed ones carry the signer's certificate.
func TestCMS(t *testing.T) {
	p11test.Each(t, func(t *testing.T, pt *p11test.Token) {
		types := exchangeTypes(pt)
		f := newFixture(t, pt, types...)
		is := f.issuer(t)
		for _, typ := range types {
			f.cmsRoundTrip(t, f.keys[typ], is)
		}
		// A message only for the signing key: not addressed to any key
		// that can open it.
		toSigner, err := cms.NewCertificateRecipient(is.cert, 0)
		if err == nil {
			_, _, err = openCMS(f.ring, sealCMS(t, []byte("x"), []*cms.Recipient{toSigner}, nil), &cms.OpenOptions{AllowUnsigned: true})
		}
		toSignerKey, _ := cms.NewKeyRecipient(is.key.Public(), 0)
		_, _, err2 := openCMS(f.ring, sealCMS(t, []byte("x"), []*cms.Recipient{toSignerKey}, nil), &cms.OpenOptions{AllowUnsigned: true})
		var nr *cms.NoRecipientError
		if err == nil || !errors.As(err2, &nr) {
			t.Fatalf("to the signing key: %v; %v", err, err2)
		}
	})
}

// issuer makes a signing key and its certificate, checking on the way
// that an issuer needs a certificate and an exchange key cannot sign its
// own.
func (f *fixture) issuer(t *testing.T) *cmsIssuer {
	t.Helper()
	signType := "p256"
	if !f.pt.Caps().EC {
		signType = "rsa-2048"
	}
	k, err := f.tok.GenerateKey("issuer", signType, token.UsageSign)
	if err != nil {
		t.Fatal(err)
	}
	var some *token.Key
	for _, some = range f.keys {
		break
	}
	if _, err := f.ring.IssueCertificate(some, k, nil); !errors.Is(err, token.ErrWrongKeyType) {
		t.Fatalf("issuing without the issuer's own certificate: %v", err)
	}
	self, err := f.ring.SelfCertify(k, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ring.SelfCertify(some, nil); !errors.Is(err, token.ErrWrongKeyType) {
		t.Fatalf("an exchange key signing its own certificate: %v", err)
	}
	signer, _, err := f.ring.Signer("token:issuer")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := f.ring.SignerCertificate("token:issuer"); err != nil || !c.Equal(self) {
		t.Fatalf("SignerCertificate = %v, %v", c, err)
	}
	return &cmsIssuer{k, self, signer}
}

// cmsRoundTrip issues k's certificate and opens messages to it and to
// the bare key, with each OAEP hash for RSA, unsigned and signed.
func (f *fixture) cmsRoundTrip(t *testing.T, k *token.Key, is *cmsIssuer) {
	t.Helper()
	cert, err := f.ring.IssueCertificate(k, is.key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.CheckSignatureFrom(is.cert); err != nil {
		t.Fatalf("%s: %v", k.Label, err)
	}
	byKey, err := f.ring.CMSRecipient("token:" + k.Label)
	if err != nil {
		t.Fatal(err)
	}
	hashes := []crypto.Hash{crypto.SHA256}
	if _, ok := k.Public().(*rsa.PublicKey); ok {
		hashes = append(hashes, crypto.SHA1)
	}
	for _, h := range hashes {
		byCert, err := cms.NewCertificateRecipient(cert, h)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []*cms.Recipient{byCert, byKey} {
			name := fmt.Sprintf("%s %v %s", k.Label, h, r.ID())
			plain := []byte("to " + name)
			got, _, err := openCMS(f.ring, sealCMS(t, plain, []*cms.Recipient{r}, nil), &cms.OpenOptions{AllowUnsigned: true})
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("%s: %q, %v", name, got, err)
			}
			if label, err := f.ring.LabelOf(r.ID()); err != nil || label != k.Label {
				t.Fatalf("%s: LabelOf = %q, %v", name, label, err)
			}
		}
	}
	sender := &cms.Sender{Signer: is.signer, Certificate: is.cert, StreamID: 7, Serial: 9, Time: time.Now()}
	msg := sealCMS(t, []byte("signed"), []*cms.Recipient{byKey}, &cms.SealOptions{Sender: sender})
	got, res, err := openCMS(f.ring, msg, &cms.OpenOptions{Senders: trusted{is.key.Public()}})
	if err != nil || string(got) != "signed" || res.Sender == nil || !res.Sender.Certificate.Equal(is.cert) || res.Sender.Serial != 9 {
		t.Fatalf("%s signed: %q %+v %v", k.Label, got, res, err)
	}
}

// TestCMSTamper: a recipient info the token refuses is the one opaque
// cms.ErrDecrypt (with envelope.ErrUnwrap behind it when the token
// refused), never a token error.
func TestCMSTamper(t *testing.T) {
	pt := p11test.New(t, p11test.SoftHSM2)
	f := newFixture(t, pt, "rsa-2048", "p256")
	for _, typ := range []string{"rsa-2048", "p256"} {
		r, err := f.ring.CMSRecipient("token:k-" + typ)
		if err != nil {
			t.Fatal(err)
		}
		msg := sealCMS(t, []byte("x"), []*cms.Recipient{r}, nil)
		// The encrypted key (RSA) or wrapped key (EC) ends the
		// recipient info; flip bits in it.
		ends := encryptedKeyEnd(t, msg)
		for _, off := range []int{ends - 1, ends - 9, ends - 20} {
			bad := bytes.Clone(msg)
			bad[off] ^= 0x04
			_, _, err := openCMS(f.ring, bad, &cms.OpenOptions{AllowUnsigned: true})
			cause := errors.Unwrap(err) // RSA: the token's refusal; EC: none (the key wrap failed on the host)
			if !errors.Is(err, cms.ErrDecrypt) || errors.Is(err, token.ErrToken) || (cause != nil && !errors.Is(cause, envelope.ErrUnwrap)) {
				t.Errorf("%s flip at %d: %v (cause %v)", typ, off, err, errors.Unwrap(err))
			}
		}
	}
}

// encryptedKeyEnd finds where the recipient info's encrypted key ends in
// msg: right before the encrypted content info's content type (id-data).
func encryptedKeyEnd(t *testing.T, msg []byte) int {
	t.Helper()
	data := []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01}
	i := bytes.Index(msg, data)
	if i < 0 {
		t.Fatal("no id-data in the message")
	}
	// Step back over the EncryptedContentInfo header (30 80) and the
	// SET's end: the recipient infos are DER, so the key is right before.
	for i > 0 && !(msg[i-2] == 0x30 && msg[i-1] == 0x80) {
		i--
	}
	return i - 2
}
