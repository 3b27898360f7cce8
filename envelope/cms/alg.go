package cms

import (
	"crypto"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"hash"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// Algorithm identifiers: DER encoders for what this package writes and
// strict parsers for what it reads.

var hashByOID = map[oid]crypto.Hash{
	oidSHA1:   crypto.SHA1,
	oidSHA224: crypto.SHA224,
	oidSHA256: crypto.SHA256,
	oidSHA384: crypto.SHA384,
	oidSHA512: crypto.SHA512,
}

var oidByHash = map[crypto.Hash]oid{
	crypto.SHA1:   oidSHA1,
	crypto.SHA224: oidSHA224,
	crypto.SHA256: oidSHA256,
	crypto.SHA384: oidSHA384,
	crypto.SHA512: oidSHA512,
}

func newHashFunc(h crypto.Hash) func() hash.Hash {
	switch h {
	case crypto.SHA1:
		return sha1.New
	case crypto.SHA224:
		return sha256.New224
	case crypto.SHA256:
		return sha256.New
	case crypto.SHA384:
		return sha512.New384
	}
	return sha512.New
}

func addOID(b *cryptobyte.Builder, o oid) {
	b.AddASN1(asn1.OBJECT_IDENTIFIER, func(b *cryptobyte.Builder) { b.AddBytes([]byte(o)) })
}

// addAlgID writes AlgorithmIdentifier { o } with absent parameters, or
// with params (a complete DER element) when given.
func addAlgID(b *cryptobyte.Builder, o oid, params func(*cryptobyte.Builder)) {
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		addOID(b, o)
		if params != nil {
			params(b)
		}
	})
}

// algID is a parsed AlgorithmIdentifier.
type algID struct {
	oid    oid
	params cryptobyte.String // the parameters element, whole; empty if absent
}

func readAlgID(s *cryptobyte.String, out *algID) bool {
	var seq, o cryptobyte.String
	if !s.ReadASN1(&seq, asn1.SEQUENCE) || !seq.ReadASN1(&o, asn1.OBJECT_IDENTIFIER) {
		return false
	}
	out.oid = oid(o)
	out.params = nil
	if !seq.Empty() {
		var tag asn1.Tag
		if !seq.ReadAnyASN1Element(&out.params, &tag) || !seq.Empty() {
			return false
		}
	}
	return true
}

// noParams reports whether the parameters are absent or NULL, the two
// forms RFC 4055 section 2.1 and RFC 5754 allow for hash algorithms.
func (a algID) noParams() bool {
	return len(a.params) == 0 || string(a.params) == "\x05\x00"
}

// readHashAlg reads a hash AlgorithmIdentifier.
func readHashAlg(s *cryptobyte.String) (crypto.Hash, bool) {
	var a algID
	if !readAlgID(s, &a) || !a.noParams() {
		return 0, false
	}
	h, ok := hashByOID[a.oid]
	return h, ok
}

// addOAEPParams writes RSAES-OAEP-params (RFC 4055 section 4.1) for hash
// as both OAEP and MGF1 digest and the empty label. DER leaves out the
// defaults: for SHA-1 the SEQUENCE is empty. Hash parameters are absent,
// as OpenSSL writes them.
func addOAEPParams(b *cryptobyte.Builder, h crypto.Hash) {
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		if h == crypto.SHA1 {
			return
		}
		b.AddASN1(asn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			addAlgID(b, oidByHash[h], nil)
		})
		b.AddASN1(asn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			addAlgID(b, oidMGF1, func(b *cryptobyte.Builder) { addAlgID(b, oidByHash[h], nil) })
		})
	})
}

// parseOAEPParams returns the digest of RSAES-OAEP-params. It refuses an
// MGF1 digest other than the OAEP digest (the RSAKey interface takes one)
// and any label.
func parseOAEPParams(p cryptobyte.String) (crypto.Hash, bool) {
	var seq cryptobyte.String
	if !p.ReadASN1(&seq, asn1.SEQUENCE) || !p.Empty() {
		return 0, false
	}
	h, mgfHash := crypto.SHA1, crypto.SHA1
	ok := readOAEPField(&seq, 0, func(f *cryptobyte.String) (ok bool) {
		h, ok = readHashAlg(f)
		return ok
	}) && readOAEPField(&seq, 1, func(f *cryptobyte.String) (ok bool) {
		var mgf algID
		if !readAlgID(f, &mgf) || mgf.oid != oidMGF1 {
			return false
		}
		mgfHash, ok = readHashAlg(&mgf.params)
		return ok && mgf.params.Empty()
	}) && readOAEPField(&seq, 2, func(f *cryptobyte.String) bool {
		var ps algID
		var label cryptobyte.String
		return readAlgID(f, &ps) && ps.oid == oidPSpecified &&
			ps.params.ReadASN1(&label, asn1.OCTET_STRING) && ps.params.Empty() && len(label) == 0
	})
	if !ok || !seq.Empty() || h != mgfHash {
		return 0, false
	}
	return h, true
}

// readOAEPField reads the optional [tag] field of RSAES-OAEP-params with
// read, which must consume it whole; an absent field is fine.
func readOAEPField(seq *cryptobyte.String, tag uint8, read func(*cryptobyte.String) bool) bool {
	var f cryptobyte.String
	var present bool
	if !seq.ReadOptionalASN1(&f, &present, asn1.Tag(tag).Constructed().ContextSpecific()) {
		return false
	}
	return !present || (read(&f) && f.Empty())
}

// contentAlg is a content-encryption algorithm with its parameters.
type contentAlg struct {
	oid    oid
	gcm    bool
	keyLen int
	iv     []byte // GCM nonce (12 bytes) or CBC IV (16 bytes)
}

var contentAlgs = map[oid]struct {
	gcm    bool
	keyLen int
}{
	oidAES128GCM: {true, 16}, oidAES192GCM: {true, 24}, oidAES256GCM: {true, 32},
	oidAES128CBC: {false, 16}, oidAES192CBC: {false, 24}, oidAES256CBC: {false, 32},
}

// parseContentAlg parses the contentEncryptionAlgorithm. GCM parameters
// (RFC 5084 section 3.2): a 12-byte nonce and a 16-byte tag (aes-ICVlen
// DEFAULT 12 is refused: tokenseal accepts full-length tags only). CBC
// parameters (RFC 3565 section 4.1): a 16-byte IV.
func parseContentAlg(a algID) (*contentAlg, string) {
	info, ok := contentAlgs[a.oid]
	if !ok {
		return nil, "unsupported content-encryption algorithm " + a.oid.String()
	}
	c := &contentAlg{oid: a.oid, gcm: info.gcm, keyLen: info.keyLen}
	p := a.params
	if !c.gcm {
		var iv cryptobyte.String
		if !p.ReadASN1(&iv, asn1.OCTET_STRING) || !p.Empty() || len(iv) != 16 {
			return nil, "bad AES-CBC parameters (want a 16-byte IV)"
		}
		c.iv = iv
		return c, ""
	}
	var seq, nonce cryptobyte.String
	icv := int64(12)
	if !p.ReadASN1(&seq, asn1.SEQUENCE) || !p.Empty() || !seq.ReadASN1(&nonce, asn1.OCTET_STRING) ||
		(seq.PeekASN1Tag(asn1.INTEGER) && !seq.ReadASN1Integer(&icv)) || !seq.Empty() {
		return nil, "bad AES-GCM parameters"
	}
	if len(nonce) != gcmNonceSize {
		return nil, "AES-GCM nonce is not 12 bytes"
	}
	if icv != gcmTagSize {
		return nil, "AES-GCM tag length is not 16 bytes"
	}
	c.iv = nonce
	return c, ""
}

// add writes the contentEncryptionAlgorithm.
func (c *contentAlg) add(b *cryptobyte.Builder) {
	addAlgID(b, c.oid, func(b *cryptobyte.Builder) {
		if !c.gcm {
			b.AddASN1OctetString(c.iv)
			return
		}
		b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1OctetString(c.iv)
			b.AddASN1Int64(gcmTagSize)
		})
	})
}

func (c *contentAlg) String() string { return c.oid.String() }

// KDF hashes of the dhSinglePass-stdDH-*kdf-scheme OIDs (RFC 5753 section
// 7.1.4, SEC 1).
var kdfHash = map[oid]crypto.Hash{
	oidStdDHSHA1KDF:   crypto.SHA1,
	oidStdDHSHA224KDF: crypto.SHA224,
	oidStdDHSHA256KDF: crypto.SHA256,
	oidStdDHSHA384KDF: crypto.SHA384,
	oidStdDHSHA512KDF: crypto.SHA512,
}

// Key-encryption key sizes of the AES key wrap OIDs (RFC 3565 section 2.3.2).
var wrapKeyLen = map[oid]int{oidAES128Wrap: 16, oidAES192Wrap: 24, oidAES256Wrap: 32}

// eccSharedInfo returns the DER ECC-CMS-SharedInfo (RFC 5753 section
// 7.2): the key wrap algorithm with absent parameters, the user keying
// material if any, and the KEK length in bits.
func eccSharedInfo(wrap oid, ukm []byte, kekLen int) []byte {
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		addAlgID(b, wrap, nil)
		if ukm != nil {
			b.AddASN1(asn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1OctetString(ukm)
			})
		}
		b.AddASN1(asn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1OctetString(binary.BigEndian.AppendUint32(nil, uint32(kekLen*8)))
		})
	})
	return b.BytesOrPanic()
}
