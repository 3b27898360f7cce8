package token

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"

	"github.com/miekg/pkcs11"
)

// Check makes sure the key's public key belongs to its private key before
// it is trusted: exported, sealed to, or reported by doctor. Public-key
// objects and certificates can be replaced by anyone who can write to
// the token, without its PIN.
//
// An RSA key whose private object shows its modulus and exponent needs
// no token operation: its public key was read from there, and any
// public-key object or certificate with its CKA_ID must agree. Any other
// key is put to the test once per Token: an ECDH derive against a key
// made on the host, compared with the host's result (exchange keys), or a
// signature verified on the host (signing keys), or for RSA an OAEP
// round trip. A mismatch is [ErrKeyMismatch] naming the key; a key that
// can do none of these cannot be checked and is [ErrWrongKeyType].
func (k *Key) Check() error {
	if k.broken != nil {
		return k.broken
	}
	if k.vouch {
		return nil
	}
	_, err := k.t.cached(k.priv, "check", k.check)
	return err
}

func (k *Key) check() (string, error) {
	switch pub := k.pub.(type) {
	case *ecdsa.PublicKey:
		if k.Usage.CanExchange() && k.t.supports(pkcs11.CKM_ECDH1_DERIVE, pkcs11.CKF_DERIVE) {
			return "derive", k.checkDerive(pub)
		}
		if k.Usage.CanSign() {
			_, err := k.signECDSA(pub, randomDigest())
			return "sign", err
		}
	case *rsa.PublicKey:
		if k.Usage.CanSign() {
			_, err := k.signPSS(pub, randomDigest())
			return "sign", err
		}
		if k.Usage.CanExchange() {
			if _, err := k.OAEPHash(); err != nil {
				return "", fmt.Errorf("%w (or its public key is not its own)", err)
			}
			return "oaep", nil
		}
	}
	return "", fmt.Errorf("%w: key %s can neither derive nor sign on this token, so its public key cannot be checked against it", ErrWrongKeyType, k)
}

func randomDigest() []byte {
	var b [32]byte
	rand.Read(b[:])
	d := sha256.Sum256(b[:])
	return d[:]
}

// checkDerive compares an ECDH derive on the token with the host's, for
// a key made on the host.
func (k *Key) checkDerive(pub *ecdsa.PublicKey) error {
	curve, err := ecdhCurve(pub)
	if err != nil {
		return err
	}
	eph, err := curve.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	peer, err := pub.ECDH()
	if err != nil {
		return err
	}
	want, err := eph.ECDH(peer)
	if err != nil {
		return err
	}
	defer clear(want)
	got, err := k.ECDH(eph.PublicKey().Bytes())
	if err != nil {
		return err
	}
	defer clear(got)
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return k.mismatch("its ECDH result differs from the one its public key gives")
	}
	return nil
}

// CanOpen says whether this token can open envelopes with the key: the
// key allows unwrap or derive, and the token offers a mechanism to do it
// (RSA: CKM_RSA_PKCS_OAEP decrypt or unwrap, or CKM_RSA_X_509 decrypt;
// EC: CKM_ECDH1_DERIVE). It costs no token operation: which path works
// is found by [Key.OAEPPath] when a stanza needs it. A key that cannot is
// [ErrWrongKeyType] or [ErrMechanism] saying why.
func (k *Key) CanOpen() error {
	if !k.Usage.CanExchange() {
		return fmt.Errorf("%w: key %s cannot unwrap or derive (usage %s)", ErrWrongKeyType, k, k.Usage)
	}
	switch k.pub.(type) {
	case *rsa.PublicKey:
		for _, p := range oaepPaths {
			if k.offers(p) {
				return nil
			}
		}
		return fmt.Errorf("%w: key %s: this token offers no RSA-OAEP decrypt or unwrap and no raw RSA decrypt", ErrMechanism, k)
	case *ecdsa.PublicKey:
		if !k.t.supports(pkcs11.CKM_ECDH1_DERIVE, pkcs11.CKF_DERIVE) {
			return fmt.Errorf("%w: key %s: this token has no ECDH (CKM_ECDH1_DERIVE)", ErrMechanism, k)
		}
		return nil
	}
	return fmt.Errorf("%w: key %s", ErrWrongKeyType, k)
}
