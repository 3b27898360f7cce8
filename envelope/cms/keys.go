package cms

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"

	"github.com/tokenseal/tokenseal/envelope"
)

// KeyID is tokenseal's key identifier: SHA-256 of a public key's DER
// SubjectPublicKeyInfo (envelope.KeyIDOf). This package uses it as the
// subject key identifier it writes (RFC 7093 section 2, method 4, with
// SHA-256), so that a token finds the key by its CKA_ID.
type KeyID = envelope.KeyID

// RSAKey is an RSA private key that undoes RSAES-OAEP, such as a key on a
// token: envelope's own interface, so that the same token key serves
// both formats.
type RSAKey = envelope.RSAKey

// ECDHKey is a P-256 or P-384 private key that does ECDH, such as a key on
// a token: envelope's own interface.
type ECDHKey = envelope.ECDHKey

// A Key is an RSAKey or an ECDHKey.
type Key interface {
	Public() crypto.PublicKey
}

// RecipientID is how a RecipientInfo (or a SignerInfo) names a key: by
// the issuer and serial number of a certificate for it, or by a subject
// key identifier. Exactly one of the two forms is set.
type RecipientID struct {
	// Issuer is the DER encoding of the certificate issuer's Name, as in
	// x509.Certificate.RawIssuer; SerialNumber is the certificate's.
	Issuer       []byte
	SerialNumber *big.Int
	// SubjectKeyID is a subject key identifier.
	SubjectKeyID []byte
}

// IsIssuerAndSerial reports whether the identifier is an
// issuerAndSerialNumber.
func (r RecipientID) IsIssuerAndSerial() bool { return r.SerialNumber != nil }

func (r RecipientID) String() string {
	if !r.IsIssuerAndSerial() {
		return "subjectKeyIdentifier " + hex.EncodeToString(r.SubjectKeyID)
	}
	issuer := "(unparsable name)"
	var rdn pkix.RDNSequence
	if rest, err := asn1.Unmarshal(r.Issuer, &rdn); err == nil && len(rest) == 0 {
		var n pkix.Name
		n.FillFromRDNSequence(&rdn)
		issuer = n.String()
	}
	return fmt.Sprintf("issuer %q serial %s", issuer, hex.EncodeToString(r.SerialNumber.Bytes()))
}

// MatchesCertificate reports whether the identifier names cert: its
// issuer and serial number, or the value of its subject key identifier
// extension.
func (r RecipientID) MatchesCertificate(cert *x509.Certificate) bool {
	if r.IsIssuerAndSerial() {
		return bytes.Equal(r.Issuer, cert.RawIssuer) && r.SerialNumber.Cmp(cert.SerialNumber) == 0
	}
	return len(cert.SubjectKeyId) > 0 && bytes.Equal(r.SubjectKeyID, cert.SubjectKeyId)
}

// SubjectKeyIDs returns the subject key identifiers a reader accepts for
// pub when it holds no certificate carrying one: tokenseal's KeyID (RFC
// 7093 method 4 with SHA-256, what this package writes), SHA-1 of the
// subjectPublicKey BIT STRING (RFC 5280 section 4.2.1.2 method 1, what
// OpenSSL and most CAs put in certificates) and the leftmost 160 bits of
// SHA-256 of it (RFC 7093 method 1, what Go's x509 writes).
func SubjectKeyIDs(pub crypto.PublicKey) ([][]byte, error) {
	id, err := envelope.KeyIDOf(pub)
	if err != nil {
		return nil, err
	}
	bits, err := subjectPublicKeyBits(pub)
	if err != nil {
		return nil, err
	}
	s1 := sha1.Sum(bits)
	s256 := sha256.Sum256(bits)
	return [][]byte{id[:], s1[:], s256[:20]}, nil
}

// subjectPublicKeyBits returns the content of the subjectPublicKey BIT
// STRING of pub's SubjectPublicKeyInfo (without the unused-bits octet).
func subjectPublicKeyBits(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, err
	}
	return spki.PublicKey.Bytes, nil
}

// A KeyFinder finds the private key a recipient identifier names. The
// token package implements it from the certificates (CKO_CERTIFICATE) and
// public keys on a token; [Identities] implements it for keys given
// with their certificates.
type KeyFinder interface {
	// FindKey returns the key (an RSAKey or an ECDHKey) that rid names,
	// or nil and a nil error when it holds none. Any error stops Open.
	FindKey(rid RecipientID) (Key, error)
}

// An Identity is a private key with the certificates issued for it.
type Identity struct {
	key   Key
	certs []*x509.Certificate
	skis  [][]byte
}

// NewIdentity returns the identity of key, an RSAKey or an ECDHKey, and of
// certificates issued for its public key (each is checked to carry it).
// It answers to the issuer and serial number and to the subject key
// identifier of each certificate, and to the identifiers SubjectKeyIDs
// computes from the key.
func NewIdentity(key Key, certs ...*x509.Certificate) (*Identity, error) {
	pub := key.Public()
	switch key.(type) {
	case RSAKey:
		if _, ok := pub.(*rsa.PublicKey); !ok {
			return nil, errors.New("cms: RSA key whose public key is not RSA")
		}
	case ECDHKey:
		p, ok := pub.(*ecdsa.PublicKey)
		if !ok || (p.Curve != elliptic.P256() && p.Curve != elliptic.P384()) {
			return nil, errors.New("cms: ECDH keys must be P-256 or P-384")
		}
	default:
		return nil, fmt.Errorf("cms: %T is neither an RSAKey nor an ECDHKey", key)
	}
	want, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	for _, c := range certs {
		got, err := x509.MarshalPKIXPublicKey(c.PublicKey)
		if err != nil || !bytes.Equal(got, want) {
			return nil, fmt.Errorf("cms: certificate %q is not for this key", c.Subject)
		}
	}
	skis, err := SubjectKeyIDs(pub)
	if err != nil {
		return nil, err
	}
	return &Identity{key: key, certs: certs, skis: skis}, nil
}

// Matches reports whether rid names this identity.
func (id *Identity) Matches(rid RecipientID) bool {
	for _, c := range id.certs {
		if rid.MatchesCertificate(c) {
			return true
		}
	}
	if rid.IsIssuerAndSerial() {
		return false
	}
	for _, s := range id.skis {
		if bytes.Equal(s, rid.SubjectKeyID) {
			return true
		}
	}
	return false
}

// Key returns the identity's private key.
func (id *Identity) Key() Key { return id.key }

// Identities is a KeyFinder over a list of identities; the first that
// matches wins.
type Identities []*Identity

// FindKey implements KeyFinder.
func (ids Identities) FindKey(rid RecipientID) (Key, error) {
	for _, id := range ids {
		if id.Matches(rid) {
			return id.key, nil
		}
	}
	return nil, nil
}

// softwareRSA and softwareEC let tests and tools use keys in memory.
type softwareRSA struct{ k *rsa.PrivateKey }

func (s softwareRSA) Public() crypto.PublicKey { return &s.k.PublicKey }
func (s softwareRSA) DecryptOAEP(h crypto.Hash, ct []byte) ([]byte, error) {
	return rsa.DecryptOAEP(h.New(), nil, s.k, ct, nil)
}

type softwareEC struct {
	k  *ecdsa.PrivateKey
	ek *ecdh.PrivateKey
}

func (s softwareEC) Public() crypto.PublicKey { return &s.k.PublicKey }
func (s softwareEC) ECDH(peer []byte) ([]byte, error) {
	p, err := s.ek.Curve().NewPublicKey(peer)
	if err != nil {
		return nil, err
	}
	return s.ek.ECDH(p)
}

// NewSoftwareKey returns the Key of a private key held in memory: an
// *rsa.PrivateKey, or a P-256 or P-384 *ecdsa.PrivateKey. tokenseal opens
// with keys on a token; this serves tests and other tools.
func NewSoftwareKey(priv crypto.PrivateKey) (Key, error) {
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		return softwareRSA{k}, nil
	case *ecdsa.PrivateKey:
		ek, err := k.ECDH()
		if err != nil {
			return nil, err
		}
		return softwareEC{k, ek}, nil
	}
	return nil, fmt.Errorf("cms: unsupported private key type %T", priv)
}
