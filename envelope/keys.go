package envelope

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"errors"
	"fmt"
	"io"

	"github.com/tokenseal/tokenseal/envelope/internal/format"
	"github.com/tokenseal/tokenseal/envelope/internal/kw"
	"github.com/tokenseal/tokenseal/internal/keyid"
)

// RSAKey is an RSA private key that can undo RSA-OAEP, such as a key on a
// token. Public returns an *rsa.PublicKey. An error that means "this
// ciphertext is bad" should wrap ErrUnwrap (or the implementation's own
// equivalent that its caller maps to a rejection); other errors (a token
// that went away) are passed to Open's caller unchanged.
type RSAKey interface {
	Public() crypto.PublicKey
	// DecryptOAEP undoes RSA-OAEP with hash as both the OAEP digest and
	// the MGF1 digest, and an empty label.
	DecryptOAEP(hash crypto.Hash, ciphertext []byte) ([]byte, error)
}

// ECDHKey is a P-256 or P-384 private key that can do ECDH, such as a key
// on a token. Public returns an *ecdsa.PublicKey.
type ECDHKey interface {
	Public() crypto.PublicKey
	// ECDH returns the x-coordinate of the shared point with peer, an
	// uncompressed SEC 1 point already checked to be on the curve, as a
	// big-endian integer of the field's length.
	ECDH(peer []byte) ([]byte, error)
}

// OAEP digest identifiers in an RSA-OAEP stanza.
const (
	oaepSHA1   = 1
	oaepSHA256 = 2
)

// Limits on recipients' and senders' RSA keys.
const (
	minRSABits = 2048
	maxRSABits = 4096
)

// KeyIDOf returns the key identifier of a public key.
func KeyIDOf(pub crypto.PublicKey) (KeyID, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return KeyID{}, err
	}
	return keyid.OfSPKI(der), nil
}

func oaepID(h crypto.Hash) (byte, error) {
	switch h {
	case crypto.SHA1:
		return oaepSHA1, nil
	case crypto.SHA256:
		return oaepSHA256, nil
	}
	return 0, fmt.Errorf("unsupported OAEP hash %v", h)
}

// rsaRecipient wraps file keys with RSA-OAEP.
type rsaRecipient struct {
	pub  *rsa.PublicKey
	hash crypto.Hash
	id   KeyID
	rand io.Reader
}

// newRSARecipient returns a recipient for pub using OAEP with hash
// (crypto.SHA256, or crypto.SHA1 for tokens such as SoftHSM2 that unwrap
// only with SHA-1) as digest and MGF1 digest.
func newRSARecipient(pub *rsa.PublicKey, hash crypto.Hash) (*rsaRecipient, error) {
	if bits := pub.N.BitLen(); bits < minRSABits || bits > maxRSABits {
		return nil, fmt.Errorf("RSA key of %d bits: recipients must have %d to %d bits", bits, minRSABits, maxRSABits)
	}
	if _, err := oaepID(hash); err != nil {
		return nil, err
	}
	id, err := KeyIDOf(pub)
	if err != nil {
		return nil, err
	}
	return &rsaRecipient{pub: pub, hash: hash, id: id, rand: rand.Reader}, nil
}

// Wrap implements Recipient.
func (r *rsaRecipient) Wrap(fileKey []byte) (*Stanza, error) {
	hid, _ := oaepID(r.hash)
	ct, err := rsa.EncryptOAEP(r.hash.New(), r.rand, r.pub, fileKey, nil)
	if err != nil {
		return nil, fmt.Errorf("RSA-OAEP wrap: %w", err)
	}
	return &Stanza{Type: format.StanzaRSAOAEP, KeyID: r.id, Body: append([]byte{hid}, ct...)}, nil
}

// ecRecipient wraps file keys with ephemeral-static ECDH on P-256 or
// P-384, the X9.63 KDF with SHA-256 and AES key wrap with padding.
type ecRecipient struct {
	pub  *ecdh.PublicKey
	typ  uint8
	id   KeyID
	rand io.Reader
}

// newECRecipient returns a recipient for a P-256 or P-384 public key.
func newECRecipient(pub *ecdsa.PublicKey) (*ecRecipient, error) {
	var typ uint8
	switch pub.Curve {
	case elliptic.P256():
		typ = format.StanzaECDHP256
	case elliptic.P384():
		typ = format.StanzaECDHP384
	default:
		return nil, fmt.Errorf("unsupported curve %s: recipients must be P-256 or P-384", pub.Curve.Params().Name)
	}
	epub, err := pub.ECDH()
	if err != nil {
		return nil, err
	}
	id, err := KeyIDOf(pub)
	if err != nil {
		return nil, err
	}
	return &ecRecipient{pub: epub, typ: typ, id: id, rand: rand.Reader}, nil
}

func ecLabel(typ uint8) string {
	if typ == format.StanzaECDHP256 {
		return "tokenseal/v1 ECDH-P256"
	}
	return "tokenseal/v1 ECDH-P384"
}

// sharedInfo binds the KEK to the stanza type and both public keys.
func sharedInfo(typ uint8, eph, static []byte) []byte {
	si := append([]byte(ecLabel(typ)), eph...)
	return append(si, static...)
}

// Wrap implements Recipient.
func (r *ecRecipient) Wrap(fileKey []byte) (*Stanza, error) {
	eph, err := r.pub.Curve().GenerateKey(r.rand)
	if err != nil {
		return nil, err
	}
	z, err := eph.ECDH(r.pub)
	if err != nil {
		return nil, err
	}
	defer clear(z)
	ephBytes := eph.PublicKey().Bytes()
	kek := kw.X963KDFSHA256(z, sharedInfo(r.typ, ephBytes, r.pub.Bytes()), 32)
	defer clear(kek)
	wrapped, err := kw.WrapPad(kek, fileKey)
	if err != nil {
		return nil, err
	}
	return &Stanza{Type: r.typ, KeyID: r.id, Body: append(ephBytes, wrapped...)}, nil
}

// keyIdentity is the Identity of an RSAKey or ECDHKey.
type keyIdentity struct {
	id    KeyID
	rsa   RSAKey
	ec    ECDHKey
	curve ecdh.Curve
	typ   uint8
	pub   []byte // uncompressed point, for EC
	size  int    // RSA modulus bytes
}

// NewRSAIdentity returns the Identity of an RSA key. A key of fewer
// than 2048 or more than 4096 bits opens nothing: FORMAT.md (section 2,
// "RSA key sizes") has a reader pass its stanzas over.
func NewRSAIdentity(k RSAKey) (Identity, error) {
	pub, ok := k.Public().(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("not an RSA key")
	}
	id, err := KeyIDOf(pub)
	if err != nil {
		return nil, err
	}
	if bits := pub.N.BitLen(); bits < minRSABits || bits > maxRSABits {
		return passOver{}, nil
	}
	return &keyIdentity{id: id, rsa: k, typ: format.StanzaRSAOAEP, size: pub.Size()}, nil
}

// passOver is the Identity of a key that may not open envelopes.
type passOver struct{}

func (passOver) Unwrap([]*Stanza) ([]byte, error) { return nil, ErrIncorrectIdentity }

// NewECDHIdentity returns the Identity of a P-256 or P-384 key.
func NewECDHIdentity(k ECDHKey) (Identity, error) {
	pub, ok := k.Public().(*ecdsa.PublicKey)
	if !ok {
		return nil, errors.New("not an EC key")
	}
	ki := &keyIdentity{ec: k}
	switch pub.Curve {
	case elliptic.P256():
		ki.typ, ki.curve = format.StanzaECDHP256, ecdh.P256()
	case elliptic.P384():
		ki.typ, ki.curve = format.StanzaECDHP384, ecdh.P384()
	default:
		return nil, fmt.Errorf("unsupported curve %s", pub.Curve.Params().Name)
	}
	epub, err := pub.ECDH()
	if err != nil {
		return nil, err
	}
	ki.pub = epub.Bytes()
	if ki.id, err = KeyIDOf(pub); err != nil {
		return nil, err
	}
	return ki, nil
}

// Unwrap implements Identity.
func (k *keyIdentity) Unwrap(stanzas []*Stanza) ([]byte, error) {
	for _, s := range stanzas {
		if s.Type != k.typ || s.KeyID != k.id {
			continue
		}
		if k.rsa != nil {
			return k.unwrapRSA(s.Body)
		}
		return k.unwrapEC(s.Body)
	}
	return nil, ErrIncorrectIdentity
}

func (k *keyIdentity) unwrapRSA(body []byte) ([]byte, error) {
	if len(body) != 1+k.size {
		return nil, ErrUnwrap
	}
	var h crypto.Hash
	switch body[0] {
	case oaepSHA1:
		h = crypto.SHA1
	case oaepSHA256:
		h = crypto.SHA256
	default:
		return nil, rejected(fmt.Sprintf("RSA-OAEP stanza names unknown digest %d", body[0]))
	}
	fk, err := k.rsa.DecryptOAEP(h, body[1:])
	if err != nil {
		// The key's own error says whether the stanza was bad or the
		// token failed; it is passed on unchanged.
		return nil, fmt.Errorf("RSA-OAEP stanza for key %s: %w", k.id, err)
	}
	if len(fk) != fileKeySize {
		clear(fk)
		return nil, ErrUnwrap
	}
	return fk, nil
}

func (k *keyIdentity) unwrapEC(body []byte) ([]byte, error) {
	n := len(k.pub)
	if len(body) != n+40 {
		return nil, ErrUnwrap
	}
	eph := body[:n]
	// Check the point here, before it reaches the token: on the curve, not
	// the identity, uncompressed.
	if _, err := k.curve.NewPublicKey(eph); err != nil {
		return nil, ErrUnwrap
	}
	z, err := k.ec.ECDH(eph)
	if err != nil {
		return nil, fmt.Errorf("ECDH stanza for key %s: %w", k.id, err)
	}
	defer clear(z)
	if len(z) != (n-1)/2 {
		return nil, ErrUnwrap
	}
	kek := kw.X963KDFSHA256(z, sharedInfo(k.typ, eph, k.pub), 32)
	defer clear(kek)
	fk, err := kw.UnwrapPad(kek, body[n:])
	if err != nil || len(fk) != fileKeySize {
		clear(fk)
		return nil, ErrUnwrap
	}
	return fk, nil
}

// softwareRSA and softwareEC let tests and tools use keys held in memory.
type softwareRSA struct{ k *rsa.PrivateKey }

func (s softwareRSA) Public() crypto.PublicKey { return &s.k.PublicKey }
func (s softwareRSA) DecryptOAEP(h crypto.Hash, ct []byte) ([]byte, error) {
	pt, err := rsa.DecryptOAEP(h.New(), nil, s.k, ct, nil)
	if err != nil {
		return nil, ErrUnwrap
	}
	return pt, nil
}

type softwareEC struct {
	k  *ecdsa.PrivateKey
	ek *ecdh.PrivateKey
}

func (s softwareEC) Public() crypto.PublicKey { return &s.k.PublicKey }
func (s softwareEC) ECDH(peer []byte) ([]byte, error) {
	p, err := s.ek.Curve().NewPublicKey(peer)
	if err != nil {
		return nil, ErrUnwrap
	}
	z, err := s.ek.ECDH(p)
	if err != nil {
		return nil, ErrUnwrap
	}
	return z, nil
}

// NewSoftwareIdentity returns the Identity of a private key held in memory
// (*rsa.PrivateKey or a P-256/P-384 *ecdsa.PrivateKey). tokenseal itself
// opens with keys on a token; this serves tests and other tools.
func NewSoftwareIdentity(priv crypto.PrivateKey) (Identity, error) {
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		return NewRSAIdentity(softwareRSA{k})
	case *ecdsa.PrivateKey:
		ek, err := k.ECDH()
		if err != nil {
			return nil, err
		}
		return NewECDHIdentity(softwareEC{k, ek})
	}
	return nil, fmt.Errorf("unsupported private key type %T", priv)
}

var _ = sha1.New // OAEP with SHA-1 needs the hash linked in
