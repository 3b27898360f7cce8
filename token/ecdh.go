package token

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"fmt"
	"log/slog"

	"github.com/miekg/pkcs11"
)

// ECDH computes the shared secret with peer, an uncompressed SEC1 point on
// the key's curve, on the token: C_DeriveKey with CKM_ECDH1_DERIVE and
// CKD_NULL into a session CKO_SECRET_KEY/CKK_GENERIC_SECRET object whose
// CKA_VALUE is read and the object destroyed. The result is the
// x-coordinate of the shared point, 32 bytes for P-256 and 48 for P-384.
//
// The template first asks for CKA_VALUE_LEN = field size and, if the
// token refuses that template, retries without it; the choice is kept for
// the Token. Verified on SoftHSM2 2.6.1: the template with CKA_VALUE_LEN =
// field size is accepted and gives the x-coordinate; without it the full
// x-coordinate comes back too; a smaller CKA_VALUE_LEN silently gives a
// truncated value that is not a prefix (hence the length check below);
// both the bare uncompressed point and a DER OCTET STRING around it are
// accepted as public data (we send the bare point, as PKCS#11 3.0 says).
//
// A peer that is not a valid point, or that the token refuses, gives an
// error matching [ErrUnwrapFailed].
func (k *Key) ECDH(peer []byte) ([]byte, error) {
	pub, ok := k.pub.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: key %q is not an ec key", ErrWrongKeyType, k.Label)
	}
	if !k.canDer {
		return nil, fmt.Errorf("%w: key %q does not allow derive", ErrWrongKeyType, k.Label)
	}
	var curve ecdh.Curve
	switch k.Type {
	case "p256":
		curve = ecdh.P256()
	case "p384":
		curve = ecdh.P384()
	default:
		return nil, fmt.Errorf("%w: key %q: unsupported curve", ErrWrongKeyType, k.Label)
	}
	size := (pub.Curve.Params().BitSize + 7) / 8
	// Validate before any cgo call: length, prefix, and on the curve.
	if len(peer) != 1+2*size || peer[0] != 4 {
		return nil, unwrapFailed(fmt.Errorf("peer is not an uncompressed %s point", k.Curve))
	}
	if _, err := curve.NewPublicKey(peer); err != nil {
		return nil, unwrapFailed(fmt.Errorf("peer is not a valid %s point", k.Curve))
	}
	if !k.t.supports(pkcs11.CKM_ECDH1_DERIVE, pkcs11.CKF_DERIVE) {
		return nil, fmt.Errorf("%w: CKM_ECDH1_DERIVE", ErrMechanism)
	}
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDH1_DERIVE,
		pkcs11.NewECDH1DeriveParams(pkcs11.CKD_NULL, nil, peer))}
	base := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
	}
	withLen := append(base[:len(base):len(base)], pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, size))

	var out []byte
	err := k.t.withSession(func(sh pkcs11.SessionHandle) error {
		k.t.mechMu.Lock()
		mode := k.t.deriveVL
		k.t.mechMu.Unlock()
		tmpl := withLen
		if mode == 2 {
			tmpl = base
		}
		obj, err := k.t.ctx.DeriveKey(sh, mech, k.priv, tmpl)
		if err != nil && mode == 0 && hasCode(err, pkcs11.CKR_TEMPLATE_INCONSISTENT,
			pkcs11.CKR_TEMPLATE_INCOMPLETE, pkcs11.CKR_ATTRIBUTE_VALUE_INVALID,
			pkcs11.CKR_ATTRIBUTE_TYPE_INVALID, pkcs11.CKR_ATTRIBUTE_READ_ONLY) {
			slog.Debug("token refused CKA_VALUE_LEN in ecdh derive, retrying without", "err", p11err("C_DeriveKey", err))
			mode = 2
			obj, err = k.t.ctx.DeriveKey(sh, mech, k.priv, base)
		}
		if err != nil {
			switch {
			case hasCode(err, dataRefused...), hasCode(err, pkcs11.CKR_MECHANISM_PARAM_INVALID,
				pkcs11.CKR_ARGUMENTS_BAD, pkcs11.CKR_DOMAIN_PARAMS_INVALID):
				// The point was checked above, so a refusal is about the data.
				return unwrapFailed(p11err("C_DeriveKey", err))
			}
			return p11err("C_DeriveKey", err)
		}
		if mode == 0 {
			mode = 1
		}
		k.t.mechMu.Lock()
		k.t.deriveVL = mode
		k.t.mechMu.Unlock()
		defer k.t.destroySecret(sh, obj)
		v, err := readValue(k.t.ctx, sh, obj)
		if err != nil {
			return err
		}
		defer clear(v)
		switch {
		case len(v) == size:
			out = append([]byte(nil), v...)
		case len(v) < size: // leading zero bytes dropped: left-pad
			out = make([]byte, size)
			copy(out[size-len(v):], v)
		default:
			return fmt.Errorf("C_DeriveKey: shared secret is %d bytes, expected %d", len(v), size)
		}
		slog.Debug("ecdh on token", "key", k.Label, "with_value_len", mode == 1)
		return nil
	})
	return out, err
}
