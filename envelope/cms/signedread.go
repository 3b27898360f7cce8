package cms

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"io"
	"math/big"
	"time"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"

	"github.com/tokenseal/tokenseal/envelope"
)

const (
	maxCerts     = 16
	maxSignerSet = 64 << 10
)

// signedContent is a SignedData read from the decrypted content, its
// eContent written out and hashed; nothing in it is trusted until verify.
type signedContent struct {
	digest  []byte
	certs   []*x509.Certificate
	sid     RecipientID
	digAlg  algID
	attrs   []byte // the DER SET OF Attribute that was signed (tag 0x31)
	sigAlg  algID
	sig     []byte
	version int64
}

// isSignedContentInfo reports whether p starts a ContentInfo of type
// id-signedData.
func isSignedContentInfo(p []byte) bool {
	return len(p) > 0 && p[0] == tagSequence && contentTypeAfterSequence(p) == oidSignedData
}

// readSigned reads a SignedData from r, wrapped in a ContentInfo unless
// bare, writing its eContent to dst, and checks that r ends with it.
func readSigned(r *bufio.Reader, dst io.Writer, bare bool) (*signedContent, error) {
	b := newBERReader(r)
	sc := &signedContent{}
	if !bare {
		if err := b.enterExpect(tagSequence, "ContentInfo"); err != nil {
			return nil, err
		}
		if typ, err := b.readOID("content type"); err != nil || typ != oidSignedData {
			if err == nil {
				err = b.fail("signed content is not a SignedData")
			}
			return nil, err
		}
		if err := b.enterExpect(tagCtx0Cons, "[0] content"); err != nil {
			return nil, err
		}
	}
	if err := b.enterExpect(tagSequence, "SignedData"); err != nil {
		return nil, err
	}
	v, err := b.readInt("SignedData version")
	if err != nil {
		return nil, err
	}
	if v != 1 && v != 3 {
		return nil, b.fail("unknown SignedData version")
	}
	if _, err := b.readSmall(tagSet, "digestAlgorithms", 4096); err != nil {
		return nil, err
	}
	h := sha256.New()
	if err := readEncapContent(b, io.MultiWriter(h, dst)); err != nil {
		return nil, err
	}
	sc.digest = h.Sum(nil)
	if err := sc.readCertsAndSigner(b); err != nil {
		return nil, err
	}
	for len(b.frames) > 0 {
		if err := b.leave(); err != nil {
			return nil, err
		}
	}
	if _, err := r.Peek(1); err != io.EOF {
		if err == nil {
			return nil, b.fail("data after the SignedData")
		}
		return nil, err
	}
	return sc, nil
}

// readEncapContent reads EncapsulatedContentInfo: id-data with its
// eContent present (detached signatures are refused).
func readEncapContent(b *berReader, dst io.Writer) error {
	if err := b.enterExpect(tagSequence, "EncapsulatedContentInfo"); err != nil {
		return err
	}
	typ, err := b.readOID("eContentType")
	if err != nil {
		return err
	}
	if typ != oidData {
		return unsupported("signed content of type " + typ.String() + " (want data)")
	}
	if end, err := b.atEnd(); err != nil || end {
		if err == nil {
			err = unsupported("detached signature (no eContent)")
		}
		return err
	}
	if err := b.enterExpect(tagCtx0Cons, "[0] eContent"); err != nil {
		return err
	}
	h, err := b.readHeader()
	if err != nil {
		return err
	}
	if h.tag != tagOctetString && h.tag != tagConsOctets {
		return b.fail("eContent is not an OCTET STRING")
	}
	o, err := newOctetReader(b, h, maxLength)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, o); err != nil {
		return err
	}
	if err := b.leave(); err != nil { // [0]
		return err
	}
	return b.leave() // EncapsulatedContentInfo
}

func (sc *signedContent) readCertsAndSigner(b *berReader) error {
	tag, _, err := b.peekTag()
	if err != nil {
		return err
	}
	if tag == tagCtx0Cons {
		h, err := b.readHeader()
		if err != nil {
			return err
		}
		certs, err := b.slurp(h, maxSmall)
		if err != nil {
			return err
		}
		if sc.certs, err = parseCertificates(certs); err != nil {
			return b.fail(err.Error())
		}
		if tag, _, err = b.peekTag(); err != nil {
			return err
		}
	}
	if tag == tagCtx1Cons { // crls: not used
		h, err := b.readHeader()
		if err != nil {
			return err
		}
		if _, err := b.slurp(h, maxSmall); err != nil {
			return err
		}
	}
	set, err := b.readSmall(tagSet, "SignerInfos", maxSignerSet)
	if err != nil {
		return err
	}
	if msg := sc.parseSignerInfos(set); msg != "" {
		return b.fail(msg)
	}
	return nil
}

// parseCertificates parses CertificateSet ([0] IMPLICIT SET OF
// CertificateChoices), keeping the X.509 certificates.
func parseCertificates(der []byte) ([]*x509.Certificate, error) {
	s := cryptobyte.String(der)
	var set cryptobyte.String
	if !s.ReadASN1(&set, asn1.Tag(0).Constructed().ContextSpecific()) {
		return nil, errString("bad certificates")
	}
	var out []*x509.Certificate
	for !set.Empty() {
		var el cryptobyte.String
		var tag asn1.Tag
		if !set.ReadAnyASN1Element(&el, &tag) {
			return nil, errString("bad certificates")
		}
		if tag != asn1.SEQUENCE {
			continue // attribute certificates and others: not used
		}
		if len(out) == maxCerts {
			return nil, errString("too many certificates")
		}
		c, err := x509.ParseCertificate(el)
		if err != nil {
			return nil, errString("bad certificate: " + err.Error())
		}
		out = append(out, c)
	}
	return out, nil
}

type errString string

func (e errString) Error() string { return string(e) }

// parseSignerInfos parses SignerInfos, which must hold exactly one
// SignerInfo (RFC 5652 section 5.3).
func (sc *signedContent) parseSignerInfos(der []byte) string {
	s := cryptobyte.String(der)
	var set, si cryptobyte.String
	if !s.ReadASN1(&set, asn1.SET) || !set.ReadASN1(&si, asn1.SEQUENCE) {
		return "bad SignerInfos"
	}
	if !set.Empty() {
		return "more than one SignerInfo"
	}
	if !si.ReadASN1Int64WithTag(&sc.version, asn1.INTEGER) {
		return "bad SignerInfo version"
	}
	switch {
	case sc.version == 1 && si.PeekASN1Tag(asn1.SEQUENCE):
		if !readIssuerAndSerial(&si, &sc.sid) {
			return "bad SignerInfo sid"
		}
	case sc.version == 3 && si.PeekASN1Tag(asn1.Tag(0).ContextSpecific()):
		var ski cryptobyte.String
		if !si.ReadASN1(&ski, asn1.Tag(0).ContextSpecific()) {
			return "bad SignerInfo sid"
		}
		sc.sid.SubjectKeyID = ski
	default:
		return "bad SignerInfo version or sid"
	}
	var attrs, sig cryptobyte.String
	if !readAlgID(&si, &sc.digAlg) {
		return "bad SignerInfo digestAlgorithm"
	}
	if !si.ReadASN1(&attrs, asn1.Tag(0).Constructed().ContextSpecific()) {
		return "SignerInfo without signed attributes"
	}
	// The signature covers the attributes with the SET OF tag (RFC 5652
	// section 5.4).
	sc.attrs = appendTLV(nil, tagSet, attrs)
	if !readAlgID(&si, &sc.sigAlg) || !si.ReadASN1(&sig, asn1.OCTET_STRING) {
		return "bad SignerInfo"
	}
	sc.sig = sig
	if si.PeekASN1Tag(asn1.Tag(1).Constructed().ContextSpecific()) {
		var unsigned cryptobyte.String
		si.ReadASN1(&unsigned, asn1.Tag(1).Constructed().ContextSpecific())
	}
	if !si.Empty() {
		return "bad SignerInfo"
	}
	return ""
}

// verify checks the signed attributes and the signature with the key of
// a trusted sender and returns the sender.
func (sc *signedContent) verify(senders SenderKeys) (*SenderInfo, error) {
	if h, ok := hashByOID[sc.digAlg.oid]; !ok || h != crypto.SHA256 || !sc.digAlg.noParams() {
		return nil, unsupported("SignerInfo digest algorithm " + sc.digAlg.oid.String() + " (want SHA-256)")
	}
	info, err := sc.checkAttrs()
	if err != nil {
		return nil, err
	}
	if err := sc.identify(info, senders); err != nil {
		return nil, err
	}
	d := sha256.Sum256(sc.attrs)
	switch k := info.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() || sc.sigAlg.oid != oidECDSAWithSHA256 || len(sc.sigAlg.params) != 0 ||
			!ecdsa.VerifyASN1(k, d[:], sc.sig) {
			return nil, ErrSignature
		}
	case *rsa.PublicKey:
		if sc.sigAlg.oid != oidRSASSAPSS || !bytes.Equal(sc.sigAlg.params, pssParamsDER) ||
			rsa.VerifyPSS(k, crypto.SHA256, d[:], sc.sig, &rsa.PSSOptions{SaltLength: 32, Hash: crypto.SHA256}) != nil {
			return nil, ErrSignature
		}
	default:
		return nil, ErrSignature
	}
	info.Signed, info.Signature = d, bytes.Clone(sc.sig)
	return info, nil
}

// identify finds the signer's key: from an embedded certificate that the
// sid names, or from a subject key identifier that is a KeyID; and checks
// that the caller trusts it.
func (sc *signedContent) identify(info *SenderInfo, senders SenderKeys) error {
	var id KeyID
	for _, c := range sc.certs {
		if sc.sid.MatchesCertificate(c) {
			var err error
			if id, err = envelope.KeyIDOf(c.PublicKey); err != nil {
				return ErrSignature
			}
			info.Certificate = c
			break
		}
	}
	if info.Certificate == nil {
		if len(sc.sid.SubjectKeyID) != len(id) {
			return rejected("signer not identified: no embedded certificate matches its identifier, which is not a tokenseal key id")
		}
		copy(id[:], sc.sid.SubjectKeyID)
	}
	pub, err := senders.SenderKey(id)
	if err != nil {
		return err
	}
	if pub == nil {
		return &UnknownSenderError{KeyID: id}
	}
	if got, err := envelope.KeyIDOf(pub); err != nil || got != id {
		return &UnknownSenderError{KeyID: id}
	}
	info.KeyID, info.PublicKey = id, pub
	return nil
}

// checkAttrs checks the signed attributes: each type once; contentType
// id-data; messageDigest the content's; signingTime present; the
// tokenseal stamp well formed if present. Other attributes are signed but
// not interpreted.
func (sc *signedContent) checkAttrs() (*SenderInfo, error) {
	s := cryptobyte.String(sc.attrs)
	var set cryptobyte.String
	s.ReadASN1(&set, asn1.SET)
	seen := map[oid]bool{}
	info := &SenderInfo{}
	for !set.Empty() {
		var attr, typ, values cryptobyte.String
		if !set.ReadASN1(&attr, asn1.SEQUENCE) || !attr.ReadASN1(&typ, asn1.OBJECT_IDENTIFIER) ||
			!attr.ReadASN1(&values, asn1.SET) || !attr.Empty() {
			return nil, rejected("bad signed attribute")
		}
		o := oid(typ)
		if seen[o] {
			return nil, rejected("signed attribute " + o.String() + " appears twice")
		}
		seen[o] = true
		if !sc.checkAttr(o, values, info) {
			return nil, ErrSignature
		}
	}
	if !seen[oidAttrContentType] || !seen[oidAttrMessageDigest] || !seen[oidAttrSigningTime] {
		return nil, rejected("signed attributes lack contentType, messageDigest or signingTime")
	}
	return info, nil
}

// checkAttr checks one signed attribute's values, filling info from the
// signing time and the tokenseal stamp.
func (sc *signedContent) checkAttr(o oid, values cryptobyte.String, info *SenderInfo) bool {
	var v cryptobyte.String
	switch o {
	case oidAttrContentType:
		return values.ReadASN1(&v, asn1.OBJECT_IDENTIFIER) && values.Empty() && oid(v) == oidData
	case oidAttrMessageDigest:
		return values.ReadASN1(&v, asn1.OCTET_STRING) && values.Empty() &&
			subtle.ConstantTimeCompare(v, sc.digest) == 1
	case oidAttrSigningTime:
		return readTime(&values, &info.SigningTime) && values.Empty()
	case oidTokensealStamp:
		return readStamp(&values, info) && values.Empty()
	}
	return true
}

func readTime(s *cryptobyte.String, t *time.Time) bool {
	if s.PeekASN1Tag(asn1.UTCTime) {
		return s.ReadASN1UTCTime(t)
	}
	return s.ReadASN1GeneralizedTime(t)
}

func readStamp(s *cryptobyte.String, info *SenderInfo) bool {
	var seq cryptobyte.String
	var stream, serial big.Int
	if !s.ReadASN1(&seq, asn1.SEQUENCE) || !seq.ReadASN1Integer(&stream) || !seq.ReadASN1Integer(&serial) || !seq.Empty() {
		return false
	}
	if stream.Sign() < 0 || !stream.IsUint64() || serial.Sign() <= 0 || !serial.IsUint64() {
		return false
	}
	info.HasStamp, info.StreamID, info.Serial = true, stream.Uint64(), serial.Uint64()
	return true
}
