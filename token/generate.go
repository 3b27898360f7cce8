package token

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"log/slog"

	"github.com/miekg/pkcs11"
)

// KeyTypes are the key types [Token.GenerateKey] makes.
var KeyTypes = []string{"rsa-2048", "rsa-3072", "rsa-4096", "p256", "p384"}

// keySpec is a key type: an RSA size or a named curve.
type keySpec struct {
	rsaBits int
	curve   asn1.ObjectIdentifier
}

func parseKeyType(typ string) (keySpec, error) {
	switch typ {
	case "rsa-2048":
		return keySpec{rsaBits: 2048}, nil
	case "rsa-3072":
		return keySpec{rsaBits: 3072}, nil
	case "rsa-4096":
		return keySpec{rsaBits: 4096}, nil
	case "p256":
		return keySpec{curve: oidP256}, nil
	case "p384":
		return keySpec{curve: oidP384}, nil
	}
	return keySpec{}, fmt.Errorf("generate key: unknown key type %q", typ)
}

// genMech is the key-pair generation mechanism of the spec.
func (s keySpec) genMech() (uint, string) {
	if s.rsaBits != 0 {
		return pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, "CKM_RSA_PKCS_KEY_PAIR_GEN"
	}
	return pkcs11.CKM_EC_KEY_PAIR_GEN, "CKM_EC_KEY_PAIR_GEN"
}

// CanGenerate says, from C_GetMechanismInfo alone, whether the token can
// make a key of type typ that can then do what usage says: the
// generation mechanism and its key sizes, and for the usage a mechanism
// tokenseal can use (RSA: OAEP or raw decrypt, PSS or raw signing; EC:
// ECDH derive, ECDSA). The refusal matches [ErrMechanism] and says what
// the token lacks, e.g. "this token makes RSA keys of 1024 to 3072 bits".
func (t *Token) CanGenerate(typ string, usage Usage) error {
	spec, err := parseKeyType(typ)
	if err != nil {
		return err
	}
	mech, name := spec.genMech()
	mi, err := t.MechanismInfo(mech)
	if err != nil || mi.Flags&pkcs11.CKF_GENERATE_KEY_PAIR == 0 {
		return fmt.Errorf("%w: this token does not generate %s key pairs (no %s)", ErrMechanism, kindName(spec), name)
	}
	if b := uint(spec.rsaBits); b != 0 && mi.MaxKeySize > 0 && (b < mi.MinKeySize || b > mi.MaxKeySize) {
		return fmt.Errorf("%w: this token makes RSA keys of %d to %d bits, not %d", ErrMechanism, mi.MinKeySize, mi.MaxKeySize, b)
	}
	return t.canUse(spec, usage)
}

// canUse says whether the token has a mechanism tokenseal can use for
// what a key of spec does with usage.
func (t *Token) canUse(spec keySpec, usage Usage) error {
	isRSA := spec.rsaBits != 0
	switch {
	case usage.CanExchange() && isRSA && !t.supports(pkcs11.CKM_RSA_PKCS_OAEP, pkcs11.CKF_DECRYPT) &&
		!t.supports(pkcs11.CKM_RSA_PKCS_OAEP, pkcs11.CKF_UNWRAP) && !t.supports(pkcs11.CKM_RSA_X_509, pkcs11.CKF_DECRYPT):
		return fmt.Errorf("%w: this token cannot undo RSA-OAEP (no CKM_RSA_PKCS_OAEP decrypt or unwrap, no CKM_RSA_X_509 decrypt)", ErrMechanism)
	case usage.CanExchange() && !isRSA && !t.supports(pkcs11.CKM_ECDH1_DERIVE, pkcs11.CKF_DERIVE):
		return fmt.Errorf("%w: this token has no ECDH (CKM_ECDH1_DERIVE), so an EC key on it cannot open envelopes; an RSA key can", ErrMechanism)
	case usage.CanSign() && isRSA && !t.supports(pkcs11.CKM_RSA_PKCS_PSS, pkcs11.CKF_SIGN):
		// Raw RSA signing (CKM_RSA_X_509) serves keys made elsewhere, but
		// tpm2-pkcs11 does it by decrypting, which a signing-only key
		// refuses: a new RSA signing key needs CKM_RSA_PKCS_PSS, which
		// tpm2-pkcs11 1.9.0 does not list (and fails on a digest).
		return fmt.Errorf("%w: this token has no CKM_RSA_PKCS_PSS to sign a digest, so an RSA signing key on it cannot sign envelopes; a P-256 key can", ErrMechanism)
	case usage.CanSign() && !isRSA && !t.supports(pkcs11.CKM_ECDSA, pkcs11.CKF_SIGN):
		return fmt.Errorf("%w: this token cannot make ECDSA signatures (no CKM_ECDSA)", ErrMechanism)
	}
	return nil
}

func kindName(s keySpec) string {
	if s.rsaBits != 0 {
		return "RSA"
	}
	return "EC"
}

// GenerateKey generates a key pair on the token.
//
// typ is one of [KeyTypes]; usage is [UsageExchange] or [UsageSign]. What
// the token cannot do is refused before generating ([Token.CanGenerate]),
// and a new key is put to its use once with data made on the host: a key
// the token made but cannot use is destroyed again and refused.
// The private key is CKA_TOKEN, CKA_PRIVATE and CKA_SENSITIVE, not
// CKA_EXTRACTABLE, and allows exactly what usage needs and the token has
// a mechanism for (RSA exchange: CKA_DECRYPT, and CKA_UNWRAP where the
// token unwraps with OAEP; EC exchange: CKA_DERIVE; sign: CKA_SIGN); the
// others are set false explicitly, since tokens differ in their
// defaults. The public template sets no usage attributes: a TPM derives
// them from the private key and refuses a template that disagrees.
//
// Both objects get CKA_LABEL label and CKA_ID = SHA-256 of the public
// key's DER SubjectPublicKeyInfo, set after generation since it depends
// on the key; the public-key object is then replaced by a copy with
// CKA_MODIFIABLE false where the token allows creating one. If any step
// fails the pair is destroyed. A label already on the token is
// [ErrKeyExists].
func (t *Token) GenerateKey(label, typ string, usage Usage) (*Key, error) {
	return t.generate(label, typ, usage, true)
}

func (t *Token) generate(label, typ string, usage Usage, onToken bool) (*Key, error) {
	if label == "" {
		return nil, errors.New("generate key: empty label")
	}
	if usage != UsageExchange && usage != UsageSign {
		return nil, fmt.Errorf("generate key: usage must be exchange or sign, not %s", usage)
	}
	if err := t.CanGenerate(typ, usage); err != nil {
		return nil, err
	}
	spec, _ := parseKeyType(typ)
	if used, err := t.LabelInUse(label); err != nil || used {
		if err == nil {
			err = fmt.Errorf("%w: %q", ErrKeyExists, label)
		}
		return nil, err
	}
	tmpID := make([]byte, 32)
	if _, err := rand.Read(tmpID); err != nil {
		return nil, err
	}
	pubT, privT := t.templates(spec, usage, label, tmpID, onToken)
	mech, name := spec.genMech()
	var id []byte
	// Session objects die with their session: they are made in the login
	// session, which lives as long as the Token.
	with := t.withSession
	if !onToken {
		with = t.withLoginSession
	}
	err := with(func(sh pkcs11.SessionHandle) error {
		pub, priv, err := t.ctx().GenerateKeyPair(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, pubT, privT)
		if err != nil {
			return fmt.Errorf("%w (%s)", p11err("C_GenerateKeyPair", err), name)
		}
		id, err = t.nameKeyPair(sh, pub, priv, pubT)
		if err != nil {
			if derr := errors.Join(t.destroy(sh, priv), t.destroy(sh, pub)); derr != nil {
				err = fmt.Errorf("%w (and destroying the new pair failed: %w)", err, derr)
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return t.adopt(id, label, usage)
}

// adopt finds the key pair just made with id and checks it is what was
// asked, and works; if not, it is destroyed again.
func (t *Token) adopt(id []byte, label string, usage Usage) (*Key, error) {
	k, err := t.FindKeyByID(id)
	if err != nil {
		return nil, err
	}
	if !k.Sensitive || k.Extractable || k.Usage&usage != usage {
		err = fmt.Errorf("%w: the token made key %q sensitive=%v extractable=%v usage %s, not what was asked", ErrMechanism, label, k.Sensitive, k.Extractable, k.Usage)
	} else {
		err = k.selfTest(usage)
	}
	if err != nil {
		return nil, errors.Join(err, t.DeleteKey(k))
	}
	return k, nil
}

// selfTest puts a new key to its use once, with data made on the host:
// an OAEP round trip or ECDH, or a signature verified on the host. Tokens
// do not always do what C_GetMechanismInfo says (tpm2-pkcs11 lists
// CKM_RSA_PKCS_PSS for signing but refuses to sign a digest with it).
func (k *Key) selfTest(usage Usage) error {
	switch pub := k.pub.(type) {
	case *rsa.PublicKey:
		if usage.CanSign() {
			_, err := k.signPSS(pub, randomDigest())
			return err
		}
		_, err := k.OAEPHash()
		return err
	case *ecdsa.PublicKey:
		if usage.CanSign() {
			_, err := k.signECDSA(pub, randomDigest())
			return err
		}
		return k.checkDerive(pub)
	}
	return nil
}

// templates returns the public and private templates of a new pair.
func (t *Token) templates(spec keySpec, usage Usage, label string, id []byte, onToken bool) (pubT, privT []*pkcs11.Attribute) {
	attr := pkcs11.NewAttribute
	common := func(private bool) []*pkcs11.Attribute {
		return []*pkcs11.Attribute{attr(pkcs11.CKA_TOKEN, onToken), attr(pkcs11.CKA_PRIVATE, private),
			attr(pkcs11.CKA_LABEL, label), attr(pkcs11.CKA_ID, id)}
	}
	pubT, privT = common(false), common(true)
	exch, isRSA := usage.CanExchange(), spec.rsaBits != 0
	if isRSA {
		pubT = append(pubT, attr(pkcs11.CKA_MODULUS_BITS, spec.rsaBits), attr(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}))
	} else {
		params, _ := asn1.Marshal(spec.curve)
		pubT = append(pubT, attr(pkcs11.CKA_EC_PARAMS, params))
	}
	privT = append(privT,
		attr(pkcs11.CKA_SENSITIVE, true),
		attr(pkcs11.CKA_EXTRACTABLE, false),
		attr(pkcs11.CKA_SIGN, usage.CanSign()),
		attr(pkcs11.CKA_DECRYPT, exch && isRSA),
		attr(pkcs11.CKA_UNWRAP, exch && isRSA && t.supports(pkcs11.CKM_RSA_PKCS_OAEP, pkcs11.CKF_UNWRAP)),
		attr(pkcs11.CKA_DERIVE, exch && !isRSA))
	return pubT, privT
}

// nameKeyPair sets CKA_ID = SHA-256(SPKI) on a new pair and makes its
// public-key object unmodifiable where the token allows: by setting
// CKA_MODIFIABLE false (tpm2-pkcs11), else by replacing it with a copy
// made so (SoftHSM2 and opencryptoki refuse the change but create the
// copy). It returns the new CKA_ID.
func (t *Token) nameKeyPair(sh pkcs11.SessionHandle, pub, priv pkcs11.ObjectHandle, pubT []*pkcs11.Attribute) ([]byte, error) {
	a, err := t.readAttrs(sh, pub, append(keyCommon, pkcs11.CKA_MODULUS, pkcs11.CKA_PUBLIC_EXPONENT, pkcs11.CKA_EC_PARAMS, pkcs11.CKA_EC_POINT)...)
	if err != nil {
		return nil, err
	}
	key, ok, err := publicOf(a)
	if !ok || err != nil {
		return nil, fmt.Errorf("generate key: the new public key cannot be read (%v)", err)
	}
	spki, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return nil, err
	}
	id := spkiID(spki)
	setID := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_ID, id)}
	for _, h := range []pkcs11.ObjectHandle{priv, pub} {
		if err := t.ctx().SetAttributeValue(sh, h, setID); err != nil {
			return nil, p11err("C_SetAttributeValue", err)
		}
	}
	err = t.ctx().SetAttributeValue(sh, pub, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_MODIFIABLE, false)})
	if err == nil {
		return id, nil
	}
	// A copy made unmodifiable, then the generated object destroyed.
	copyT := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_MODIFIABLE, false), pkcs11.NewAttribute(pkcs11.CKA_ID, id)}
	for _, x := range pubT {
		if x.Type == pkcs11.CKA_TOKEN || x.Type == pkcs11.CKA_PRIVATE || x.Type == pkcs11.CKA_LABEL {
			copyT = append(copyT, x)
		}
	}
	for _, typ := range append([]uint{pkcs11.CKA_KEY_TYPE}, keyPublic[mustULong(a, pkcs11.CKA_KEY_TYPE)]...) {
		copyT = append(copyT, pkcs11.NewAttribute(typ, a.bytes(typ)))
	}
	h, err := t.ctx().CreateObject(sh, copyT)
	if err != nil {
		slog.Debug("token keeps the public key modifiable", "err", p11err("C_CreateObject", err))
		return id, nil
	}
	if err := t.destroy(sh, pub); err != nil {
		return nil, errors.Join(err, t.destroy(sh, h))
	}
	return id, nil
}

func mustULong(a attrs, typ uint) uint {
	v, _ := a.ulong(typ)
	return v
}
