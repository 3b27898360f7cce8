package reference

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"math/big"
)

// U16 and U24 append n big-endian.
func U16(b []byte, n int) []byte { return append(b, byte(n>>8), byte(n)) }
func U24(b []byte, n int) []byte { return append(b, byte(n>>16), byte(n>>8), byte(n)) }

// EncStanza encodes a stanza.
func EncStanza(typ byte, keyID, body []byte) []byte {
	out := append([]byte{typ}, keyID...)
	return append(U16(out, len(body)), body...)
}

// EncExt encodes an extension.
func EncExt(typ uint16, value []byte) []byte {
	return append(U16(U16(nil, int(typ)), len(value)), value...)
}

// Craft is an envelope under construction: every field of the header,
// and ways to break its framing.
type Craft struct {
	FK, Salt     []byte
	MACFK        []byte // if set, K_header comes from this key instead of FK
	Magic        string
	Version      byte
	ChunkLog2    byte
	Stanzas      [][]byte // encoded
	StanzaTrail  []byte   // raw bytes appended inside the stanza list
	StanzaLenAdj int      // added to the encoded stanza-list length
	Exts         [][]byte // encoded
	ExtTrail     []byte   // raw bytes appended inside the extension list
	BodyTrail    []byte   // raw bytes appended to the body
}

// NewCraft starts an envelope with a file key and a salt read from rnd,
// in that order.
func NewCraft(rnd io.Reader) *Craft {
	c := &Craft{FK: make([]byte, KeySize), Salt: make([]byte, 32), Magic: Magic, Version: Version, ChunkLog2: ChunkLog2}
	if _, err := io.ReadFull(rnd, c.FK); err != nil {
		panic(err)
	}
	if _, err := io.ReadFull(rnd, c.Salt); err != nil {
		panic(err)
	}
	return c
}

// Body is the header body.
func (c *Craft) Body() []byte {
	body := append([]byte{c.ChunkLog2}, c.Salt...)
	st := append(bytes.Join(c.Stanzas, nil), c.StanzaTrail...)
	body = append(U24(body, len(st)+c.StanzaLenAdj), st...)
	ex := append(bytes.Join(c.Exts, nil), c.ExtTrail...)
	body = append(U16(body, len(ex)), ex...)
	return append(body, c.BodyTrail...)
}

// Header is the whole header with its MAC.
func (c *Craft) Header() []byte {
	body := c.Body()
	h := append([]byte(c.Magic), c.Version)
	h = append(U24(h, len(body)), body...)
	mk := c.FK
	if c.MACFK != nil {
		mk = c.MACFK
	}
	kh, _ := DeriveKeys(mk, c.Salt)
	m := hmac.New(sha256.New, kh)
	m.Write(h)
	return m.Sum(h)
}

// PayloadKey is K_payload.
func (c *Craft) PayloadKey() []byte {
	_, kp := DeriveKeys(c.FK, c.Salt)
	return kp
}

// Seal is the header followed by pt's payload (anonymous).
func (c *Craft) Seal(pt []byte) []byte {
	return append(c.Header(), EncryptPayload(c.PayloadKey(), pt)...)
}

// RSABody is an RSA-OAEP stanza body: hashID, then msg encrypted to pub
// with OAEP over h (and MGF1 over h) and label, seeded from rnd.
func RSABody(rnd io.Reader, pub *rsa.PublicKey, hashID byte, h hash.Hash, label, msg []byte) []byte {
	c, err := rsa.EncryptOAEP(h, rnd, pub, msg, label)
	if err != nil {
		panic(err)
	}
	return append([]byte{hashID}, c...)
}

// ECDHOpts change how ECDHBody wraps, to craft bad stanzas. The zero
// value follows section 4.2.
type ECDHOpts struct {
	Label      string                 // overrides the curve's label
	Counter    uint32                 // X9.63 counter; 0 means the spec's 1
	UseCounter bool                   // use Counter even if 0
	KW3394     bool                   // RFC 3394 (no padding) instead of RFC 5649
	EncodeE    func(u []byte) []byte  // another encoding of E (in the body and shared_info)
	CorruptE   func(e []byte) []byte  // changes E in the body only
	WrapMsg    func(fk []byte) []byte // wraps this instead of the file key
}

// ECDHWrap wraps msg for pub with an ephemeral key whose scalar is read
// from rnd (again while it is not below the order), and returns E and W.
func ECDHWrap(rnd io.Reader, pub *ecdsa.PublicKey, msg []byte) (e, w []byte) {
	return ecdhWrap(rnd, pub, msg, ECDHOpts{})
}

// ECDHBody is an ECDH stanza body E || W for fk, changed by o.
func ECDHBody(rnd io.Reader, pub *ecdsa.PublicKey, fk []byte, o ECDHOpts) []byte {
	msg := fk
	if o.WrapMsg != nil {
		msg = o.WrapMsg(fk)
	}
	e, w := ecdhWrap(rnd, pub, msg, o)
	if o.CorruptE != nil {
		e = o.CorruptE(bytes.Clone(e))
	}
	return append(e, w...)
}

func ecdhWrap(rnd io.Reader, pub *ecdsa.PublicKey, msg []byte, o ECDHOpts) (e, w []byte) {
	ci, err := CurveOf(pub.Curve)
	if err != nil {
		panic(err)
	}
	var eph *ecdh.PrivateKey
	for eph == nil {
		s := make([]byte, ci.Size)
		if _, err := io.ReadFull(rnd, s); err != nil {
			panic(err)
		}
		eph, _ = ci.Curve.NewPrivateKey(s) // retried when >= the order
	}
	rpub, err := pub.ECDH()
	if err != nil {
		panic(err)
	}
	z, err := eph.ECDH(rpub)
	if err != nil {
		panic(err)
	}
	e = eph.PublicKey().Bytes()
	if o.EncodeE != nil {
		e = o.EncodeE(e)
	}
	label, counter := ci.Label, uint32(1)
	if o.Label != "" {
		label = o.Label
	}
	if o.UseCounter || o.Counter != 0 {
		counter = o.Counter
	}
	kek := X963(z, counter, append(append([]byte(label), e...), rpub.Bytes()...))
	if o.KW3394 {
		w, err = AESWrap(kek, [8]byte{0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6}, msg)
	} else {
		w, err = KWPWrap(kek, msg)
	}
	if err != nil {
		panic(err)
	}
	return e, w
}

// StanzaFor is a well-formed stanza wrapping fk for pub: RSA-OAEP with
// SHA-256, or ECDH.
func StanzaFor(rnd io.Reader, pub crypto.PublicKey, fk []byte) []byte {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return EncStanza(TypeRSA, KeyID(k), RSABody(rnd, k, OAEPSHA256, sha256.New(), nil, fk))
	case *ecdsa.PublicKey:
		ci, err := CurveOf(k.Curve)
		if err != nil {
			panic(err)
		}
		e, w := ECDHWrap(rnd, k, fk)
		return EncStanza(ci.Type, KeyID(k), append(e, w...))
	}
	panic(fmt.Sprintf("reference: unsupported key %T", pub))
}

// SenderValue is a sender extension's value.
func SenderValue(keyID []byte, alg byte, sigLen int, stream, serial, timestamp uint64) []byte {
	v := append(bytes.Clone(keyID), alg)
	v = U16(v, sigLen)
	v = binary.BigEndian.AppendUint64(v, stream)
	v = binary.BigEndian.AppendUint64(v, serial)
	return binary.BigEndian.AppendUint64(v, timestamp)
}

// SenderExt is the sender extension of a signing key, ECDSA P-256 or
// RSA-PSS.
func SenderExt(signer crypto.Signer, stream, serial, timestamp uint64) []byte {
	switch k := signer.Public().(type) {
	case *ecdsa.PublicKey:
		return EncExt(ExtSender, SenderValue(KeyID(k), SigECDSA, 64, stream, serial, timestamp))
	case *rsa.PublicKey:
		return EncExt(ExtSender, SenderValue(KeyID(k), SigPSS, k.Size(), stream, serial, timestamp))
	}
	panic("reference: unsupported signer")
}

// Signature variants of Sign: the right one, and wrong ones.
const (
	SigGood       = iota
	SigHighS      // ECDSA with s replaced by n-s
	SigPSSSalt1   // RSA-PSS with a 1-byte salt
	SigPKCS1      // RSA PKCS#1 v1.5
	SigPSSSaltMax // RSA-PSS with the longest salt the modulus allows
	SigPSSSalt64  // RSA-PSS with a 64-byte salt
)

// Sign signs header and payload (section 6, by the header's version).
// ECDSA signatures are the deterministic ones of RFC 6979 in low-S form;
// RSA-PSS salts come from rnd.
func Sign(rnd io.Reader, signer crypto.Signer, header, payload []byte, variant int) []byte {
	d, err := SignedDigest(header, payload)
	if err != nil {
		panic(err)
	}
	return SignDigest(rnd, signer, d, variant)
}

// SignDigest signs the digest d (section 6), to craft signatures over
// digests computed some other way.
func SignDigest(rnd io.Reader, signer crypto.Signer, d []byte, variant int) []byte {
	switch k := signer.(type) {
	case *ecdsa.PrivateKey:
		return signECDSA(k, d, variant)
	case *rsa.PrivateKey:
		var sig []byte
		var err error
		switch variant {
		case SigPSSSalt1:
			sig, err = rsa.SignPSS(rnd, k, crypto.SHA256, d, &rsa.PSSOptions{SaltLength: 1})
		case SigPSSSaltMax:
			sig, err = rsa.SignPSS(rnd, k, crypto.SHA256, d, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
		case SigPSSSalt64:
			sig, err = rsa.SignPSS(rnd, k, crypto.SHA256, d, &rsa.PSSOptions{SaltLength: 64})
		case SigPKCS1:
			sig, err = rsa.SignPKCS1v15(nil, k, crypto.SHA256, d)
		default:
			sig, err = rsa.SignPSS(rnd, k, crypto.SHA256, d, &rsa.PSSOptions{SaltLength: 32})
		}
		if err != nil {
			panic(err)
		}
		return sig
	}
	panic("reference: unsupported signer")
}

func signECDSA(k *ecdsa.PrivateKey, d []byte, variant int) []byte {
	der, err := k.Sign(nil, d, crypto.SHA256) // RFC 6979
	if err != nil {
		panic(err)
	}
	var sig struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &sig); err != nil {
		panic(err)
	}
	n := k.Curve.Params().N
	if sig.S.Cmp(new(big.Int).Rsh(n, 1)) > 0 {
		sig.S.Sub(n, sig.S)
	}
	if variant == SigHighS {
		sig.S.Sub(n, sig.S)
	}
	out := make([]byte, 64)
	sig.R.FillBytes(out[:32])
	sig.S.FillBytes(out[32:])
	return out
}
