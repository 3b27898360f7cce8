package token

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"strings"

	"github.com/miekg/pkcs11"
)

// The ways a token undoes RSA-OAEP, as [Key.OAEPPath] reports them.
const (
	PathUnwrap  = "unwrap"  // C_UnwrapKey CKM_RSA_PKCS_OAEP into a session object whose value is read
	PathDecrypt = "decrypt" // C_Decrypt CKM_RSA_PKCS_OAEP
	PathRaw     = "raw"     // C_Decrypt CKM_RSA_X_509, OAEP decoded on the host
)

// oaepPaths is the order in which [Key.OAEPPath] probes the paths.
var oaepPaths = []string{PathUnwrap, PathDecrypt, PathRaw}

func oaepParams(h crypto.Hash) (hashMech, mgf uint, err error) {
	switch h {
	case crypto.SHA1:
		return pkcs11.CKM_SHA_1, pkcs11.CKG_MGF1_SHA1, nil
	case crypto.SHA256:
		return pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256, nil
	}
	return 0, 0, fmt.Errorf("oaep: unsupported hash %v", h)
}

// oaepMechanism is CKM_RSA_PKCS_OAEP with hash as digest and MGF1 digest
// and an empty label given as CKZ_DATA_SPECIFIED (SoftHSM2 needs it).
func oaepMechanism(h crypto.Hash) ([]*pkcs11.Mechanism, error) {
	hm, mgf, err := oaepParams(h)
	if err != nil {
		return nil, err
	}
	return []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_OAEP,
		pkcs11.NewOAEPParams(hm, mgf, pkcs11.CKZ_DATA_SPECIFIED, nil))}, nil
}

// rsaPublic returns the key's RSA public key, or ErrWrongKeyType.
func (k *Key) rsaPublic() (*rsa.PublicKey, error) {
	pub, ok := k.pub.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: key %s is not an rsa key", ErrWrongKeyType, k)
	}
	return pub, nil
}

// DecryptOAEP undoes RSA-OAEP with hash for both the OAEP digest and MGF1
// and an empty label, on the token, by the one path [Key.OAEPPath] chose
// for this key and hash. It never tries another path: a failure of that
// path on this ciphertext is the ciphertext's, and gives the fixed
// [ErrUnwrapFailed] whatever the token said (its CKR_ value is logged at
// Debug level), so no difference between bad ciphertexts reaches the
// caller. Failures of the token itself (removed, session gone, ...) stay
// [*Error]; no path at all is [ErrMechanism].
func (k *Key) DecryptOAEP(h crypto.Hash, ciphertext []byte) ([]byte, error) {
	pub, err := k.rsaPublic()
	if err != nil {
		return nil, err
	}
	if !k.Usage.CanExchange() {
		return nil, fmt.Errorf("%w: key %s does not allow decrypt or unwrap", ErrWrongKeyType, k)
	}
	if len(ciphertext) != pub.Size() {
		// Checked before any cgo call (miekg indexes &data[0]).
		return nil, ErrUnwrapFailed
	}
	path, err := k.OAEPPath(h)
	if err != nil {
		return nil, err
	}
	pt, err := k.oaepVia(path, h, ciphertext)
	if err != nil {
		return nil, dataFailure(path, k.Label, err)
	}
	slog.Debug("rsa-oaep on token", "key", k.Label, "path", path, "hash", h.String())
	return pt, nil
}

// offers reports whether the key and token allow path.
func (k *Key) offers(path string) bool {
	switch path {
	case PathUnwrap:
		return k.perm.unwrap && k.t.supports(pkcs11.CKM_RSA_PKCS_OAEP, pkcs11.CKF_UNWRAP)
	case PathDecrypt:
		return k.perm.decrypt && k.t.supports(pkcs11.CKM_RSA_PKCS_OAEP, pkcs11.CKF_DECRYPT)
	case PathRaw:
		return k.perm.decrypt && k.t.supports(pkcs11.CKM_RSA_X_509, pkcs11.CKF_DECRYPT)
	}
	return false
}

// oaepVia runs one path on ct; errors are the token's, unsorted.
func (k *Key) oaepVia(path string, h crypto.Hash, ct []byte) ([]byte, error) {
	switch path {
	case PathUnwrap:
		return k.unwrapOAEP(h, ct)
	case PathDecrypt:
		mech, err := oaepMechanism(h)
		if err != nil {
			return nil, err
		}
		return k.decrypt(mech, ct)
	case PathRaw:
		return k.rawOAEP(h, ct)
	}
	panic("unknown oaep path " + path)
}

// OAEPPath returns the path by which this key undoes RSA-OAEP with hash
// h, chosen once per key and hash for the life of the Token by a probe:
// 32 random bytes wrapped on the host, given to each path the key and
// token offer ([PathUnwrap], [PathDecrypt], [PathRaw], in that order);
// the first that gives them back is kept. The choice never depends on
// data from outside. None is [ErrMechanism].
func (k *Key) OAEPPath(h crypto.Hash) (string, error) {
	pub, err := k.rsaPublic()
	if err != nil {
		return "", err
	}
	if _, _, err := oaepParams(h); err != nil {
		return "", err
	}
	return k.t.cached(k.priv, "oaep-"+h.String(), func() (string, error) {
		secret := make([]byte, 32)
		rand.Read(secret)
		defer clear(secret)
		ct, err := rsa.EncryptOAEP(h.New(), rand.Reader, pub, secret, nil)
		if err != nil {
			return "", err
		}
		var why []string
		for _, p := range oaepPaths {
			if !k.offers(p) {
				continue
			}
			pt, err := k.oaepVia(p, h, ct)
			ok := err == nil && subtle.ConstantTimeCompare(pt, secret) == 1
			clear(pt)
			switch {
			case ok:
				slog.Debug("oaep path chosen", "key", k.Label, "hash", h.String(), "path", p)
				return p, nil
			case hasCode(err, environmentCodes...):
				return "", p11err(p, err)
			case err == nil:
				err = errors.New("a different secret came back")
			}
			why = append(why, fmt.Sprintf("%s: %v", p, err))
		}
		if len(why) == 0 {
			why = append(why, "the key and token offer none")
		}
		return "", fmt.Errorf("%w: key %s cannot undo rsa-oaep with %v (%s)", ErrMechanism, k, h, strings.Join(why, "; "))
	})
}

// OAEPHash returns the OAEP hash senders should use for this key, as
// `key export` records it: a hash the token undoes by C_UnwrapKey, else
// by C_Decrypt (SHA-256 before SHA-1 in each case), else SHA-256 by the
// raw path, which decodes any hash on the host. On SoftHSM2 2.6.1 it is
// SHA-1 (unwrap); on tpm2-pkcs11 and opencryptoki, SHA-256 (decrypt).
func (k *Key) OAEPHash() (crypto.Hash, error) {
	paths := map[crypto.Hash]string{}
	var errs []error
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA1} {
		p, err := k.OAEPPath(h)
		if err != nil && !errors.Is(err, ErrMechanism) {
			return 0, err
		}
		paths[h] = p
		errs = append(errs, err)
	}
	for _, want := range []string{PathUnwrap, PathDecrypt, PathRaw} {
		for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA1} {
			if paths[h] == want {
				return h, nil
			}
		}
	}
	return 0, errs[0]
}

// unwrapTemplate is the template of an unwrapped file key: a session
// object whose value the host may read. Every attribute is explicit; no
// CKA_VALUE_LEN (SoftHSM2 refuses it for an unwrap: the length comes from
// the wrapped data).
func unwrapTemplate() []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
	}
}

func (k *Key) unwrapOAEP(h crypto.Hash, ct []byte) ([]byte, error) {
	mech, err := oaepMechanism(h)
	if err != nil {
		return nil, err
	}
	var out []byte
	err = k.t.withSession(func(sh pkcs11.SessionHandle) error {
		obj, err := k.t.ctx().UnwrapKey(sh, mech, k.priv, ct, unwrapTemplate())
		if err != nil {
			return p11err("C_UnwrapKey", err)
		}
		defer k.t.destroySecret(sh, obj)
		out, err = k.t.readValue(sh, obj)
		return err
	})
	return out, err
}

// readValue reads CKA_VALUE of a session secret key.
func (t *Token) readValue(sh pkcs11.SessionHandle, obj pkcs11.ObjectHandle) ([]byte, error) {
	a, err := t.ctx().GetAttributeValue(sh, obj, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
	if err != nil {
		return nil, p11err("C_GetAttributeValue", err)
	}
	return a[0].Value, nil
}

// decrypt runs C_DecryptInit and C_Decrypt with mech on ct.
func (k *Key) decrypt(mech []*pkcs11.Mechanism, ct []byte) ([]byte, error) {
	var out []byte
	err := k.t.withSession(func(sh pkcs11.SessionHandle) error {
		if err := k.t.ctx().DecryptInit(sh, mech, k.priv); err != nil {
			return p11err("C_DecryptInit", err)
		}
		pt, err := k.t.ctx().Decrypt(sh, ct)
		if err != nil {
			return p11err("C_Decrypt", err)
		}
		out = pt
		return nil
	})
	return out, err
}

var errOAEP = errors.New("oaep decoding error")

// rawOAEP decrypts ct with raw RSA on the token and decodes OAEP on the
// host. The token's output is copied, right-aligned, into a buffer of
// the modulus size (some tokens drop leading zero bytes), without
// looking at its content, and decoded in constant time.
func (k *Key) rawOAEP(h crypto.Hash, ct []byte) ([]byte, error) {
	size := len(ct)
	out, err := k.decrypt([]*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_X_509, nil)}, ct)
	if err != nil {
		return nil, err
	}
	defer clear(out)
	if len(out) > size {
		return nil, errOAEP
	}
	em := make([]byte, size)
	defer clear(em)
	copy(em[size-len(out):], out)
	return decodeOAEP(h.New(), em)
}

// decodeOAEP undoes EME-OAEP encoding (RFC 8017 7.1.2 step 3) with an empty
// label and MGF1 over the same hash, in constant time with respect to the
// contents of em: a port of crypto/rsa's decryptOAEP. em is the raw RSA
// output, left-padded to the modulus size; it is modified in place. The
// result is a fresh copy.
func decodeOAEP(h hash.Hash, em []byte) ([]byte, error) {
	hLen := h.Size()
	k := len(em)
	if k < 2*hLen+2 {
		return nil, errOAEP
	}
	h.Reset()
	lHash := h.Sum(nil) // hash of the empty label

	firstByteIsZero := subtle.ConstantTimeByteEq(em[0], 0)
	seed := em[1 : hLen+1]
	db := em[hLen+1:]
	mgf1XOR(seed, h, db)
	mgf1XOR(db, h, seed)

	lHash2Good := subtle.ConstantTimeCompare(lHash, db[:hLen])

	// The remainder of the plaintext must be zero or more 0x00, followed
	// by 0x01, followed by the message.
	//   lookingForIndex: 1 iff we are still looking for the 0x01
	//   index: the offset of the first 0x01 byte
	//   invalid: 1 iff we saw a non-zero byte before the 0x01.
	var lookingForIndex, index, invalid int
	lookingForIndex = 1
	rest := db[hLen:]
	for i := 0; i < len(rest); i++ {
		equals0 := subtle.ConstantTimeByteEq(rest[i], 0)
		equals1 := subtle.ConstantTimeByteEq(rest[i], 1)
		index = subtle.ConstantTimeSelect(lookingForIndex&equals1, i, index)
		lookingForIndex = subtle.ConstantTimeSelect(equals1, 0, lookingForIndex)
		invalid = subtle.ConstantTimeSelect(lookingForIndex&^equals0, 1, invalid)
	}
	if firstByteIsZero&lHash2Good&^invalid&^lookingForIndex != 1 {
		return nil, errOAEP
	}
	return bytes.Clone(rest[index+1:]), nil
}

// mgf1XOR XORs out with MGF1(seed) over h (RFC 8017 B.2.1).
func mgf1XOR(out []byte, h hash.Hash, seed []byte) {
	var counter [4]byte
	var digest []byte
	done := 0
	for done < len(out) {
		h.Reset()
		h.Write(seed)
		h.Write(counter[:])
		digest = h.Sum(digest[:0])
		for i := 0; i < len(digest) && done < len(out); i++ {
			out[done] ^= digest[i]
			done++
		}
		for i := 3; i >= 0; i-- {
			counter[i]++
			if counter[i] != 0 {
				break
			}
		}
	}
	clear(digest)
}
