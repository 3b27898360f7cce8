package cms

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"hash"
	"io"
	"sort"
	"time"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"

	"github.com/tokenseal/tokenseal/envelope"
)

// Signed mode: a SignedData (RFC 5652 section 5) inside the encrypted
// content, sign-then-encrypt as S/MIME does (RFC 8551 section 3.7). The
// encrypted content is of type id-data and holds a ContentInfo wrapping
// the SignedData, as an S/MIME message holds a signed MIME entity: RFC
// 5083 section 2.1 requires authAttrs when AuthEnvelopedData carries
// another content type, and OpenSSL refuses authAttrs; this way `openssl
// cms -decrypt | openssl cms -verify -inform DER` works as is. One
// SignerInfo, SHA-256, ECDSA P-256 (ecdsa-with-SHA256, RFC 5753 section
// 2.1) or RSASSA-PSS (RFC 4056: SHA-256, MGF1-SHA-256, salt 32), signed
// attributes contentType, messageDigest, signingTime and the tokenseal
// stamp below.

// StampOID is the OID of tokenseal's signed attribute carrying the
// sender's stream id and serial number, under the 2.25 arc (ITU-T X.667:
// an OID from a UUID, 6c76be41-18bc-42b1-9d62-00329520f7af):
//
//	tokensealStamp ATTRIBUTE ::= { WITH SYNTAX TokensealStamp ID id-tokenseal-stamp }
//	TokensealStamp ::= SEQUENCE { streamId INTEGER (0..2^64-1), serial INTEGER (1..2^64-1) }
//
// The ranges are those of a tokenseal envelope's stream id and serial
// (envelope/FORMAT.md): the same state directory numbers both.
const StampOID = "2.25.144173173389388514420742284041563207599"

// Sender signs the content of a message (signed mode).
type Sender struct {
	// Signer is a P-256 ECDSA key or an RSA key of 2048 to 4096 bits
	// (signing with RSA-PSS), typically on a token.
	Signer crypto.Signer
	// Certificate, optional, is the signer's certificate; it is put in the
	// SignedData (so that `openssl cms -verify` finds it) and names the
	// signer by its subject key identifier (or issuer and serial number if
	// it has none). Without it the signer is named by its KeyID as a
	// subject key identifier.
	Certificate *x509.Certificate
	// StreamID and Serial go in the tokenseal stamp attribute; the serial
	// must have been reserved durably before Seal is called.
	StreamID uint64
	Serial   uint64
	// Time is the signingTime attribute.
	Time time.Time
}

// SenderInfo is a verified signer, returned only after the signature and
// (for AuthEnvelopedData) the content's tag verified.
type SenderInfo struct {
	KeyID       KeyID
	PublicKey   crypto.PublicKey
	Certificate *x509.Certificate // the embedded certificate that named the signer, if any
	SigningTime time.Time
	// HasStamp is false when the signer did not include the tokenseal
	// stamp (a message signed by another tool): StreamID and Serial are
	// then zero and the message cannot be checked against a ledger.
	HasStamp bool
	StreamID uint64
	Serial   uint64
	// Signed is the digest the signature covers (SHA-256 of the DER
	// signed attributes, which hold the content's messageDigest, the
	// signing time and the stamp) and Signature the signature: together
	// they name this signed message, as a tokenseal envelope's signed
	// digest and trailer do.
	Signed    [32]byte
	Signature []byte
}

// SenderKeys finds the public keys of trusted senders.
type SenderKeys interface {
	// SenderKey returns the public key of the trusted sender whose KeyID
	// is id, or nil and a nil error when id is not trusted.
	SenderKey(id KeyID) (crypto.PublicKey, error)
}

const (
	sigECDSA = iota + 1
	sigPSS
)

// check validates the sender and returns its signature algorithm.
func (s *Sender) check() (int, error) {
	if s.Serial == 0 {
		return 0, errors.New("cms: serial 0 (serials start at 1)")
	}
	pub := s.Signer.Public()
	if s.Certificate != nil {
		want, err1 := x509.MarshalPKIXPublicKey(pub)
		got, err2 := x509.MarshalPKIXPublicKey(s.Certificate.PublicKey)
		if err1 != nil || err2 != nil || !bytes.Equal(want, got) {
			return 0, errors.New("cms: the sender's certificate is not for its signing key")
		}
	}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return 0, errors.New("cms: ECDSA signing keys must be P-256")
		}
		return sigECDSA, nil
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return 0, fmt.Errorf("cms: RSA signing key of %d bits: need %d to %d", bits, minRSABits, maxRSABits)
		}
		return sigPSS, nil
	}
	return 0, fmt.Errorf("cms: unsupported signing key type %T", pub)
}

// sid returns the SignerIdentifier and the SignerInfo version.
func (s *Sender) sid() (RecipientID, int64, error) {
	c := s.Certificate
	switch {
	case c != nil && len(c.SubjectKeyId) > 0:
		return RecipientID{SubjectKeyID: c.SubjectKeyId}, 3, nil
	case c != nil:
		return RecipientID{Issuer: c.RawIssuer, SerialNumber: c.SerialNumber}, 1, nil
	}
	id, err := envelope.KeyIDOf(s.Signer.Public())
	return RecipientID{SubjectKeyID: id[:]}, 3, err
}

var (
	pssParams = func(b *cryptobyte.Builder) {
		b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(asn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				addAlgID(b, oidSHA256, nil)
			})
			b.AddASN1(asn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				addAlgID(b, oidMGF1, func(b *cryptobyte.Builder) { addAlgID(b, oidSHA256, nil) })
			})
			b.AddASN1(asn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1Int64(32)
			})
		})
	}
	pssParamsDER = derOf(pssParams)
	pssAlgID     = derOf(func(b *cryptobyte.Builder) { addAlgID(b, oidRSASSAPSS, pssParams) })
	ecdsaAlgID   = derOf(func(b *cryptobyte.Builder) { addAlgID(b, oidECDSAWithSHA256, nil) })
	sha256Alg    = derOf(func(b *cryptobyte.Builder) { addAlgID(b, oidSHA256, nil) })
)

func derOf(f func(*cryptobyte.Builder)) []byte {
	var b cryptobyte.Builder
	f(&b)
	return b.BytesOrPanic()
}

// signedWriter writes a SignedData with an indefinite-length eContent to
// w (the encrypting writer), hashing the content as it goes.
type signedWriter struct {
	w      io.Writer
	s      *Sender
	alg    int
	rand   io.Reader
	digest hash.Hash
	buf    []byte
	n      int
	err    error
}

func newSignedWriter(w io.Writer, s *Sender, rnd io.Reader) (*signedWriter, error) {
	alg, err := s.check()
	if err != nil {
		return nil, err
	}
	_, version, err := s.sid()
	if err != nil {
		return nil, err
	}
	sw := &signedWriter{w: w, s: s, alg: alg, rand: rnd, digest: sha256.New(), buf: make([]byte, segHdr+contentChunk)}
	var p []byte
	// ContentInfo { id-signedData, [0] SignedData { ...
	p = append(p, tagSequence, 0x80)
	p = appendTLV(p, tagOID, []byte(oidSignedData))
	p = append(p, tagCtx0Cons, 0x80, tagSequence, 0x80)
	p = appendTLV(p, tagInteger, []byte{byte(version)})
	p = appendTLV(p, tagSet, sha256Alg)
	p = append(p, tagSequence, 0x80)
	p = appendTLV(p, tagOID, []byte(oidData))
	p = append(p, tagCtx0Cons, 0x80, tagConsOctets, 0x80)
	_, err = w.Write(p)
	return sw, err
}

func (sw *signedWriter) Write(p []byte) (int, error) {
	if sw.err != nil {
		return 0, sw.err
	}
	sw.digest.Write(p)
	n, err := fillChunks(&sw.buf, &sw.n, p, sw.flush)
	sw.err = err
	return n, err
}

func (sw *signedWriter) flush() error {
	if sw.n == 0 {
		return nil
	}
	hdr := appendLength([]byte{tagOctetString}, sw.n)
	seg := sw.buf[segHdr-len(hdr) : segHdr+sw.n]
	copy(seg, hdr)
	sw.n = 0
	_, err := sw.w.Write(seg)
	return err
}

// close writes the end of the eContent, the certificate and the
// SignerInfo.
func (sw *signedWriter) close() error {
	if sw.err != nil {
		return sw.err
	}
	sw.err = errClosed
	if err := sw.flush(); err != nil {
		return err
	}
	si, err := sw.signerInfo()
	if err != nil {
		return err
	}
	p := []byte{0, 0, 0, 0, 0, 0} // constructed OCTET STRING, [0], EncapsulatedContentInfo
	if c := sw.s.Certificate; c != nil {
		p = appendTLV(p, tagCtx0Cons, c.Raw)
	}
	p = appendTLV(p, tagSet, si)
	p = append(p, 0, 0, 0, 0, 0, 0) // SignedData, [0], ContentInfo
	_, err = sw.w.Write(p)
	return err
}

func (sw *signedWriter) signerInfo() ([]byte, error) {
	attrs := signedAttrs(sw.digest.Sum(nil), sw.s)
	d := sha256.Sum256(attrs)
	var sig []byte
	var err error
	sigAlg := ecdsaAlgID
	if sw.alg == sigPSS {
		sigAlg = pssAlgID
		sig, err = sw.s.Signer.Sign(sw.rand, d[:], &rsa.PSSOptions{SaltLength: 32, Hash: crypto.SHA256})
	} else {
		sig, err = sw.s.Signer.Sign(sw.rand, d[:], crypto.SHA256)
	}
	if err != nil {
		return nil, fmt.Errorf("cms: signing: %w", err)
	}
	sid, version, err := sw.s.sid()
	if err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(version)
		if sid.IsIssuerAndSerial() {
			b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddBytes(sid.Issuer)
				b.AddASN1BigInt(sid.SerialNumber)
			})
		} else {
			b.AddASN1(asn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(sid.SubjectKeyID) })
		}
		b.AddBytes(sha256Alg)
		// signedAttrs [0] IMPLICIT: the SET's content under tag [0].
		b.AddASN1(asn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			s := cryptobyte.String(attrs)
			var content cryptobyte.String
			s.ReadASN1(&content, asn1.SET)
			b.AddBytes(content)
		})
		b.AddBytes(sigAlg)
		b.AddASN1OctetString(sig)
	})
	return b.Bytes()
}

// signedAttrs returns the DER SET OF Attribute that is signed: its
// elements sorted by their encodings, as DER requires of a SET OF.
func signedAttrs(digest []byte, s *Sender) []byte {
	attr := func(o oid, value func(*cryptobyte.Builder)) []byte {
		return derOf(func(b *cryptobyte.Builder) {
			b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
				addOID(b, o)
				b.AddASN1(asn1.SET, value)
			})
		})
	}
	t := s.Time.UTC()
	list := [][]byte{
		attr(oidAttrContentType, func(b *cryptobyte.Builder) { addOID(b, oidData) }),
		attr(oidAttrSigningTime, func(b *cryptobyte.Builder) {
			if t.Year() >= 1950 && t.Year() < 2050 {
				b.AddASN1UTCTime(t)
			} else {
				b.AddASN1GeneralizedTime(t)
			}
		}),
		attr(oidAttrMessageDigest, func(b *cryptobyte.Builder) { b.AddASN1OctetString(digest) }),
		attr(oidTokensealStamp, func(b *cryptobyte.Builder) {
			b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1Uint64(s.StreamID)
				b.AddASN1Uint64(s.Serial)
			})
		}),
	}
	sort.Slice(list, func(i, j int) bool { return bytes.Compare(list[i], list[j]) < 0 })
	return derOf(func(b *cryptobyte.Builder) {
		b.AddASN1(asn1.SET, func(b *cryptobyte.Builder) {
			for _, a := range list {
				b.AddBytes(a)
			}
		})
	})
}
