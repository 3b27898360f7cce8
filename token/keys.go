package token

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"sync"

	"github.com/miekg/pkcs11"

	"github.com/tokenseal/tokenseal/internal/keyid"
)

// Usage says what a private key may do.
type Usage uint8

// Usages. A key made by another tool may have both, or neither.
const (
	// UsageExchange: receive sealed files. RSA keys decrypt or unwrap
	// (CKA_DECRYPT, CKA_UNWRAP); EC keys derive (CKA_DERIVE, for ECDH).
	UsageExchange Usage = 1 << iota
	// UsageSign: sign (CKA_SIGN).
	UsageSign
)

// CanExchange reports whether the key may unwrap (RSA) or derive (EC).
func (u Usage) CanExchange() bool { return u&UsageExchange != 0 }

// CanSign reports whether the key may sign.
func (u Usage) CanSign() bool { return u&UsageSign != 0 }

// String is "exchange", "sign", "exchange+sign" or "none".
func (u Usage) String() string {
	switch {
	case u.CanExchange() && u.CanSign():
		return "exchange+sign"
	case u.CanExchange():
		return "exchange"
	case u.CanSign():
		return "sign"
	}
	return "none"
}

// ParseUsage reads "exchange" or "sign", the usages keys are made with.
func ParseUsage(s string) (Usage, error) {
	switch s {
	case "exchange":
		return UsageExchange, nil
	case "sign":
		return UsageSign, nil
	}
	return 0, fmt.Errorf("unknown usage %q (want exchange or sign)", s)
}

// Key is a key pair on the token: the private key stays there, the public
// key is held here. It satisfies the envelope package's RSAKey
// (Public, DecryptOAEP) or ECDHKey (Public, ECDH) interfaces by method set,
// and gives a crypto.Signer with [Key.Signer]. A Key is valid while its
// Token is open.
//
// The public key of an RSA key is read from the private key object
// (CKA_MODULUS, CKA_PUBLIC_EXPONENT), where the token shows them, and of
// an EC key from its CKA_EC_POINT where shown; otherwise from the
// public-key object or X.509 certificate with the same CKA_ID. Those can
// be written without logging in, so such a key is checked against its
// private key by [Key.Check] before it is trusted.
type Key struct {
	Label string
	// ID is CKA_ID: for keys tokenseal made, SHA-256 of the public key's
	// DER SubjectPublicKeyInfo; keys made by other tools carry anything
	// (a PIV slot number, a random value).
	ID []byte
	// Type is "rsa-2048", ..., "p256" or "p384" (for other sizes "rsa-N").
	Type             string
	Bits             int    // RSA modulus size, or the curve's field size in bits
	Curve            string // "P-256" or "P-384" for EC keys
	Usage            Usage  // from CKA_DECRYPT/CKA_UNWRAP/CKA_DERIVE and CKA_SIGN
	Sensitive        bool   // CKA_SENSITIVE as the token reports it
	NeverExtractable bool   // CKA_NEVER_EXTRACTABLE as the token reports it
	Extractable      bool   // CKA_EXTRACTABLE as the token reports it

	t      *Token
	priv   pkcs11.ObjectHandle
	pubs   []pkcs11.ObjectHandle // public-key objects with the same CKA_ID
	pub    crypto.PublicKey
	spki   []byte
	perm   struct{ decrypt, unwrap, derive, sign bool }
	vouch  bool  // the public key was read from the private object
	broken error // a mismatch found while linking: ErrKeyMismatch

	mu      sync.Mutex
	paths   map[crypto.Hash]string // OAEP path per hash, probed once
	checked error                  // result of Check, once done
	didChk  bool
	sigPath string // "pss" or "raw", for RSA signing
}

// Public returns the public key: *rsa.PublicKey or *ecdsa.PublicKey.
func (k *Key) Public() crypto.PublicKey { return k.pub }

// SPKI returns the DER SubjectPublicKeyInfo of the public key.
func (k *Key) SPKI() []byte { return bytes.Clone(k.spki) }

// Generated reports whether the key pair follows tokenseal's CKA_ID rule
// (CKA_ID is SHA-256 of the SPKI), as the pairs it generates do.
func (k *Key) Generated() bool { return bytes.Equal(k.ID, spkiID(k.spki)) }

// spkiID is tokenseal's CKA_ID for a key: its key identifier
// (internal/keyid), SHA-256 of its DER SubjectPublicKeyInfo.
func spkiID(spki []byte) []byte {
	h := keyid.OfSPKI(spki)
	return h[:]
}

func (k *Key) String() string {
	if k.Label != "" {
		return fmt.Sprintf("%q", k.Label)
	}
	return "with id " + hex.EncodeToString(k.ID)
}

var (
	oidP256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidP384 = asn1.ObjectIdentifier{1, 3, 132, 0, 34}
)

// Attributes read from the objects a key is made of.
var (
	keyCommon = []uint{pkcs11.CKA_ID, pkcs11.CKA_LABEL, pkcs11.CKA_KEY_TYPE}
	privFlags = []uint{pkcs11.CKA_SENSITIVE, pkcs11.CKA_NEVER_EXTRACTABLE, pkcs11.CKA_EXTRACTABLE,
		pkcs11.CKA_DECRYPT, pkcs11.CKA_UNWRAP, pkcs11.CKA_DERIVE, pkcs11.CKA_SIGN}
	keyPublic = map[uint][]uint{
		pkcs11.CKK_RSA: {pkcs11.CKA_MODULUS, pkcs11.CKA_PUBLIC_EXPONENT},
		pkcs11.CKK_EC:  {pkcs11.CKA_EC_PARAMS, pkcs11.CKA_EC_POINT},
	}
	certAttrs = []uint{pkcs11.CKA_ID, pkcs11.CKA_LABEL, pkcs11.CKA_CERTIFICATE_TYPE, pkcs11.CKA_VALUE}
)

// publicOf reads the public key an object's attributes hold: an RSA
// modulus and exponent, an EC point on P-256 or P-384, or an X.509
// certificate's. ok is false when they hold none.
func publicOf(a attrs) (pub crypto.PublicKey, ok bool, err error) {
	if v := a.bytes(pkcs11.CKA_VALUE); len(v) > 0 {
		c, err := x509.ParseCertificate(v)
		if err != nil {
			return nil, false, fmt.Errorf("certificate: %v", err)
		}
		return c.PublicKey, true, nil
	}
	kt, _ := a.ulong(pkcs11.CKA_KEY_TYPE)
	switch {
	case kt == pkcs11.CKK_RSA && len(a.bytes(pkcs11.CKA_MODULUS)) > 0:
		n := new(big.Int).SetBytes(a.bytes(pkcs11.CKA_MODULUS))
		e := new(big.Int).SetBytes(a.bytes(pkcs11.CKA_PUBLIC_EXPONENT))
		if n.Sign() <= 0 || !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 {
			return nil, false, errors.New("malformed rsa public key")
		}
		return &rsa.PublicKey{N: n, E: int(e.Int64())}, true, nil
	case kt == pkcs11.CKK_EC && len(a.bytes(pkcs11.CKA_EC_POINT)) > 0:
		pub, err := ecPublic(a.bytes(pkcs11.CKA_EC_PARAMS), a.bytes(pkcs11.CKA_EC_POINT))
		return pub, err == nil, err
	}
	return nil, false, nil
}

// ecPublic parses CKA_EC_PARAMS (a named curve) and CKA_EC_POINT (a DER
// OCTET STRING holding an uncompressed SEC 1 point; some tokens give the
// bare point), checking the point is on the curve.
func ecPublic(params, point []byte) (*ecdsa.PublicKey, error) {
	curve := curveOf(params)
	if curve == nil {
		return nil, errors.New("unsupported curve")
	}
	var inner []byte
	if rest, err := asn1.Unmarshal(point, &inner); err == nil && len(rest) == 0 {
		point = inner
	}
	size := (curve.Params().BitSize + 7) / 8
	if len(point) != 1+2*size || point[0] != 4 {
		return nil, errors.New("ec point is not an uncompressed point")
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
	if err != nil {
		return nil, errors.New("ec point is not on the curve")
	}
	return pub, nil
}

func curveOf(params []byte) elliptic.Curve {
	var oid asn1.ObjectIdentifier
	if rest, err := asn1.Unmarshal(params, &oid); err != nil || len(rest) != 0 {
		return nil
	}
	switch {
	case oid.Equal(oidP256):
		return elliptic.P256()
	case oid.Equal(oidP384):
		return elliptic.P384()
	}
	return nil
}

// scan reads every private key, public-key object and certificate on the
// token, in one session.
func (t *Token) scan() (privs, pubs, certs []object, err error) {
	err = t.withSession(func(sh pkcs11.SessionHandle) error {
		var err error
		if privs, err = t.objects(sh, pkcs11.CKO_PRIVATE_KEY, append(keyCommon, privFlags...), keyPublic); err != nil {
			return err
		}
		if pubs, err = t.objects(sh, pkcs11.CKO_PUBLIC_KEY, keyCommon, keyPublic); err != nil {
			return err
		}
		certs, err = t.objects(sh, pkcs11.CKO_CERTIFICATE, certAttrs, nil)
		return err
	})
	return privs, pubs, certs, err
}

// Keys lists the key pairs on the token tokenseal can use: RSA, P-256
// and P-384 private keys whose public key is known (see [Key]), in the
// order the token returns them. It reads the token once; keys made by
// other tools are included.
func (t *Token) Keys() ([]*Key, error) {
	privs, pubs, certs, err := t.scan()
	if err != nil {
		return nil, err
	}
	pubsByID, certsByID := byID(pubs), byID(certs)
	privsByID := byID(privs)
	var keys []*Key
	for _, p := range privs {
		id := string(p.a.bytes(pkcs11.CKA_ID))
		var ps, cs []object
		// Nothing can be tied to a private key by an empty or shared CKA_ID.
		if id != "" && len(privsByID[id]) == 1 {
			ps, cs = pubsByID[id], certsByID[id]
		}
		if k := t.link(p, ps, cs); k != nil {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

func byID(objs []object) map[string][]object {
	m := map[string][]object{}
	for _, o := range objs {
		id := string(o.a.bytes(pkcs11.CKA_ID))
		m[id] = append(m[id], o)
	}
	return m
}

// link makes the Key of private key p, its public-key objects pubs and
// certificates certs (those sharing its CKA_ID); nil when it is not a key
// tokenseal can use or no public key is known.
func (t *Token) link(p object, pubs, certs []object) *Key {
	k := &Key{t: t, priv: p.h, ID: p.a.bytes(pkcs11.CKA_ID), Label: p.a.str(pkcs11.CKA_LABEL),
		Sensitive: p.a.bool(pkcs11.CKA_SENSITIVE), NeverExtractable: p.a.bool(pkcs11.CKA_NEVER_EXTRACTABLE),
		Extractable: p.a.bool(pkcs11.CKA_EXTRACTABLE)}
	k.perm.decrypt, k.perm.unwrap = p.a.bool(pkcs11.CKA_DECRYPT), p.a.bool(pkcs11.CKA_UNWRAP)
	k.perm.derive, k.perm.sign = p.a.bool(pkcs11.CKA_DERIVE), p.a.bool(pkcs11.CKA_SIGN)
	if pub, ok, err := publicOf(p.a); ok && err == nil {
		k.pub, k.vouch = pub, true
	}
	for _, o := range pubs {
		k.pubs = append(k.pubs, o.h)
	}
	for _, o := range append(pubs, certs...) {
		pub, ok, err := publicOf(o.a)
		if !ok || err != nil {
			continue
		}
		if k.Label == "" {
			k.Label = o.a.str(pkcs11.CKA_LABEL)
		}
		switch {
		case k.pub == nil:
			k.pub = pub
		case !equalPublic(k.pub, pub):
			k.broken = fmt.Errorf("%w: key %s: a public-key object or certificate with its CKA_ID holds another key", ErrKeyMismatch, k)
		}
	}
	if k.pub == nil || k.describe() != nil {
		return nil
	}
	return k
}

// describe fills Type, Bits, Curve, Usage and the SPKI from the public
// key; an error means the key is of a kind tokenseal does not use.
func (k *Key) describe() error {
	switch pub := k.pub.(type) {
	case *rsa.PublicKey:
		k.Bits = pub.N.BitLen()
		k.Type = fmt.Sprintf("rsa-%d", k.Bits)
		if k.perm.decrypt || k.perm.unwrap {
			k.Usage |= UsageExchange
		}
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256():
			k.Type = "p256"
		case elliptic.P384():
			k.Type = "p384"
		default:
			return fmt.Errorf("%w: unsupported curve", ErrWrongKeyType)
		}
		k.Bits, k.Curve = pub.Curve.Params().BitSize, pub.Curve.Params().Name
		if k.perm.derive {
			k.Usage |= UsageExchange
		}
	default:
		return fmt.Errorf("%w: %T", ErrWrongKeyType, pub)
	}
	if k.perm.sign {
		k.Usage |= UsageSign
	}
	var err error
	k.spki, err = x509.MarshalPKIXPublicKey(k.pub)
	return err
}

func equalPublic(a, b crypto.PublicKey) bool {
	x, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && x.Equal(b)
}

// FindKey returns the key pair labelled label (CKA_LABEL of its private
// key, or of its public key or certificate when the private key has
// none); none or several is [ErrKeyNotFound].
func (t *Token) FindKey(label string) (*Key, error) {
	return t.findKey(fmt.Sprintf("label %q", label), func(k *Key) bool { return label != "" && k.Label == label })
}

// FindKeyByID returns the key pair whose CKA_ID is id, or whose key id
// (SHA-256 of its SPKI) is id; none or several is [ErrKeyNotFound].
func (t *Token) FindKeyByID(id []byte) (*Key, error) {
	return t.findKey("id "+hex.EncodeToString(id), func(k *Key) bool {
		return len(id) > 0 && (bytes.Equal(k.ID, id) || bytes.Equal(spkiID(k.spki), id))
	})
}

// FindKeyURI returns the key pair named by a pkcs11: URI's object= and/or
// id= attributes (both must match when both are given).
func (t *Token) FindKeyURI(u *URI) (*Key, error) {
	label, hasLabel := u.Path["object"]
	id := u.ID()
	if !hasLabel && id == nil {
		return nil, fmt.Errorf("%w: uri names no object or id", ErrBadURI)
	}
	if ty, ok := u.Path["type"]; ok && ty != "private" && ty != "public" {
		return nil, fmt.Errorf("%w: uri type %q is not a key pair", ErrBadURI, ty)
	}
	return t.findKey(fmt.Sprintf("object %q id %x", label, id), func(k *Key) bool {
		return (!hasLabel || k.Label == label) && (id == nil || bytes.Equal(k.ID, id))
	})
}

func (t *Token) findKey(what string, match func(*Key) bool) (*Key, error) {
	keys, err := t.Keys()
	if err != nil {
		return nil, err
	}
	var found []*Key
	for _, k := range keys {
		if match(k) {
			found = append(found, k)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return nil, fmt.Errorf("%w: %s", ErrKeyNotFound, what)
	}
	return nil, fmt.Errorf("%w: %d key pairs match %s, expected one", ErrKeyNotFound, len(found), what)
}

// DeleteKey deletes a key pair: its private key and every public-key
// object with its CKA_ID (certificates are left alone).
func (t *Token) DeleteKey(k *Key) error {
	return t.withSession(func(sh pkcs11.SessionHandle) error {
		if err := t.destroy(sh, k.priv); err != nil {
			return err
		}
		for _, h := range k.pubs {
			if err := t.destroy(sh, h); err != nil {
				return err
			}
		}
		return nil
	})
}

// LabelInUse reports whether any object on the token (a key, a
// certificate, data, ...) has CKA_LABEL label. [Token.GenerateKey]
// refuses such a label; `key provision` asks first, so that a conflict
// stops it before anything is generated.
func (t *Token) LabelInUse(label string) (bool, error) {
	var used bool
	err := t.withSession(func(sh pkcs11.SessionHandle) error {
		hs, err := t.findObjects(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)})
		used = len(hs) > 0
		return err
	})
	return used, err
}
