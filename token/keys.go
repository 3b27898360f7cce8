package token

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"sync"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"
)

// Key types accepted by [Token.GenerateKey].
var KeyTypes = []string{"rsa-2048", "rsa-3072", "rsa-4096", "p256", "p384"}

// Key usages accepted by [Token.GenerateKey].
const (
	UsageExchange = "exchange" // RSA: decrypt+unwrap; EC: derive
	UsageSign     = "sign"     // sign only
)

// Key is a key pair on the token: the private key stays there, the public
// key is held here. It satisfies the envelope package's RSAKey
// (Public, DecryptOAEP) or ECDHKey (Public, ECDH) interfaces by method set,
// and gives a crypto.Signer with [Key.Signer]. A Key is valid while its
// Token is open.
type Key struct {
	Label string
	// ID is CKA_ID: by tokenseal's rule, SHA-256 of the public key's DER
	// SubjectPublicKeyInfo (keys made elsewhere may differ).
	ID []byte
	// Type is "rsa-2048", ..., "p256" or "p384" (for other sizes "rsa-N"
	// or the curve name).
	Type  string
	Bits  int    // RSA modulus size, or the curve's field size in bits
	Curve string // "P-256" or "P-384" for EC keys
	// Usage is "exchange", "sign", "exchange+sign" or "none", derived
	// from the private key's CKA_DECRYPT/CKA_UNWRAP/CKA_DERIVE and CKA_SIGN.
	Usage            string
	Sensitive        bool // CKA_SENSITIVE as the token reports it
	NeverExtractable bool // CKA_NEVER_EXTRACTABLE as the token reports it
	Extractable      bool // CKA_EXTRACTABLE as the token reports it

	t      *Token
	priv   pkcs11.ObjectHandle
	pub    crypto.PublicKey
	spki   []byte
	canDec bool // CKA_DECRYPT
	canUnw bool // CKA_UNWRAP
	canDer bool // CKA_DERIVE

	c11Once sync.Once
	c11     crypto11.Signer
	c11Err  error
}

// Public returns the public key: *rsa.PublicKey or *ecdsa.PublicKey.
func (k *Key) Public() crypto.PublicKey { return k.pub }

// SPKI returns the DER SubjectPublicKeyInfo of the public key.
func (k *Key) SPKI() []byte { return bytes.Clone(k.spki) }

// Fingerprint is SHA-256 of the DER SubjectPublicKeyInfo.
func (k *Key) Fingerprint() [32]byte { return sha256.Sum256(k.spki) }

// KeyID computes tokenseal's CKA_ID for a public key: SHA-256 of its DER
// SubjectPublicKeyInfo.
func KeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(der)
	return h[:], nil
}

// findObjects returns every object matching tmpl. FindObjectsInit is
// always paired with FindObjectsFinal.
func (t *Token) findObjects(sh pkcs11.SessionHandle, tmpl []*pkcs11.Attribute) (_ []pkcs11.ObjectHandle, err error) {
	if err := t.ctx.FindObjectsInit(sh, tmpl); err != nil {
		return nil, p11err("C_FindObjectsInit", err)
	}
	defer func() {
		if ferr := t.ctx.FindObjectsFinal(sh); ferr != nil && err == nil {
			err = p11err("C_FindObjectsFinal", ferr)
		}
	}()
	var out []pkcs11.ObjectHandle
	for {
		hs, _, err := t.ctx.FindObjects(sh, 64)
		if err != nil {
			return nil, p11err("C_FindObjects", err)
		}
		if len(hs) == 0 {
			return out, nil
		}
		out = append(out, hs...)
	}
}

// findOne returns the single object matching tmpl; zero or several is
// ErrKeyNotFound, with what describing the lookup.
func (t *Token) findOne(sh pkcs11.SessionHandle, tmpl []*pkcs11.Attribute, what string) (pkcs11.ObjectHandle, error) {
	hs, err := t.findObjects(sh, tmpl)
	if err != nil {
		return 0, err
	}
	switch len(hs) {
	case 1:
		return hs[0], nil
	case 0:
		return 0, fmt.Errorf("%w: %s", ErrKeyNotFound, what)
	default:
		return 0, fmt.Errorf("%w: %d objects match %s, expected one", ErrKeyNotFound, len(hs), what)
	}
}

func attrBool(a *pkcs11.Attribute) bool { return len(a.Value) > 0 && a.Value[0] != 0 }

func attrUint(a *pkcs11.Attribute) uint {
	v, err := bytesToUint(a.Value)
	if err != nil {
		return ^uint(0)
	}
	return v
}

func bytesToUint(b []byte) (uint, error) {
	// CK_ULONG in native byte order, as miekg/pkcs11 returns it.
	switch len(b) {
	case 8:
		var v uint64
		for i := 7; i >= 0; i-- {
			v = v<<8 | uint64(b[i])
		}
		return uint(v), nil
	case 4:
		var v uint32
		for i := 3; i >= 0; i-- {
			v = v<<8 | uint32(b[i])
		}
		return uint(v), nil
	}
	return 0, errors.New("bad CK_ULONG length")
}

var (
	oidP256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidP384 = asn1.ObjectIdentifier{1, 3, 132, 0, 34}
)

// loadKey reads a private key's attributes and its public key.
func (t *Token) loadKey(sh pkcs11.SessionHandle, priv pkcs11.ObjectHandle) (*Key, error) {
	attrs, err := t.ctx.GetAttributeValue(sh, priv, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_ID, nil),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_NEVER_EXTRACTABLE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, nil),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, nil),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, nil),
	})
	if err != nil {
		return nil, p11err("C_GetAttributeValue", err)
	}
	k := &Key{
		t:                t,
		priv:             priv,
		ID:               attrs[0].Value,
		Label:            string(attrs[1].Value),
		Sensitive:        attrBool(attrs[3]),
		NeverExtractable: attrBool(attrs[4]),
		Extractable:      attrBool(attrs[5]),
		canDec:           attrBool(attrs[6]),
		canUnw:           attrBool(attrs[7]),
		canDer:           attrBool(attrs[8]),
	}
	sign := attrBool(attrs[9])
	switch exch := k.canDec || k.canUnw || k.canDer; {
	case exch && sign:
		k.Usage = "exchange+sign"
	case exch:
		k.Usage = UsageExchange
	case sign:
		k.Usage = UsageSign
	default:
		k.Usage = "none"
	}
	keyType := attrUint(attrs[2])
	pubTmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_ID, k.ID),
	}
	pubH, err := t.findOne(sh, pubTmpl, fmt.Sprintf("public key for %q", k.Label))
	if err != nil {
		return nil, err
	}
	switch keyType {
	case pkcs11.CKK_RSA:
		pa, err := t.ctx.GetAttributeValue(sh, pubH, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, nil),
		})
		if err != nil {
			return nil, p11err("C_GetAttributeValue", err)
		}
		n := new(big.Int).SetBytes(pa[0].Value)
		e := new(big.Int).SetBytes(pa[1].Value)
		if n.Sign() <= 0 || !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 {
			return nil, fmt.Errorf("%w: key %q has a malformed rsa public key", ErrWrongKeyType, k.Label)
		}
		pub := &rsa.PublicKey{N: n, E: int(e.Int64())}
		k.pub, k.Bits = pub, n.BitLen()
		k.Type = fmt.Sprintf("rsa-%d", k.Bits)
	case pkcs11.CKK_EC:
		pa, err := t.ctx.GetAttributeValue(sh, pubH, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, nil),
			pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil),
		})
		if err != nil {
			return nil, p11err("C_GetAttributeValue", err)
		}
		var oid asn1.ObjectIdentifier
		var curve elliptic.Curve
		if rest, err := asn1.Unmarshal(pa[0].Value, &oid); err == nil && len(rest) == 0 {
			switch {
			case oid.Equal(oidP256):
				curve, k.Type = elliptic.P256(), "p256"
			case oid.Equal(oidP384):
				curve, k.Type = elliptic.P384(), "p384"
			}
		}
		if curve == nil {
			return nil, fmt.Errorf("%w: key %q is on an unsupported curve", ErrWrongKeyType, k.Label)
		}
		point := pa[1].Value
		// CKA_EC_POINT is a DER OCTET STRING holding the SEC1 point;
		// some tokens give the bare point.
		var inner []byte
		if rest, err := asn1.Unmarshal(point, &inner); err == nil && len(rest) == 0 {
			point = inner
		}
		pub, err := ecdsaPublic(curve, point)
		if err != nil {
			return nil, fmt.Errorf("%w: key %q: %v", ErrWrongKeyType, k.Label, err)
		}
		k.pub, k.Bits, k.Curve = pub, curve.Params().BitSize, curve.Params().Name
	default:
		return nil, fmt.Errorf("%w: key %q has unsupported key type 0x%x", ErrWrongKeyType, k.Label, keyType)
	}
	k.spki, err = x509.MarshalPKIXPublicKey(k.pub)
	if err != nil {
		return nil, err
	}
	return k, nil
}

// ecdsaPublic parses an uncompressed SEC1 point, checking it is on curve.
func ecdsaPublic(curve elliptic.Curve, point []byte) (*ecdsa.PublicKey, error) {
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

// Keys lists the key pairs on the token (private keys with a matching
// public key), in the order the token returns them.
func (t *Token) Keys() ([]*Key, error) {
	var keys []*Key
	err := t.withSession(func(sh pkcs11.SessionHandle) error {
		hs, err := t.findObjects(sh, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		})
		if err != nil {
			return err
		}
		for _, h := range hs {
			k, err := t.loadKey(sh, h)
			if errors.Is(err, ErrKeyNotFound) || errors.Is(err, ErrWrongKeyType) {
				continue // not a key pair tokenseal can use
			}
			if err != nil {
				return err
			}
			keys = append(keys, k)
		}
		return nil
	})
	return keys, err
}

// FindKey returns the key pair whose private key has CKA_LABEL label; none
// or several is [ErrKeyNotFound].
func (t *Token) FindKey(label string) (*Key, error) {
	return t.findKey([]*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}, fmt.Sprintf("label %q", label))
}

// FindKeyByID returns the key pair whose private key has CKA_ID id; none
// or several is [ErrKeyNotFound].
func (t *Token) FindKeyByID(id []byte) (*Key, error) {
	if len(id) == 0 {
		return nil, fmt.Errorf("%w: empty id", ErrKeyNotFound)
	}
	return t.findKey([]*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}, fmt.Sprintf("id %x", id))
}

// FindKeyURI returns the key pair named by a pkcs11: URI's object= and/or
// id= attributes.
func (t *Token) FindKeyURI(u *URI) (*Key, error) {
	tmpl := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY)}
	what := ""
	if o, ok := u.Path["object"]; ok {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_LABEL, o))
		what += fmt.Sprintf("object %q ", o)
	}
	if id := u.ID(); id != nil {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_ID, id))
		what += fmt.Sprintf("id %x ", id)
	}
	if what == "" {
		return nil, fmt.Errorf("%w: uri names no object or id", ErrBadURI)
	}
	if ty, ok := u.Path["type"]; ok && ty != "private" && ty != "public" {
		return nil, fmt.Errorf("%w: uri type %q is not a key pair", ErrBadURI, ty)
	}
	return t.findKey(tmpl, what[:len(what)-1])
}

func (t *Token) findKey(tmpl []*pkcs11.Attribute, what string) (*Key, error) {
	var k *Key
	err := t.withSession(func(sh pkcs11.SessionHandle) error {
		h, err := t.findOne(sh, tmpl, what)
		if err != nil {
			return err
		}
		k, err = t.loadKey(sh, h)
		return err
	})
	return k, err
}

// labelInUse reports whether any object has CKA_LABEL label.
func (t *Token) labelInUse(sh pkcs11.SessionHandle, label string) (bool, error) {
	hs, err := t.findObjects(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)})
	return len(hs) > 0, err
}

// GenerateKey generates a key pair on the token.
//
// typ is one of [KeyTypes]; usage is [UsageExchange] (RSA private key:
// CKA_DECRYPT and CKA_UNWRAP; EC private key: CKA_DERIVE) or [UsageSign]
// (CKA_SIGN only). The private key is CKA_TOKEN, CKA_PRIVATE,
// CKA_SENSITIVE and not CKA_EXTRACTABLE; both objects get CKA_LABEL label
// and CKA_ID = SHA-256 of the public key's DER SubjectPublicKeyInfo (set
// after generation, since it depends on the key; if that fails the pair
// is deleted). A label already on the token is [ErrKeyExists].
func (t *Token) GenerateKey(label, typ, usage string) (*Key, error) {
	if label == "" {
		return nil, errors.New("generate key: empty label")
	}
	var rsaBits int
	var curve elliptic.Curve
	switch typ {
	case "rsa-2048":
		rsaBits = 2048
	case "rsa-3072":
		rsaBits = 3072
	case "rsa-4096":
		rsaBits = 4096
	case "p256":
		curve = elliptic.P256()
	case "p384":
		curve = elliptic.P384()
	default:
		return nil, fmt.Errorf("generate key: unknown key type %q", typ)
	}
	if usage != UsageExchange && usage != UsageSign {
		return nil, fmt.Errorf("generate key: unknown usage %q", usage)
	}
	exch := usage == UsageExchange
	err := t.withSession(func(sh pkcs11.SessionHandle) error {
		used, err := t.labelInUse(sh, label)
		if err != nil {
			return err
		}
		if used {
			return fmt.Errorf("%w: %q", ErrKeyExists, label)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	tmpID := make([]byte, 32)
	if _, err := rand.Read(tmpID); err != nil {
		return nil, err
	}
	pub, priv := crypto11.NewAttributeSet(), crypto11.NewAttributeSet()
	set := func(s crypto11.AttributeSet, typ uint, v any) {
		if err := s.Set(typ, v); err != nil {
			panic(err) // only bool and []byte values: a programming error
		}
	}
	for _, s := range []crypto11.AttributeSet{pub, priv} {
		set(s, pkcs11.CKA_LABEL, []byte(label))
		set(s, pkcs11.CKA_ID, tmpID)
		set(s, pkcs11.CKA_TOKEN, true)
	}
	set(pub, pkcs11.CKA_PRIVATE, false)
	set(priv, pkcs11.CKA_PRIVATE, true)
	set(priv, pkcs11.CKA_SENSITIVE, true)
	set(priv, pkcs11.CKA_EXTRACTABLE, false)
	set(priv, pkcs11.CKA_SIGN, !exch)
	set(pub, pkcs11.CKA_VERIFY, !exch)
	// Everything explicit: tokens differ in their defaults (SoftHSM2
	// defaults CKA_DERIVE to true on generated EC keys).
	set(priv, pkcs11.CKA_DECRYPT, exch && rsaBits != 0)
	set(priv, pkcs11.CKA_UNWRAP, exch && rsaBits != 0)
	set(priv, pkcs11.CKA_DERIVE, exch && rsaBits == 0)
	set(pub, pkcs11.CKA_ENCRYPT, exch && rsaBits != 0)
	set(pub, pkcs11.CKA_WRAP, exch && rsaBits != 0)

	var signer crypto11.Signer
	if rsaBits != 0 {
		signer, err = t.c11.GenerateRSAKeyPairWithAttributes(pub, priv, rsaBits)
	} else {
		signer, err = t.c11.GenerateECDSAKeyPairWithAttributes(pub, priv, curve)
	}
	if err != nil {
		return nil, p11err("C_GenerateKeyPair", err)
	}
	id, err := KeyID(signer.Public())
	if err == nil {
		err = t.withSession(func(sh pkcs11.SessionHandle) error {
			hs, err := t.findObjects(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_ID, tmpID)})
			if err != nil {
				return err
			}
			if len(hs) != 2 {
				return fmt.Errorf("generate key: found %d objects for the new pair, expected 2", len(hs))
			}
			for _, h := range hs {
				if err := t.ctx.SetAttributeValue(sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_ID, id)}); err != nil {
					return p11err("C_SetAttributeValue", err)
				}
			}
			return nil
		})
	}
	if err != nil {
		if derr := signer.Delete(); derr != nil {
			return nil, fmt.Errorf("%w (and deleting the new pair failed: %w)", err, p11err("C_DestroyObject", derr))
		}
		return nil, err
	}
	return t.FindKeyByID(id)
}

// DeleteKey deletes the key pair whose private key has CKA_LABEL label:
// the private key and every public key with its CKA_ID.
func (t *Token) DeleteKey(label string) error {
	k, err := t.FindKey(label)
	if err != nil {
		return err
	}
	return t.withSession(func(sh pkcs11.SessionHandle) error {
		pubs, err := t.findObjects(sh, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_ID, k.ID),
		})
		if err != nil {
			return err
		}
		if err := t.ctx.DestroyObject(sh, k.priv); err != nil {
			return p11err("C_DestroyObject", err)
		}
		for _, h := range pubs {
			if err := t.ctx.DestroyObject(sh, h); err != nil {
				return p11err("C_DestroyObject", err)
			}
		}
		return nil
	})
}

// Signer returns a crypto.Signer for the key (ECDSA, or RSA PKCS#1 v1.5
// and PSS), through crypto11. The key must allow CKA_SIGN.
func (k *Key) Signer() (crypto.Signer, error) {
	s, err := k.crypto11()
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (k *Key) crypto11() (crypto11.Signer, error) {
	k.c11Once.Do(func() {
		s, err := k.t.c11.FindKeyPair(k.ID, nil)
		switch {
		case err != nil:
			k.c11Err = p11err("crypto11 FindKeyPair", err)
		case s == nil:
			k.c11Err = fmt.Errorf("%w: id %x", ErrKeyNotFound, k.ID)
		default:
			k.c11 = s
		}
	})
	return k.c11, k.c11Err
}
