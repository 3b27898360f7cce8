package token

// Hostile inputs and a failing token, on a real SoftHSM2 token (issue 7):
// keys without the permission an operation needs, wrapped keys and
// ephemeral points that must be refused as data (ErrUnwrapFailed) before
// or by the token, and a token whose files go away under an open session,
// which must read as a token error (ErrToken), never as a bad envelope.

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/tokenseal/tokenseal/internal/softhsmtest"
)

func openFaultToken(t *testing.T) (*Token, *softhsmtest.Token) {
	t.Helper()
	st := softhsmtest.New(t)
	tok, err := Open(Config{Module: st.Module, Token: st.Label, PIN: st.PIN})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tok.Close() })
	return tok, st
}

// generateRaw makes a key pair with C_GenerateKeyPair and exactly the
// private-key permissions given (everything else false), then sets
// CKA_ID to tokenseal's key id, as a key made by another tool might be.
func generateRaw(t *testing.T, tok *Token, label string, rsaKey bool, perms map[uint]bool) *Key {
	t.Helper()
	tmpID := []byte("tmp-" + label)
	pub := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, tmpID),
	}
	priv := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, tmpID),
	}
	for _, a := range []uint{pkcs11.CKA_DECRYPT, pkcs11.CKA_UNWRAP, pkcs11.CKA_DERIVE, pkcs11.CKA_SIGN} {
		priv = append(priv, pkcs11.NewAttribute(a, perms[a]))
	}
	var mech []*pkcs11.Mechanism
	if rsaKey {
		mech = []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, nil)}
		pub = append(pub, pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, 2048),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}))
	} else {
		mech = []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_EC_KEY_PAIR_GEN, nil)}
		pub = append(pub, pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}))
	}
	err := tok.withSession(func(sh pkcs11.SessionHandle) error {
		_, _, err := tok.ctx().GenerateKeyPair(sh, mech, pub, priv)
		return err
	})
	if err != nil {
		t.Fatalf("C_GenerateKeyPair: %v", err)
	}
	k, err := tok.FindKey(label)
	if err != nil {
		t.Fatal(err)
	}
	id := spkiID(k.SPKI())
	err = tok.withSession(func(sh pkcs11.SessionHandle) error {
		hs, err := tok.findObjects(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_ID, tmpID)})
		if err != nil {
			return err
		}
		for _, h := range hs {
			if err := tok.ctx().SetAttributeValue(sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_ID, id)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if k, err = tok.FindKeyByID(id); err != nil {
		t.Fatal(err)
	}
	return k
}

// setPerm changes one permission of a key's private object on the token,
// behind the back of a Key already loaded.
func setPerm(t *testing.T, k *Key, attr uint, v bool) {
	t.Helper()
	err := k.t.withSession(func(sh pkcs11.SessionHandle) error {
		return k.t.ctx().SetAttributeValue(sh, k.priv, []*pkcs11.Attribute{pkcs11.NewAttribute(attr, v)})
	})
	if err != nil {
		t.Fatalf("C_SetAttributeValue: %v", err)
	}
}

// wantTokenError checks err is a token error (exit 3 in the CLI) and not
// a data refusal (exit 4).
func wantTokenError(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil || !errors.Is(err, ErrToken) || errors.Is(err, ErrUnwrapFailed) {
		t.Errorf("%s: got %v, want a token error that is not ErrUnwrapFailed", what, err)
	}
}

func wantUnwrapFailed(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil || !errors.Is(err, ErrUnwrapFailed) || errors.Is(err, ErrToken) {
		t.Errorf("%s: got %v, want ErrUnwrapFailed and not a token error", what, err)
	}
}

func TestFaultKeyPermissions(t *testing.T) {
	tok, _ := openFaultToken(t)
	secret := make([]byte, 32)
	rand.Read(secret)

	// Made without any exchange permission.
	rsaNone := generateRaw(t, tok, "rsa-none", true, nil)
	ecNone := generateRaw(t, tok, "ec-none", false, nil)
	if rsaNone.Usage != 0 || ecNone.Usage != 0 {
		t.Fatalf("usage %q, %q, want none", rsaNone.Usage, ecNone.Usage)
	}
	ct, _ := rsa.EncryptOAEP(sha1.New(), rand.Reader, rsaNone.Public().(*rsa.PublicKey), secret, nil)
	_, err := rsaNone.DecryptOAEP(crypto.SHA1, ct)
	if !errors.Is(err, ErrWrongKeyType) {
		t.Errorf("rsa without decrypt/unwrap: %v", err)
	}
	wantTokenError(t, "rsa without decrypt/unwrap", err)
	_, err = rsaNone.OAEPHash()
	wantTokenError(t, "probe rsa without decrypt/unwrap", err)
	eph, _ := ecdh.P256().GenerateKey(rand.Reader)
	_, err = ecNone.ECDH(eph.PublicKey().Bytes())
	if !errors.Is(err, ErrWrongKeyType) {
		t.Errorf("ec without derive: %v", err)
	}
	wantTokenError(t, "ec without derive", err)

	// A sign-only key from GenerateKey (an RSA one takes the path of
	// rsa-none above).
	ecSign, err := tok.GenerateKey("ec-sign", "p256", UsageSign)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ecSign.ECDH(eph.PublicKey().Bytes())
	wantTokenError(t, "ec sign key used for ecdh", err)

	// Only CKA_UNWRAP missing: C_Decrypt still undoes OAEP.
	rsaDec := generateRaw(t, tok, "rsa-decrypt-only", true, map[uint]bool{pkcs11.CKA_DECRYPT: true})
	ct, _ = rsa.EncryptOAEP(sha1.New(), rand.Reader, rsaDec.Public().(*rsa.PublicKey), secret, nil)
	if pt, err := rsaDec.DecryptOAEP(crypto.SHA1, ct); err != nil || string(pt) != string(secret) {
		t.Errorf("rsa with decrypt but not unwrap: %v", err)
	}

	// Permissions taken away after the key was looked up, before or
	// after its path was chosen: the token refuses, and that is a token
	// error, not a bad ciphertext.
	rsaX, err := tok.GenerateKey("rsa-x", "rsa-2048", UsageExchange)
	if err != nil {
		t.Fatal(err)
	}
	ecX, err := tok.GenerateKey("ec-x", "p256", UsageExchange)
	if err != nil {
		t.Fatal(err)
	}
	rsaY, err := tok.GenerateKey("rsa-y", "rsa-2048", UsageExchange)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rsaY.OAEPPath(crypto.SHA1); err != nil {
		t.Fatal(err)
	}
	setPerm(t, rsaY, pkcs11.CKA_UNWRAP, false)
	setPerm(t, rsaY, pkcs11.CKA_DECRYPT, false)
	ct, _ = rsa.EncryptOAEP(sha1.New(), rand.Reader, rsaY.Public().(*rsa.PublicKey), secret, nil)
	_, err = rsaY.DecryptOAEP(crypto.SHA1, ct)
	wantTokenError(t, "rsa whose unwrap and decrypt were revoked after its path was chosen", err)
	setPerm(t, rsaX, pkcs11.CKA_UNWRAP, false)
	setPerm(t, rsaX, pkcs11.CKA_DECRYPT, false)
	setPerm(t, ecX, pkcs11.CKA_DERIVE, false)
	ct, _ = rsa.EncryptOAEP(sha1.New(), rand.Reader, rsaX.Public().(*rsa.PublicKey), secret, nil)
	_, err = rsaX.DecryptOAEP(crypto.SHA1, ct)
	wantTokenError(t, "rsa whose unwrap and decrypt were revoked", err)
	t.Logf("rsa whose unwrap and decrypt were revoked: %v", err)
	_, err = ecX.ECDH(eph.PublicKey().Bytes())
	wantTokenError(t, "ec whose derive was revoked", err)
	t.Logf("ec whose derive was revoked: %v", err)
}

// TestFaultECDHPoints: malformed ephemeral points are refused by Key.ECDH
// itself, before the cgo call, for P-256 and P-384 (Wycheproof-style).
func TestFaultECDHPoints(t *testing.T) {
	tok, _ := openFaultToken(t)
	for _, typ := range []string{"p256", "p384"} {
		k, err := tok.GenerateKey("x-"+typ, typ, UsageExchange)
		if err != nil {
			t.Fatal(err)
		}
		pub := k.Public().(*ecdsa.PublicKey)
		c := pub.Curve
		size := (c.Params().BitSize + 7) / 8
		curve := ecdh.P256()
		other := elliptic.P384()
		if typ == "p384" {
			curve, other = ecdh.P384(), elliptic.P256()
		}
		eph, _ := curve.GenerateKey(rand.Reader)
		good := eph.PublicKey().Bytes()
		z, err := k.ECDH(good)
		want, _ := eph.ECDH(mustECDH(t, pub))
		if err != nil || string(z) != string(want) {
			t.Fatalf("%s: good point: %v", typ, err)
		}
		mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
		p := c.Params().P
		ox, oy, _ := randomPoint(other)
		cases := map[string][]byte{
			"empty":             {},
			"infinity":          {0},
			"infinity-padded":   make([]byte, len(good)),
			"compressed":        append([]byte{2 | good[len(good)-1]&1}, good[1:1+size]...),
			"hybrid":            mod(func(b []byte) []byte { b[0] = 6 | b[len(b)-1]&1; return b }),
			"not-on-curve":      mod(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }),
			"x-plus-p":          mod(func(b []byte) []byte { new(big.Int).Add(big.NewInt(1), p).FillBytes(b[1 : 1+size]); return b }),
			"coordinates-ff":    mod(func(b []byte) []byte { copyFF(b[1:]); return b }),
			"zero":              mod(func(b []byte) []byte { clear(b[1:]); return b }),
			"one-byte-short":    good[:len(good)-1],
			"one-byte-long":     append(append([]byte(nil), good...), 0),
			"other-curve-point": elliptic.Marshal(other, ox, oy),
		}
		for name, pt := range cases {
			_, err := k.ECDH(pt)
			wantUnwrapFailed(t, typ+" "+name, err)
		}
	}
}

func copyFF(b []byte) {
	for i := range b {
		b[i] = 0xff
	}
}

func mustECDH(t *testing.T, pub *ecdsa.PublicKey) *ecdh.PublicKey {
	t.Helper()
	k, err := pub.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func randomPoint(c elliptic.Curve) (*big.Int, *big.Int, error) {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	return k.X, k.Y, nil
}

// TestFaultOAEPCiphertexts: RSA-OAEP ciphertexts made with another
// label, another hash, another key, or of the wrong length are refused
// as data on the token (Wycheproof-style), with no cgo call for a wrong
// length.
func TestFaultOAEPCiphertexts(t *testing.T) {
	tok, _ := openFaultToken(t)
	k, err := tok.GenerateKey("x-rsa", "rsa-2048", UsageExchange)
	if err != nil {
		t.Fatal(err)
	}
	pub := k.Public().(*rsa.PublicKey)
	secret := make([]byte, 32)
	rand.Read(secret)
	enc := func(h crypto.Hash, label []byte, msg []byte) []byte {
		c, err := rsa.EncryptOAEP(h.New(), rand.Reader, pub, msg, label)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	otherCT, _ := rsa.EncryptOAEP(sha1.New(), rand.Reader, &other.PublicKey, secret, nil)
	pkcs1, _ := rsa.EncryptPKCS1v15(rand.Reader, pub, secret)
	good := enc(crypto.SHA1, nil, secret)
	if pt, err := k.DecryptOAEP(crypto.SHA1, good); err != nil || string(pt) != string(secret) {
		t.Fatalf("good ciphertext: %v", err)
	}
	cases := []struct {
		name string
		h    crypto.Hash
		ct   []byte
	}{
		{"label", crypto.SHA1, enc(crypto.SHA1, []byte("tokenseal"), secret)},
		{"sha256 ciphertext as sha1", crypto.SHA1, enc(crypto.SHA256, nil, secret)},
		{"sha1 ciphertext as sha256", crypto.SHA256, good},
		{"sha256 with label", crypto.SHA256, enc(crypto.SHA256, []byte("x"), secret)},
		{"another key", crypto.SHA1, otherCT},
		{"pkcs1 v1.5", crypto.SHA1, pkcs1},
		{"zero", crypto.SHA1, make([]byte, pub.Size())},
		{"modulus", crypto.SHA1, pub.N.FillBytes(make([]byte, pub.Size()))},
		{"all ff", crypto.SHA1, func() []byte { b := make([]byte, pub.Size()); copyFF(b); return b }()},
		{"empty", crypto.SHA1, nil},
		{"one byte", crypto.SHA1, []byte{1}},
		{"short", crypto.SHA1, good[1:]},
		{"long", crypto.SHA1, append([]byte{0}, good...)},
	}
	for _, c := range cases {
		pt, err := k.DecryptOAEP(c.h, c.ct)
		wantUnwrapFailed(t, c.name, err)
		if pt != nil {
			t.Errorf("%s: returned %d bytes", c.name, len(pt))
		}
	}
}

// TestFaultTokenGone removes, then corrupts, the token's files under an
// open, logged-in Token: what the next unwrap, derive and lookup return
// must be token errors, never ErrUnwrapFailed (which the CLI reports as a
// bad envelope).
func TestFaultTokenGone(t *testing.T) {
	for _, how := range []string{"removed", "corrupted"} {
		t.Run(how, func(t *testing.T) {
			tok, st := openFaultToken(t)
			rk, err := tok.GenerateKey("r", "rsa-2048", UsageExchange)
			if err != nil {
				t.Fatal(err)
			}
			ek, err := tok.GenerateKey("e", "p384", UsageExchange)
			if err != nil {
				t.Fatal(err)
			}
			secret := make([]byte, 32)
			ct, _ := rsa.EncryptOAEP(sha1.New(), rand.Reader, rk.Public().(*rsa.PublicKey), secret, nil)
			eph, _ := ecdh.P384().GenerateKey(rand.Reader)
			if _, err := rk.DecryptOAEP(crypto.SHA1, ct); err != nil {
				t.Fatal(err)
			}
			dirs, _ := filepath.Glob(filepath.Join(st.Dir, "tokens", "*"))
			if len(dirs) != 1 {
				t.Fatalf("token directories: %v", dirs)
			}
			switch how {
			case "removed":
				if err := os.RemoveAll(dirs[0]); err != nil {
					t.Fatal(err)
				}
			case "corrupted":
				files, _ := filepath.Glob(filepath.Join(dirs[0], "*"))
				for _, f := range files {
					if err := os.WriteFile(f, []byte("corrupted"), 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			_, err = rk.DecryptOAEP(crypto.SHA1, ct)
			wantTokenError(t, "rsa unwrap", err)
			t.Logf("rsa unwrap: %v", err)
			_, err = ek.ECDH(eph.PublicKey().Bytes())
			wantTokenError(t, "ecdh", err)
			t.Logf("ecdh: %v", err)
			_, err = tok.FindKey("r")
			if err == nil {
				t.Error("key still found")
			}
			t.Logf("find: %v", err)
		})
	}
}
