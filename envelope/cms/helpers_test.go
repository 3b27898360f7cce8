package cms

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
)

// testKey is a software key with the certificates made for it.
type testKey struct {
	name string
	priv crypto.Signer
	key  Key
	cert *x509.Certificate // issued by the signing key's certificate
}

var (
	keysOnce   sync.Once
	keysErr    error
	keysByName map[string]*testKey
	signerKeys map[string]*testKey // "sign-p256", "sign-rsa2048", with self-signed certs
)

func loadPriv(name string) (crypto.Signer, error) {
	data, err := os.ReadFile(filepath.Join("testdata", "keys", name+".pem"))
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM in " + name)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	return k.(crypto.Signer), nil
}

// keys loads the test keys and certifies the exchange keys with the
// P-256 signing key's self-signed certificate.
func keys(t testing.TB) (map[string]*testKey, map[string]*testKey) {
	t.Helper()
	keysOnce.Do(func() {
		keysByName, signerKeys = map[string]*testKey{}, map[string]*testKey{}
		for _, n := range []string{"sign-p256", "sign-rsa2048"} {
			priv, err := loadPriv(n)
			if err != nil {
				keysErr = err
				return
			}
			cert, err := SelfSignedCertificate(priv, &CertOptions{Subject: pkix.Name{CommonName: n}})
			if err != nil {
				keysErr = err
				return
			}
			signerKeys[n] = &testKey{name: n, priv: priv, cert: cert}
		}
		issuer := signerKeys["sign-p256"]
		for _, n := range []string{"rsa2048", "rsa3072", "p256", "p384", "rsa2048-b"} {
			priv, err := loadPriv(n)
			if err != nil {
				keysErr = err
				return
			}
			k, err := NewSoftwareKey(priv)
			if err != nil {
				keysErr = err
				return
			}
			cert, err := IssueCertificate(priv.Public(), issuer.priv, issuer.cert, &CertOptions{Subject: pkix.Name{CommonName: n}})
			if err != nil {
				keysErr = err
				return
			}
			keysByName[n] = &testKey{name: n, priv: priv, key: k, cert: cert}
		}
	})
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	return keysByName, signerKeys
}

func (k *testKey) identity(t testing.TB) Identities {
	id, err := NewIdentity(k.key, k.cert)
	if err != nil {
		t.Fatal(err)
	}
	return Identities{id}
}

// trusted is a SenderKeys over a list of public keys.
type trusted []crypto.PublicKey

func (tr trusted) SenderKey(id KeyID) (crypto.PublicKey, error) {
	for _, p := range tr {
		if got, _ := envelope.KeyIDOf(p); got == id {
			return p, nil
		}
	}
	return nil, nil
}

// memOut is a PendingOutput in memory.
type memOut struct {
	bytes.Buffer
	discarded bool
}

func (m *memOut) Discard() error {
	m.discarded = true
	m.Reset()
	return nil
}

func sealBytes(t testing.TB, pt []byte, rs []*Recipient, opts *SealOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := Seal(&buf, rs, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(pt); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// openBytes opens msg with keys and returns the plaintext and result.
func openBytes(msg []byte, keys KeyFinder, opts *OpenOptions) ([]byte, *Result, error) {
	d, err := Open(bytes.NewReader(msg), keys, opts)
	if err != nil {
		return nil, nil, err
	}
	var out memOut
	res, err := d.DecryptTo(&out)
	if err != nil {
		if !out.discarded || out.Len() != 0 {
			panic("failed DecryptTo did not discard its output")
		}
		return nil, nil, err
	}
	return out.Bytes(), res, nil
}

func sender(t testing.TB, name string, withCert bool) *Sender {
	_, s := keys(t)
	k := s[name]
	snd := &Sender{Signer: k.priv, StreamID: 7, Serial: 42, Time: time.Now().Truncate(time.Second)}
	if withCert {
		snd.Certificate = k.cert
	}
	return snd
}

func ecdhP256() ecdh.Curve { return ecdh.P256() }

// recipientFor returns k's recipient: by certificate or by bare key.
func recipientFor(t testing.TB, k *testKey, byCert bool) *Recipient {
	t.Helper()
	var r *Recipient
	var err error
	if byCert {
		r, err = NewCertificateRecipient(k.cert, 0)
	} else {
		r, err = NewKeyRecipient(k.priv.Public(), 0)
	}
	if err != nil {
		t.Fatal(err)
	}
	return r
}
