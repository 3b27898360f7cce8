package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"strings"

	"github.com/miekg/pkcs11"
)

// Signer returns a crypto.Signer for the key: ECDSA over any digest (an
// ASN.1 signature, as crypto/ecdsa gives), or RSA-PSS with SHA-256
// (*rsa.PSSOptions, salt of 32 bytes or the hash length). RSA-PSS runs
// as CKM_RSA_PKCS_PSS or, on tokens without it (tpm2-pkcs11 1.9.0), as
// raw RSA (CKM_RSA_X_509) over an EMSA-PSS encoding made on the host; the
// path is chosen once per key. Every signature is verified against
// Public before it is returned, so a public key that does not belong to
// the private key never vouches for a signature ([ErrKeyMismatch]).
func (k *Key) Signer() (crypto.Signer, error) {
	if !k.Usage.CanSign() {
		return nil, fmt.Errorf("%w: key %s is not a signing key (usage %s)", ErrWrongKeyType, k, k.Usage)
	}
	if k.broken != nil {
		return nil, k.broken
	}
	return signer{k}, nil
}

type signer struct{ k *Key }

func (s signer) Public() crypto.PublicKey { return s.k.pub }

// Sign implements crypto.Signer.
func (s signer) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	switch pub := s.k.pub.(type) {
	case *ecdsa.PublicKey:
		return s.k.signECDSA(pub, digest)
	case *rsa.PublicKey:
		pss, ok := opts.(*rsa.PSSOptions)
		if !ok || opts.HashFunc() != crypto.SHA256 || len(digest) != sha256.Size ||
			(pss.SaltLength != 32 && pss.SaltLength != rsa.PSSSaltLengthEqualsHash) {
			return nil, errors.New("token signer: rsa keys sign RSA-PSS with SHA-256 and a 32-byte salt only")
		}
		return s.k.signPSS(pub, digest)
	}
	return nil, fmt.Errorf("%w: key %s", ErrWrongKeyType, s.k)
}

// signRaw runs C_SignInit and C_Sign with mech over data.
func (k *Key) signRaw(mech *pkcs11.Mechanism, data []byte) ([]byte, error) {
	var sig []byte
	err := k.t.withSession(func(sh pkcs11.SessionHandle) error {
		if err := k.t.ctx().SignInit(sh, []*pkcs11.Mechanism{mech}, k.priv); err != nil {
			return p11err("C_SignInit", err)
		}
		s, err := k.t.ctx().Sign(sh, data)
		if err != nil {
			return p11err("C_Sign", err)
		}
		sig = s
		return nil
	})
	return sig, err
}

func (k *Key) mismatch(how string) error {
	return fmt.Errorf("%w: key %s: %s", ErrKeyMismatch, k, how)
}

func (k *Key) signECDSA(pub *ecdsa.PublicKey, digest []byte) ([]byte, error) {
	sig, err := k.signRaw(pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil), digest)
	if err != nil {
		return nil, err
	}
	size := (pub.Curve.Params().BitSize + 7) / 8
	if len(sig) != 2*size {
		return nil, fmt.Errorf("C_Sign: ecdsa signature of %d bytes, want %d", len(sig), 2*size)
	}
	r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
	if !ecdsa.Verify(pub, digest, r, s) {
		return nil, k.mismatch("its signature does not verify under its public key")
	}
	return asn1.Marshal(struct{ R, S *big.Int }{r, s})
}

// PSS signing paths.
const (
	signPSS = "pss" // CKM_RSA_PKCS_PSS
	signRaw = "raw" // CKM_RSA_X_509 over an EMSA-PSS encoding made on the host
)

func (k *Key) signPSS(pub *rsa.PublicKey, digest []byte) ([]byte, error) {
	path, err := k.t.cached(k.priv, "pss", func() (string, error) { return k.choosePSS(pub) })
	if err != nil {
		return nil, err
	}
	sig, err := k.pssVia(path, pub, digest)
	if err != nil {
		return nil, err
	}
	if rsa.VerifyPSS(pub, crypto.SHA256, digest, sig, &rsa.PSSOptions{SaltLength: 32}) != nil {
		return nil, k.mismatch("its signature does not verify under its public key")
	}
	return sig, nil
}

// choosePSS signs a random digest by each path the token offers and
// keeps the first whose signature verifies.
func (k *Key) choosePSS(pub *rsa.PublicKey) (string, error) {
	digest := make([]byte, sha256.Size)
	rand.Read(digest)
	var why []string
	for _, p := range []string{signPSS, signRaw} {
		mech := uint(pkcs11.CKM_RSA_PKCS_PSS)
		if p == signRaw {
			mech = pkcs11.CKM_RSA_X_509
		}
		if !k.t.supports(mech, pkcs11.CKF_SIGN) {
			continue
		}
		sig, err := k.pssVia(p, pub, digest)
		if err == nil && rsa.VerifyPSS(pub, crypto.SHA256, digest, sig, &rsa.PSSOptions{SaltLength: 32}) != nil {
			err = errors.New("the signature does not verify")
		}
		if err == nil {
			slog.Debug("rsa-pss path chosen", "key", k.Label, "path", p)
			return p, nil
		}
		if hasCode(err, environmentCodes...) {
			return "", err
		}
		why = append(why, fmt.Sprintf("%s: %v", p, err))
	}
	if len(why) == 0 {
		why = append(why, "the token offers neither CKM_RSA_PKCS_PSS nor CKM_RSA_X_509 signing")
	}
	return "", fmt.Errorf("%w: key %s cannot sign rsa-pss (%s)", ErrMechanism, k, strings.Join(why, "; "))
}

func (k *Key) pssVia(path string, pub *rsa.PublicKey, digest []byte) ([]byte, error) {
	if path == signPSS {
		return k.signRaw(pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_PSS,
			pkcs11.NewPSSParams(pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256, 32)), digest)
	}
	em, err := emsaPSSEncode(digest, pub.N.BitLen()-1, 32)
	if err != nil {
		return nil, err
	}
	in := make([]byte, pub.Size())
	copy(in[len(in)-len(em):], em)
	sig, err := k.signRaw(pkcs11.NewMechanism(pkcs11.CKM_RSA_X_509, nil), in)
	if err != nil || len(sig) > pub.Size() {
		return sig, err
	}
	out := make([]byte, pub.Size()) // some tokens drop leading zero bytes
	copy(out[len(out)-len(sig):], sig)
	return out, nil
}

// emsaPSSEncode is EMSA-PSS-ENCODE (RFC 8017 9.1.1) with SHA-256 and
// MGF1-SHA-256 for a message digest mHash.
func emsaPSSEncode(mHash []byte, emBits, sLen int) ([]byte, error) {
	h := sha256.New()
	hLen := h.Size()
	emLen := (emBits + 7) / 8
	if len(mHash) != hLen || emLen < hLen+sLen+2 {
		return nil, errors.New("rsa-pss: key too small for the digest and salt")
	}
	salt := make([]byte, sLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	h.Write(make([]byte, 8))
	h.Write(mHash)
	h.Write(salt)
	hh := h.Sum(nil)
	em := make([]byte, emLen)
	db := em[:emLen-hLen-1]
	db[emLen-sLen-hLen-2] = 0x01
	copy(db[emLen-sLen-hLen-1:], salt)
	mgf1XOR(db, sha256.New(), hh)
	db[0] &= 0xff >> (8*emLen - emBits)
	copy(em[emLen-hLen-1:], hh)
	em[emLen-1] = 0xbc
	return em, nil
}
