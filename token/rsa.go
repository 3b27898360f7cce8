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

	"github.com/miekg/pkcs11"
)

// OAEP paths, as reported by [Key.ProbeOAEPHash] and logged at Debug.
const (
	PathUnwrap  = "unwrap"  // C_UnwrapKey CKM_RSA_PKCS_OAEP into a session object
	PathDecrypt = "decrypt" // C_Decrypt CKM_RSA_PKCS_OAEP (crypto11 Decrypter)
	PathRaw     = "raw"     // C_Decrypt CKM_RSA_X_509, OAEP decoded on the host
)

func oaepParams(h crypto.Hash) (hashMech, mgf uint, err error) {
	switch h {
	case crypto.SHA1:
		return pkcs11.CKM_SHA_1, pkcs11.CKG_MGF1_SHA1, nil
	case crypto.SHA256:
		return pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256, nil
	case crypto.SHA384:
		return pkcs11.CKM_SHA384, pkcs11.CKG_MGF1_SHA384, nil
	case crypto.SHA512:
		return pkcs11.CKM_SHA512, pkcs11.CKG_MGF1_SHA512, nil
	}
	return 0, 0, fmt.Errorf("oaep: unsupported hash %v", h)
}

// errNextPath means the token refused this path's mechanism or parameters;
// the caller tries the next one.
var errNextPath = errors.New("path refused by token")

// DecryptOAEP undoes RSA-OAEP with hash for both the OAEP digest and MGF1
// and an empty label, on the token. It uses, in order, whatever the token
// really does: C_UnwrapKey with CKM_RSA_PKCS_OAEP into a session object
// whose CKA_VALUE is read and the object destroyed; C_Decrypt with
// CKM_RSA_PKCS_OAEP; raw RSA (CKM_RSA_X_509) with OAEP decoded on the host
// in constant time (PIV cards such as YubiKey only offer this). A path is
// skipped when C_GetMechanismInfo lacks the flag or the token refuses the
// parameters (SoftHSM2 2.6.1 takes only SHA-1 for OAEP; SHA-256 goes raw).
//
// A ciphertext not addressed to this key, or corrupted, gives an error
// matching [ErrUnwrapFailed]; device failures stay [*Error].
func (k *Key) DecryptOAEP(h crypto.Hash, ciphertext []byte) ([]byte, error) {
	if err := k.checkRSA(ciphertext); err != nil {
		return nil, err
	}
	if _, _, err := oaepParams(h); err != nil {
		return nil, err
	}
	for _, p := range oaepPaths {
		pt, err := k.oaepVia(p, h, ciphertext)
		if errors.Is(err, errNextPath) {
			continue
		}
		if err == nil {
			slog.Debug("rsa-oaep on token", "key", k.Label, "path", p, "hash", h.String())
		}
		return pt, err
	}
	return nil, fmt.Errorf("%w: rsa-oaep with %v: token offers no CKM_RSA_PKCS_OAEP unwrap/decrypt with these parameters and no CKM_RSA_X_509 decrypt", ErrMechanism, h)
}

func (k *Key) checkRSA(ciphertext []byte) error {
	pub, ok := k.pub.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: key %q is not an rsa key", ErrWrongKeyType, k.Label)
	}
	if !k.canDec && !k.canUnw {
		return fmt.Errorf("%w: key %q does not allow decrypt or unwrap", ErrWrongKeyType, k.Label)
	}
	// Checked here, before any cgo call (miekg indexes &wrapped[0]).
	if len(ciphertext) != pub.Size() {
		return unwrapFailed(fmt.Errorf("ciphertext is %d bytes, the key takes %d", len(ciphertext), pub.Size()))
	}
	return nil
}

// oaepVia runs one path. errNextPath means: not offered or refused.
func (k *Key) oaepVia(path string, h crypto.Hash, ct []byte) ([]byte, error) {
	switch path {
	case PathUnwrap:
		if !k.canUnw || !k.t.supports(pkcs11.CKM_RSA_PKCS_OAEP, pkcs11.CKF_UNWRAP) {
			return nil, errNextPath
		}
		return k.unwrapOAEP(h, ct)
	case PathDecrypt:
		if !k.canDec || !k.t.supports(pkcs11.CKM_RSA_PKCS_OAEP, pkcs11.CKF_DECRYPT) {
			return nil, errNextPath
		}
		return k.decryptOAEP(h, ct)
	case PathRaw:
		if !k.canDec || !k.t.supports(pkcs11.CKM_RSA_X_509, pkcs11.CKF_DECRYPT) {
			return nil, errNextPath
		}
		return k.rawOAEP(h, ct)
	}
	panic("unknown oaep path " + path)
}

// classify sorts a token failure: parameters refused → errNextPath; bad
// data → ErrUnwrapFailed; anything else (device removed, session invalid,
// ...) stays a token error.
func classify(op string, err error) error {
	switch {
	case hasCode(err, paramRefused...):
		slog.Debug("token refused mechanism parameters", "op", op, "err", p11err(op, err))
		return errNextPath
	case hasCode(err, dataRefused...):
		return unwrapFailed(p11err(op, err))
	}
	return p11err(op, err)
}

// oaepPaths is the order in which DecryptOAEP tries the token's ways of
// undoing RSA-OAEP (doctor reports the first that works the same way).
var oaepPaths = []string{PathUnwrap, PathDecrypt, PathRaw}

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

// unwrapTemplate is the template of an unwrapped file key: a session
// object whose value the host may read. Every attribute is explicit; no
// CKA_VALUE_LEN (SoftHSM2 refuses it for an unwrap: the length comes from
// the wrapped data).
func unwrapTemplate(extra ...*pkcs11.Attribute) []*pkcs11.Attribute {
	return append([]*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
	}, extra...)
}

func (k *Key) unwrapOAEP(h crypto.Hash, ct []byte) ([]byte, error) {
	mech, err := oaepMechanism(h)
	if err != nil {
		return nil, err
	}
	tmpl := unwrapTemplate()
	var out []byte
	err = k.t.withSession(func(sh pkcs11.SessionHandle) error {
		obj, err := k.t.ctx.UnwrapKey(sh, mech, k.priv, ct, tmpl)
		if err != nil {
			return classify("C_UnwrapKey", err)
		}
		defer k.t.destroySecret(sh, obj)
		out, err = readValue(k.t.ctx, sh, obj)
		return err
	})
	return out, err
}

// readValue reads CKA_VALUE of a session secret key.
func readValue(ctx *pkcs11.Ctx, sh pkcs11.SessionHandle, obj pkcs11.ObjectHandle) ([]byte, error) {
	a, err := ctx.GetAttributeValue(sh, obj, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
	if err != nil {
		return nil, p11err("C_GetAttributeValue", err)
	}
	return a[0].Value, nil
}

func (k *Key) decryptOAEP(h crypto.Hash, ct []byte) ([]byte, error) {
	s, err := k.crypto11()
	if err != nil {
		return nil, err
	}
	dec, ok := s.(crypto.Decrypter)
	if !ok {
		return nil, errNextPath
	}
	pt, err := dec.Decrypt(nil, ct, &rsa.OAEPOptions{Hash: h})
	if err != nil {
		return nil, classify("C_Decrypt", err)
	}
	return pt, nil
}

func (k *Key) rawOAEP(h crypto.Hash, ct []byte) ([]byte, error) {
	pub := k.pub.(*rsa.PublicKey)
	var em []byte
	err := k.t.withSession(func(sh pkcs11.SessionHandle) error {
		if err := k.t.ctx.DecryptInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_X_509, nil)}, k.priv); err != nil {
			return classify("C_DecryptInit", err)
		}
		out, err := k.t.ctx.Decrypt(sh, ct)
		if err != nil {
			return classify("C_Decrypt", err)
		}
		em = out
		return nil
	})
	if err != nil {
		return nil, err
	}
	size := pub.Size()
	if len(em) > size {
		clear(em)
		return nil, unwrapFailed(errors.New("raw rsa output longer than the modulus"))
	}
	if len(em) < size { // some tokens strip leading zeros
		padded := make([]byte, size)
		copy(padded[size-len(em):], em)
		clear(em)
		em = padded
	}
	defer clear(em)
	pt, err := decodeOAEP(h.New(), em)
	if err != nil {
		return nil, unwrapFailed(err)
	}
	return pt, nil
}

var errOAEP = errors.New("oaep decoding error")

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

// ProbeOAEPHash finds which OAEP hash the token can undo for this key, by
// wrapping 32 random bytes on the host (rsa.EncryptOAEP) and unwrapping on
// the token: SHA-256 then SHA-1 through C_UnwrapKey, then the same through
// C_Decrypt; if none works, SHA-256 (the raw path decodes any hash on the
// host) is returned with path "raw", provided the token offers raw RSA.
// On SoftHSM2 2.6.1 the result is SHA-1 via unwrap.
func (k *Key) ProbeOAEPHash() (crypto.Hash, string, error) {
	pub, ok := k.pub.(*rsa.PublicKey)
	if !ok {
		return 0, "", fmt.Errorf("%w: key %q is not an rsa key", ErrWrongKeyType, k.Label)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return 0, "", err
	}
	defer clear(secret)
	for _, path := range []string{PathUnwrap, PathDecrypt} {
		for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA1} {
			ct, err := rsa.EncryptOAEP(h.New(), rand.Reader, pub, secret, nil)
			if err != nil {
				return 0, "", err
			}
			if err := k.checkRSA(ct); err != nil {
				return 0, "", err
			}
			pt, err := k.oaepVia(path, h, ct)
			switch {
			case err == nil && subtle.ConstantTimeCompare(pt, secret) == 1:
				clear(pt)
				slog.Debug("oaep probe", "key", k.Label, "path", path, "hash", h.String())
				return h, path, nil
			case err == nil:
				clear(pt)
				return 0, "", fmt.Errorf("oaep probe: token returned a different secret via %s with %v", path, h)
			case errors.Is(err, errNextPath), errors.Is(err, ErrUnwrapFailed):
				// Some tokens report unsupported parameters as a
				// data failure: try the next combination.
				continue
			default:
				return 0, "", err
			}
		}
	}
	if k.canDec && k.t.supports(pkcs11.CKM_RSA_X_509, pkcs11.CKF_DECRYPT) {
		return crypto.SHA256, PathRaw, nil
	}
	return 0, "", fmt.Errorf("%w: key %q: no rsa-oaep unwrap/decrypt and no raw rsa decrypt", ErrMechanism, k.Label)
}
