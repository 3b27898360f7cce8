package cms

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/internal/kw"
)

// Limits on RSA keys, recipients' and signers', the same as tokenseal
// envelopes'.
const (
	minRSABits = 2048
	maxRSABits = 4096
)

// A Recipient is a public key the content-encryption key is delivered to:
// RSA keys get a KeyTransRecipientInfo with RSAES-OAEP (RFC 3560, RFC
// 4055), P-256 and P-384 keys a KeyAgreeRecipientInfo with ephemeral-
// static ECDH, dhSinglePass-stdDH-sha256kdf-scheme and AES-256 key wrap
// (RFC 5753, RFC 3565).
type Recipient struct {
	rid   RecipientID
	rsa   *rsa.PublicKey
	hash  crypto.Hash
	ec    *ecdh.PublicKey
	curve oid
}

// NewCertificateRecipient returns the recipient of a certificate, named
// in the message by the certificate's issuer and serial number (what
// every CMS reader, CryptoAPI's included, finds). The certificate's key
// usage, when present, must allow keyEncipherment (RSA) or keyAgreement
// (EC). oaepHash is the RSA-OAEP digest (crypto.SHA256 when zero; SHA-1
// for tokens whose unwrap does OAEP with SHA-1 only).
func NewCertificateRecipient(cert *x509.Certificate, oaepHash crypto.Hash) (*Recipient, error) {
	if cert.KeyUsage != 0 {
		switch cert.PublicKey.(type) {
		case *rsa.PublicKey:
			if cert.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
				return nil, errors.New("cms: the certificate's key usage does not allow keyEncipherment")
			}
		case *ecdsa.PublicKey:
			if cert.KeyUsage&x509.KeyUsageKeyAgreement == 0 {
				return nil, errors.New("cms: the certificate's key usage does not allow keyAgreement")
			}
		}
	}
	r, err := newRecipient(cert.PublicKey, oaepHash)
	if err != nil {
		return nil, err
	}
	r.rid = RecipientID{Issuer: cert.RawIssuer, SerialNumber: cert.SerialNumber}
	return r, nil
}

// NewKeyRecipient returns the recipient of a bare public key (an
// *rsa.PublicKey, or a P-256 or P-384 *ecdsa.PublicKey), named in the
// message by a subject key identifier equal to its tokenseal KeyID
// (SHA-256 of the DER SubjectPublicKeyInfo, RFC 7093 method 4): the CKA_ID
// tokenseal gives its keys, and the subject key identifier of the
// certificates IssueCertificate makes. oaepHash is as for
// NewCertificateRecipient.
func NewKeyRecipient(pub crypto.PublicKey, oaepHash crypto.Hash) (*Recipient, error) {
	r, err := newRecipient(pub, oaepHash)
	if err != nil {
		return nil, err
	}
	id, err := envelope.KeyIDOf(pub)
	if err != nil {
		return nil, err
	}
	r.rid = RecipientID{SubjectKeyID: id[:]}
	return r, nil
}

func newRecipient(pub crypto.PublicKey, oaepHash crypto.Hash) (*Recipient, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return nil, fmt.Errorf("cms: RSA key of %d bits: recipients must have %d to %d bits", bits, minRSABits, maxRSABits)
		}
		switch oaepHash {
		case 0:
			oaepHash = crypto.SHA256
		case crypto.SHA1, crypto.SHA256:
		default:
			return nil, fmt.Errorf("cms: unsupported OAEP hash %v (SHA-1 or SHA-256)", oaepHash)
		}
		return &Recipient{rsa: k, hash: oaepHash}, nil
	case *ecdsa.PublicKey:
		r := &Recipient{}
		switch k.Curve {
		case elliptic.P256():
			r.curve = oidP256
		case elliptic.P384():
			r.curve = oidP384
		default:
			return nil, fmt.Errorf("cms: unsupported curve %s: recipients must be P-256 or P-384", k.Curve.Params().Name)
		}
		var err error
		if r.ec, err = k.ECDH(); err != nil {
			return nil, err
		}
		return r, nil
	}
	return nil, fmt.Errorf("cms: unsupported recipient key type %T", pub)
}

// ID returns how the message names the recipient.
func (r *Recipient) ID() RecipientID { return r.rid }

// addRID writes the recipient identifier: issuerAndSerialNumber, or the
// subject key identifier with the given context tag (KTRI: [0]
// IMPLICIT SubjectKeyIdentifier; KARI: [0] IMPLICIT RecipientKeyIdentifier).
func (r *Recipient) addRID(b *cryptobyte.Builder, kari bool) {
	if r.rid.IsIssuerAndSerial() {
		b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(r.rid.Issuer)
			b.AddASN1BigInt(r.rid.SerialNumber)
		})
		return
	}
	if kari {
		b.AddASN1(asn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1OctetString(r.rid.SubjectKeyID)
		})
		return
	}
	b.AddASN1(asn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) {
		b.AddBytes(r.rid.SubjectKeyID)
	})
}

// recipientInfo returns the DER RecipientInfo delivering cek, and its
// version (which decides EnvelopedData's).
func (r *Recipient) recipientInfo(rnd io.Reader, cek []byte) ([]byte, int, error) {
	if r.rsa != nil {
		return r.ktri(rnd, cek)
	}
	return r.kari(rnd, cek)
}

// ktri is KeyTransRecipientInfo (RFC 5652 section 6.2.1): version 0 with
// issuerAndSerialNumber, 2 with subjectKeyIdentifier.
func (r *Recipient) ktri(rnd io.Reader, cek []byte) ([]byte, int, error) {
	ek, err := rsa.EncryptOAEP(r.hash.New(), rnd, r.rsa, cek, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("cms: RSA-OAEP: %w", err)
	}
	version := 2
	if r.rid.IsIssuerAndSerial() {
		version = 0
	}
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(int64(version))
		r.addRID(b, false)
		addAlgID(b, oidRSAESOAEP, func(b *cryptobyte.Builder) { addOAEPParams(b, r.hash) })
		b.AddASN1OctetString(ek)
	})
	der, err := b.Bytes()
	return der, version, err
}

// kari is KeyAgreeRecipientInfo (RFC 5652 section 6.2.2, RFC 5753
// section 3.1.1), version 3: a fresh ephemeral key as originatorKey (with
// absent parameters, as OpenSSL writes; RFC 5753 allows absent or the
// curve), no ukm, dhSinglePass-stdDH-sha256kdf-scheme with aes256-wrap,
// and one RecipientEncryptedKey.
func (r *Recipient) kari(rnd io.Reader, cek []byte) ([]byte, int, error) {
	eph, err := r.ec.Curve().GenerateKey(rnd)
	if err != nil {
		return nil, 0, err
	}
	z, err := eph.ECDH(r.ec)
	if err != nil {
		return nil, 0, err
	}
	defer clear(z)
	kek := kw.X963KDF(newHashFunc(crypto.SHA256), z, eccSharedInfo(oidAES256Wrap, nil, 32), 32)
	defer clear(kek)
	ek, err := kw.Wrap(kek, cek)
	if err != nil {
		return nil, 0, err
	}
	var b cryptobyte.Builder
	b.AddASN1(asn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
		b.AddASN1Int64(3)
		b.AddASN1(asn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(asn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				addAlgID(b, oidECPublicKey, nil)
				b.AddASN1BitString(eph.PublicKey().Bytes())
			})
		})
		addAlgID(b, oidStdDHSHA256KDF, func(b *cryptobyte.Builder) { addAlgID(b, oidAES256Wrap, nil) })
		b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
				r.addRID(b, true)
				b.AddASN1OctetString(ek)
			})
		})
	})
	der, err := b.Bytes()
	return der, 3, err
}
