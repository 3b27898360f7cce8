package token_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/tokenseal/tokenseal/internal/p11test"
	"github.com/tokenseal/tokenseal/token"
)

// testCert issues a certificate for pub signed by a software CA key.
func testCert(t *testing.T, pub crypto.PublicKey, cn string) *x509.Certificate {
	t.Helper()
	ca, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, &x509.Certificate{Subject: pkix.Name{CommonName: "test ca"}}, pub, ca)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCertificates stores certificates beside key pairs on every token:
// found again by CKA_ID, by key and in the list, after the token is
// opened again; stored once; refused for another key's certificate.
func TestCertificates(t *testing.T) {
	p11test.Each(t, func(t *testing.T, pt *p11test.Token) {
		tok := openToken(t, pt)
		keys := []*token.Key{generate(t, tok, "cert-rsa", "rsa-2048", token.UsageExchange)}
		if pt.Caps().EC {
			keys = append(keys, generate(t, tok, "cert-ec", "p256", token.UsageSign))
		}
		certs := map[string]*x509.Certificate{}
		for _, k := range keys {
			c := testCert(t, k.Public(), k.Label)
			got, stored, err := tok.StoreCertificate(k, c)
			if err != nil || !stored || got.Label != k.Label || !bytes.Equal(got.ID, k.ID) {
				t.Fatalf("%s: StoreCertificate = %+v, %v, %v", k.Label, got, stored, err)
			}
			if _, stored, err := tok.StoreCertificate(k, c); err != nil || stored {
				t.Fatalf("%s: stored again: %v, %v", k.Label, stored, err)
			}
			certs[k.Label] = c
			other := testCert(t, keys[0].Public(), "other")
			if k != keys[0] {
				_, _, err := tok.StoreCertificate(k, other)
				if !errors.Is(err, token.ErrCertMismatch) || !errors.Is(err, token.ErrToken) || !strings.Contains(err.Error(), k.Label) {
					t.Fatalf("%s: another key's certificate: %v", k.Label, err)
				}
			}
		}
		tok.Close()
		certsFound(t, openToken(t, pt), certs)
	})
}

// certsFound checks that the token holds exactly the certificates of
// certs (by key label), found in the list, by key and by CKA_ID.
func certsFound(t *testing.T, tok *token.Token, certs map[string]*x509.Certificate) {
	t.Helper()
	all, err := tok.Certificates()
	if err != nil || len(all) != len(certs) {
		t.Fatalf("Certificates = %d, %v; want %d", len(all), err, len(certs))
	}
	for label, want := range certs {
		k, err := tok.FindKey(label)
		if err != nil {
			t.Fatal(err)
		}
		if err := k.Check(); err != nil {
			t.Fatalf("%s: Check with a certificate: %v", label, err)
		}
		kc, err := k.Certificates()
		if err != nil || len(kc) != 1 || !kc[0].Cert.Equal(want) {
			t.Fatalf("%s: key certificates %v, %v", label, kc, err)
		}
		found, err := tok.FindCertificates(k.ID)
		if err != nil || len(found) != 1 || !found[0].Cert.Equal(want) {
			t.Fatalf("%s: FindCertificates = %v, %v", label, found, err)
		}
	}
}
