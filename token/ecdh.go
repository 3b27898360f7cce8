package token

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"log/slog"
	"strings"

	"github.com/miekg/pkcs11"
)

// ecdhCurve returns the crypto/ecdh curve of an EC key.
func ecdhCurve(pub *ecdsa.PublicKey) (ecdh.Curve, error) {
	switch pub.Curve {
	case elliptic.P256():
		return ecdh.P256(), nil
	case elliptic.P384():
		return ecdh.P384(), nil
	}
	return nil, fmt.Errorf("%w: unsupported curve", ErrWrongKeyType)
}

// ECDH computes the shared secret with peer, an uncompressed SEC1 point on
// the key's curve, on the token: C_DeriveKey with CKM_ECDH1_DERIVE and
// CKD_NULL into a session CKO_SECRET_KEY/CKK_GENERIC_SECRET object whose
// CKA_VALUE is read and the object destroyed. The result is the
// x-coordinate of the shared point, 32 bytes for P-256 and 48 for P-384.
//
// Whether the template holds CKA_VALUE_LEN = field size is chosen once
// per key (see [Key.deriveChosen]). Verified on SoftHSM2 2.6.1: the
// template with CKA_VALUE_LEN = field size is accepted and gives the
// x-coordinate; without it the full x-coordinate comes back too; a
// smaller CKA_VALUE_LEN silently gives a truncated value that is not a
// prefix (hence the length check below).
//
// A peer that is not a valid point, or a derive the token refuses, gives
// the fixed [ErrUnwrapFailed] (the CKR_ value is logged at Debug level);
// a token without ECDH is [ErrMechanism].
func (k *Key) ECDH(peer []byte) ([]byte, error) {
	pub, ok := k.pub.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: key %s is not an ec key", ErrWrongKeyType, k)
	}
	if !k.perm.derive {
		return nil, fmt.Errorf("%w: key %s does not allow derive", ErrWrongKeyType, k)
	}
	curve, err := ecdhCurve(pub)
	if err != nil {
		return nil, err
	}
	// Validate before any cgo call: length, prefix, and on the curve.
	if _, err := curve.NewPublicKey(peer); err != nil || peer[0] != 4 {
		return nil, ErrUnwrapFailed
	}
	if !k.t.supports(pkcs11.CKM_ECDH1_DERIVE, pkcs11.CKF_DERIVE) {
		return nil, fmt.Errorf("%w: this token has no ECDH (CKM_ECDH1_DERIVE)", ErrMechanism)
	}
	size := (pub.Curve.Params().BitSize + 7) / 8
	v, err := k.deriveChosen(curve, peer, size)
	if err != nil {
		return nil, err
	}
	defer clear(v)
	if len(v) > size {
		return nil, fmt.Errorf("C_DeriveKey: shared secret is %d bytes, expected %d", len(v), size)
	}
	out := make([]byte, size)
	copy(out[size-len(v):], v) // leading zero bytes dropped: left-pad
	slog.Debug("ecdh on token", "key", k.Label)
	return out, nil
}

// deriveChosen derives the secret with peer through the template chosen
// for the key. Until one is chosen, the first derive of a run uses the
// template with CKA_VALUE_LEN, which most tokens take; when the token
// takes it, that is the choice and no probe derive is made (a one-shot
// open makes one derive, not two). A refusal there is not taken as a
// verdict on the template: [Key.deriveTemplate] decides with a point
// made on the host, and when it chooses the same template the refusal
// is the data's, the fixed [ErrUnwrapFailed]. Which template serves is
// thus always the token's answer on a host-made point, never on peer;
// peer is derived at most twice (once per template, only on a token
// that refuses CKA_VALUE_LEN), never twice with the same one.
func (k *Key) deriveChosen(curve ecdh.Curve, peer []byte, size int) ([]byte, error) {
	var first error
	if !k.t.chosen(k.priv, ecdhTemplate) {
		v, err := k.derive(peer, size, true)
		if err == nil {
			k.t.cached(k.priv, ecdhTemplate, func() (string, error) { return "true", nil })
			slog.Debug("ecdh template chosen", "key", k.Label, "with_value_len", true, "probe", false)
			return v, nil
		}
		if hasCode(err, environmentCodes...) {
			return nil, p11err("C_DeriveKey", err)
		}
		first = err
	}
	withLen, err := k.deriveTemplate(curve, size)
	if err != nil {
		return nil, err
	}
	if withLen && first != nil {
		return nil, dataFailure("C_DeriveKey", k.Label, first)
	}
	v, err := k.derive(peer, size, withLen)
	if err != nil {
		return nil, dataFailure("C_DeriveKey", k.Label, err)
	}
	return v, nil
}

// ecdhTemplate is the choice whether the derive template holds
// CKA_VALUE_LEN: "true" or "false".
const ecdhTemplate = "ecdh-template"

// deriveTemplate chooses, once per key by a derive with a point made on
// the host, whether the token takes CKA_VALUE_LEN in the derived key's
// template. A token that refuses both is [ErrMechanism].
func (k *Key) deriveTemplate(curve ecdh.Curve, size int) (bool, error) {
	mode, err := k.t.cached(k.priv, ecdhTemplate, func() (string, error) {
		eph, err := curve.GenerateKey(rand.Reader)
		if err != nil {
			return "", err
		}
		var why []string
		for _, withLen := range []bool{true, false} {
			v, err := k.derive(eph.PublicKey().Bytes(), size, withLen)
			clear(v)
			switch {
			case err == nil:
				slog.Debug("ecdh template chosen", "key", k.Label, "with_value_len", withLen)
				return fmt.Sprint(withLen), nil
			case hasCode(err, environmentCodes...):
				return "", err
			}
			why = append(why, err.Error())
		}
		return "", fmt.Errorf("%w: key %s: the token refuses ecdh derive (%s)", ErrMechanism, k, strings.Join(why, "; "))
	})
	return mode == "true", err
}

// derive runs C_DeriveKey with CKD_NULL and reads the secret.
func (k *Key) derive(peer []byte, size int, withLen bool) ([]byte, error) {
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDH1_DERIVE,
		pkcs11.NewECDH1DeriveParams(pkcs11.CKD_NULL, nil, peer))}
	tmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
	}
	if withLen {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, size))
	}
	var out []byte
	err := k.t.withSession(func(sh pkcs11.SessionHandle) error {
		obj, err := k.t.ctx().DeriveKey(sh, mech, k.priv, tmpl)
		if err != nil {
			return p11err("C_DeriveKey", err)
		}
		defer k.t.destroySecret(sh, obj)
		out, err = k.t.readValue(sh, obj)
		return err
	})
	return out, err
}
