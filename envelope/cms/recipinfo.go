package cms

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"

	"github.com/tokenseal/tokenseal/envelope/internal/kw"
)

// Reading RecipientInfos (RFC 5652 section 6.2) and recovering the
// content-encryption key from the one addressed to a key the caller holds.

type riKind int

const (
	kindKTRI riKind = iota
	kindKARI
	kindKEKRI
	kindPWRI
	kindORI
)

var kindName = [...]string{"KeyTransRecipientInfo", "KeyAgreeRecipientInfo", "KEKRecipientInfo", "PasswordRecipientInfo", "OtherRecipientInfo"}

// recipientInfo is one parsed RecipientInfo. For a KTRI, rid and ek are
// its own; for a KARI, keys holds its RecipientEncryptedKeys.
type recipientInfo struct {
	kind    riKind
	version int64
	keyAlg  algID
	rid     RecipientID
	ek      []byte
	// KARI only
	origAlg algID
	origPub []byte
	ukm     []byte
	wrapAlg oid
	keys    []recipientKey
}

type recipientKey struct {
	rid RecipientID
	ek  []byte
}

// parseRecipientInfos parses the DER RecipientInfos SET (RFC 5652 section
// 6.1). It returns a message for ParseError on failure.
func parseRecipientInfos(der []byte) ([]*recipientInfo, string) {
	s := cryptobyte.String(der)
	var set cryptobyte.String
	if !s.ReadASN1(&set, asn1.SET) || !s.Empty() {
		return nil, "bad RecipientInfos"
	}
	var out []*recipientInfo
	for !set.Empty() {
		var el cryptobyte.String
		var tag asn1.Tag
		if !set.ReadAnyASN1(&el, &tag) {
			return nil, "bad RecipientInfo"
		}
		ri := &recipientInfo{}
		var msg string
		switch tag {
		case asn1.SEQUENCE:
			ri.kind, msg = kindKTRI, parseKTRI(el, ri)
		case asn1.Tag(1).Constructed().ContextSpecific():
			ri.kind, msg = kindKARI, parseKARI(el, ri)
		case asn1.Tag(2).Constructed().ContextSpecific():
			ri.kind = kindKEKRI
		case asn1.Tag(3).Constructed().ContextSpecific():
			ri.kind = kindPWRI
		case asn1.Tag(4).Constructed().ContextSpecific():
			ri.kind = kindORI
		default:
			return nil, "unknown RecipientInfo choice"
		}
		if msg != "" {
			return nil, msg
		}
		out = append(out, ri)
	}
	if len(out) == 0 {
		return nil, "no RecipientInfo"
	}
	return out, ""
}

func readIssuerAndSerial(s *cryptobyte.String, rid *RecipientID) bool {
	var seq, name cryptobyte.String
	serial := new(big.Int)
	if !s.ReadASN1(&seq, asn1.SEQUENCE) || !seq.ReadASN1Element(&name, asn1.SEQUENCE) ||
		!seq.ReadASN1Integer(serial) || !seq.Empty() {
		return false
	}
	rid.Issuer, rid.SerialNumber = name, serial
	return true
}

func parseKTRI(s cryptobyte.String, ri *recipientInfo) string {
	if !s.ReadASN1Int64WithTag(&ri.version, asn1.INTEGER) {
		return "bad KeyTransRecipientInfo version"
	}
	switch {
	case s.PeekASN1Tag(asn1.SEQUENCE):
		if ri.version != 0 || !readIssuerAndSerial(&s, &ri.rid) {
			return "bad KeyTransRecipientInfo issuerAndSerialNumber (or version not 0)"
		}
	case s.PeekASN1Tag(asn1.Tag(0).ContextSpecific()):
		var ski cryptobyte.String
		if ri.version != 2 || !s.ReadASN1(&ski, asn1.Tag(0).ContextSpecific()) {
			return "bad KeyTransRecipientInfo subjectKeyIdentifier (or version not 2)"
		}
		ri.rid.SubjectKeyID = ski
	default:
		return "bad KeyTransRecipientInfo rid"
	}
	var ek cryptobyte.String
	if !readAlgID(&s, &ri.keyAlg) || !s.ReadASN1(&ek, asn1.OCTET_STRING) || !s.Empty() {
		return "bad KeyTransRecipientInfo"
	}
	ri.ek = ek
	return ""
}

func parseKARI(s cryptobyte.String, ri *recipientInfo) string {
	var keys cryptobyte.String
	if !s.ReadASN1Int64WithTag(&ri.version, asn1.INTEGER) || ri.version != 3 {
		return "bad KeyAgreeRecipientInfo version (want 3)"
	}
	if msg := parseOriginator(&s, ri); msg != "" {
		return msg
	}
	var ukmOuter cryptobyte.String
	var hasUKM bool
	if !s.ReadOptionalASN1(&ukmOuter, &hasUKM, asn1.Tag(1).Constructed().ContextSpecific()) {
		return "bad KeyAgreeRecipientInfo ukm"
	}
	if hasUKM {
		var ukm cryptobyte.String
		if !ukmOuter.ReadASN1(&ukm, asn1.OCTET_STRING) || !ukmOuter.Empty() {
			return "bad KeyAgreeRecipientInfo ukm"
		}
		ri.ukm = ukm
	}
	if !readAlgID(&s, &ri.keyAlg) || !s.ReadASN1(&keys, asn1.SEQUENCE) || !s.Empty() {
		return "bad KeyAgreeRecipientInfo"
	}
	var wrap algID
	p := ri.keyAlg.params
	if readAlgID(&p, &wrap) && p.Empty() && len(wrap.params) == 0 {
		ri.wrapAlg = wrap.oid
	}
	return parseEncryptedKeys(keys, ri)
}

// parseOriginator reads a KARI's originator, which must be an ephemeral
// originatorKey.
func parseOriginator(s *cryptobyte.String, ri *recipientInfo) string {
	var orig, origKey cryptobyte.String
	if !s.ReadASN1(&orig, asn1.Tag(0).Constructed().ContextSpecific()) {
		return "bad KeyAgreeRecipientInfo originator"
	}
	if !orig.ReadASN1(&origKey, asn1.Tag(1).Constructed().ContextSpecific()) || !orig.Empty() {
		return "KeyAgreeRecipientInfo originator is not an originatorKey (static-static ECDH is not supported)"
	}
	if !readAlgID(&origKey, &ri.origAlg) || !origKey.ReadASN1BitStringAsBytes(&ri.origPub) || !origKey.Empty() {
		return "bad KeyAgreeRecipientInfo originatorKey"
	}
	return ""
}

// parseEncryptedKeys reads a KARI's RecipientEncryptedKeys, at least one.
func parseEncryptedKeys(keys cryptobyte.String, ri *recipientInfo) string {
	for !keys.Empty() {
		var rek, ek cryptobyte.String
		var k recipientKey
		if !keys.ReadASN1(&rek, asn1.SEQUENCE) || !readKARIRID(&rek, &k.rid) ||
			!rek.ReadASN1(&ek, asn1.OCTET_STRING) || !rek.Empty() {
			return "bad RecipientEncryptedKey"
		}
		k.ek = ek
		ri.keys = append(ri.keys, k)
	}
	if len(ri.keys) == 0 {
		return "KeyAgreeRecipientInfo without RecipientEncryptedKeys"
	}
	return ""
}

// readKARIRID reads a KeyAgreeRecipientIdentifier: issuerAndSerialNumber
// or [0] IMPLICIT RecipientKeyIdentifier { subjectKeyIdentifier, date
// OPTIONAL, other OPTIONAL } (date and other are read and ignored).
func readKARIRID(s *cryptobyte.String, rid *RecipientID) bool {
	if s.PeekASN1Tag(asn1.SEQUENCE) {
		return readIssuerAndSerial(s, rid)
	}
	var rki, ski cryptobyte.String
	if !s.ReadASN1(&rki, asn1.Tag(0).Constructed().ContextSpecific()) || !rki.ReadASN1(&ski, asn1.OCTET_STRING) {
		return false
	}
	if rki.PeekASN1Tag(asn1.GeneralizedTime) {
		var date cryptobyte.String
		if !rki.ReadASN1(&date, asn1.GeneralizedTime) {
			return false
		}
	}
	if rki.PeekASN1Tag(asn1.SEQUENCE) {
		var other cryptobyte.String
		if !rki.ReadASN1(&other, asn1.SEQUENCE) {
			return false
		}
	}
	rid.SubjectKeyID = ski
	return rki.Empty()
}

// rids lists the recipient identifiers of the infos this package reads.
func rids(ris []*recipientInfo) []RecipientID {
	var out []RecipientID
	for _, ri := range ris {
		switch ri.kind {
		case kindKTRI:
			out = append(out, ri.rid)
		case kindKARI:
			for _, k := range ri.keys {
				out = append(out, k.rid)
			}
		}
	}
	return out
}

// findKey returns the first recipient (info, and key index for a KARI)
// whose identifier names a key the finder holds.
func findKey(ris []*recipientInfo, keys KeyFinder) (*recipientInfo, int, Key, error) {
	for _, ri := range ris {
		switch ri.kind {
		case kindKTRI:
			k, err := keys.FindKey(ri.rid)
			if err != nil || k != nil {
				return ri, 0, k, err
			}
		case kindKARI:
			for i, rk := range ri.keys {
				k, err := keys.FindKey(rk.rid)
				if err != nil || k != nil {
					return ri, i, k, err
				}
			}
		}
	}
	return nil, 0, nil, &NoRecipientError{Recipients: rids(ris)}
}

// unwrap recovers the content-encryption key of keyLen bytes from the
// recipient info (and its idx'th encrypted key for a KARI) with key. Every
// failure that depends on secret data is ErrDecrypt; PKCS#1 v1.5 and
// unknown algorithms are refused before the key is used.
func unwrap(ri *recipientInfo, idx int, key Key, keyLen int) ([]byte, error) {
	var cek []byte
	var err error
	switch ri.kind {
	case kindKTRI:
		k, ok := key.(RSAKey)
		if !ok {
			return nil, ErrDecrypt
		}
		cek, err = unwrapKTRI(ri, k)
	default:
		k, ok := key.(ECDHKey)
		if !ok {
			return nil, ErrDecrypt
		}
		cek, err = unwrapKARI(ri, ri.keys[idx].ek, k)
	}
	if err != nil {
		return nil, err
	}
	if len(cek) != keyLen {
		clear(cek)
		return nil, ErrDecrypt
	}
	return cek, nil
}

func unwrapKTRI(ri *recipientInfo, k RSAKey) ([]byte, error) {
	switch ri.keyAlg.oid {
	case oidRSAEncryption:
		return nil, ErrPKCS1v15
	case oidRSAESOAEP:
	default:
		return nil, unsupported("key transport algorithm " + ri.keyAlg.oid.String())
	}
	h, ok := parseOAEPParams(ri.keyAlg.params)
	if !ok || (h != crypto.SHA1 && h != crypto.SHA256 && h != crypto.SHA384 && h != crypto.SHA512) {
		return nil, unsupported("RSAES-OAEP parameters (the OAEP and MGF1 digests must be one of SHA-1, SHA-256, SHA-384, SHA-512, and the label empty)")
	}
	pub, ok := k.Public().(*rsa.PublicKey)
	if !ok || len(ri.ek) != pub.Size() {
		return nil, ErrDecrypt
	}
	cek, err := k.DecryptOAEP(h, ri.ek)
	if err != nil {
		return nil, &decryptError{err}
	}
	return cek, nil
}

func unwrapKARI(ri *recipientInfo, ek []byte, k ECDHKey) ([]byte, error) {
	h, ok := kdfHash[ri.keyAlg.oid]
	if !ok {
		return nil, unsupported("key agreement algorithm " + ri.keyAlg.oid.String() + " (want dhSinglePass-stdDH-sha*kdf-scheme)")
	}
	kekLen, ok := wrapKeyLen[ri.wrapAlg]
	if !ok {
		return nil, unsupported("key wrap algorithm in KeyAgreeRecipientInfo (want id-aes128/192/256-wrap)")
	}
	pub, ok := k.Public().(*ecdsa.PublicKey)
	if !ok {
		return nil, ErrDecrypt
	}
	curve, curveOID := ecdh.P256(), oidP256
	if pub.Curve == elliptic.P384() {
		curve, curveOID = ecdh.P384(), oidP384
	}
	// RFC 5753 section 7.1.2: id-ecPublicKey with absent (or NULL)
	// parameters, or the recipient's named curve.
	if ri.origAlg.oid != oidECPublicKey {
		return nil, unsupported("originatorKey that is not id-ecPublicKey")
	}
	if !ri.origAlg.noParams() {
		p := ri.origAlg.params
		var named cryptobyte.String
		if !p.ReadASN1(&named, asn1.OBJECT_IDENTIFIER) || !p.Empty() || oid(named) != curveOID {
			return nil, ErrDecrypt
		}
	}
	// The ephemeral point is checked here, before it reaches the key:
	// uncompressed, on the curve, not the point at infinity.
	if _, err := curve.NewPublicKey(ri.origPub); err != nil {
		return nil, ErrDecrypt
	}
	z, err := k.ECDH(ri.origPub)
	if err != nil {
		return nil, &decryptError{err}
	}
	defer clear(z)
	if len(z) != (len(ri.origPub)-1)/2 {
		return nil, ErrDecrypt
	}
	kek := kw.X963KDF(newHashFunc(h), z, eccSharedInfo(ri.wrapAlg, ri.ukm, kekLen), kekLen)
	defer clear(kek)
	cek, err := kw.Unwrap(kek, ek)
	if err != nil {
		return nil, ErrDecrypt
	}
	return cek, nil
}
