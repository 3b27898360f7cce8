package cms

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
)

// Certificates for token keys (the library side of `key cert`): CMS
// names recipients by certificate, and a token's exchange key cannot sign
// its own, so a signing key issues it. Every certificate made here has a
// subject key identifier equal to the key's tokenseal KeyID (SHA-256 of
// the SubjectPublicKeyInfo, RFC 7093 section 2 method 4; the key's
// CKA_ID), an authority key identifier equal to the issuer's, a random
// 127-bit serial number from crypto/rand, and the emailProtection extended
// key usage that S/MIME clients look for.

// CertOptions are the optional fields of a certificate.
type CertOptions struct {
	// Subject is the certificate's subject; an empty one gets the common
	// name "tokenseal key <first 16 hex digits of the KeyID>".
	Subject pkix.Name
	// EmailAddresses go in the subject alternative name extension, where
	// S/MIME clients look for the address a certificate is for.
	EmailAddresses []string
	// NotBefore and NotAfter default to five minutes ago and three years
	// from now.
	NotBefore, NotAfter time.Time
	// Rand is the source of the serial number (nil: crypto/rand.Reader).
	Rand io.Reader
}

// DefaultValidity is how long a certificate is valid without NotAfter.
const DefaultValidity = 3 * 365 * 24 * time.Hour

// SelfSignedCertificate returns a self-signed certificate for a signing
// key (ECDSA P-256, or RSA signing with RSA-PSS): key usage
// digitalSignature, plus keyCertSign and cA=true with path length 0, so
// that it can issue certificates for the exchange keys of the same owner
// (IssueCertificate) and stand as its own trust anchor (`openssl cms
// -verify -CAfile` it).
func SelfSignedCertificate(signer crypto.Signer, opts *CertOptions) (*x509.Certificate, error) {
	tmpl, err := template(signer.Public(), opts)
	if err != nil {
		return nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign
	tmpl.BasicConstraintsValid = true
	tmpl.IsCA = true
	tmpl.MaxPathLenZero = true
	tmpl.AuthorityKeyId = tmpl.SubjectKeyId
	return create(tmpl, tmpl, signer.Public(), signer, opts)
}

// IssueCertificate returns a certificate for an exchange public key (RSA,
// or P-256/P-384 EC) issued by issuerKey, whose certificate is issuerCert
// (see SelfSignedCertificate for a signing key that has none): key usage
// keyEncipherment for RSA, keyAgreement for EC, and cA=false.
func IssueCertificate(pub crypto.PublicKey, issuerKey crypto.Signer, issuerCert *x509.Certificate, opts *CertOptions) (*x509.Certificate, error) {
	if issuerCert == nil {
		return nil, errors.New("cms: no issuer certificate")
	}
	if _, err := newRecipient(pub, 0); err != nil {
		return nil, err
	}
	tmpl, err := template(pub, opts)
	if err != nil {
		return nil, err
	}
	switch pub.(type) {
	case *rsa.PublicKey:
		tmpl.KeyUsage = x509.KeyUsageKeyEncipherment
	default:
		tmpl.KeyUsage = x509.KeyUsageKeyAgreement
	}
	tmpl.BasicConstraintsValid = true
	return create(tmpl, issuerCert, pub, issuerKey, opts)
}

func template(pub crypto.PublicKey, opts *CertOptions) (*x509.Certificate, error) {
	if opts == nil {
		opts = &CertOptions{}
	}
	rnd := opts.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	id, err := envelope.KeyIDOf(pub)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rnd, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	serial.SetBit(serial, 126, 1) // always 16 bytes, never zero
	now := time.Now()
	t := &x509.Certificate{
		SerialNumber:   serial,
		Subject:        opts.Subject,
		NotBefore:      opts.NotBefore,
		NotAfter:       opts.NotAfter,
		SubjectKeyId:   id[:],
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		EmailAddresses: opts.EmailAddresses,
	}
	if t.Subject.String() == "" {
		t.Subject = pkix.Name{CommonName: "tokenseal key " + id.String()[:16]}
	}
	if t.NotBefore.IsZero() {
		t.NotBefore = now.Add(-5 * time.Minute)
	}
	if t.NotAfter.IsZero() {
		t.NotAfter = now.Add(DefaultValidity)
	}
	return t, nil
}

// create signs the certificate: ECDSA with SHA-256, or RSA-PSS with
// SHA-256 (tokenseal signs with PSS only).
func create(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer, opts *CertOptions) (*x509.Certificate, error) {
	switch k := signer.Public().(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("cms: ECDSA issuing keys must be P-256")
		}
		tmpl.SignatureAlgorithm = x509.ECDSAWithSHA256
	case *rsa.PublicKey:
		tmpl.SignatureAlgorithm = x509.SHA256WithRSAPSS
	default:
		return nil, fmt.Errorf("cms: unsupported issuing key %T", k)
	}
	if parent != tmpl {
		tmpl.AuthorityKeyId = parent.SubjectKeyId
	}
	var rnd io.Reader = rand.Reader
	if opts != nil && opts.Rand != nil {
		rnd = opts.Rand
	}
	der, err := x509.CreateCertificate(rnd, tmpl, parent, pub, signer)
	if err != nil {
		return nil, fmt.Errorf("cms: creating certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}
