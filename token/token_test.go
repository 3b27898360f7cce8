package token_test

// The token layer on every implementation p11test makes: SoftHSM2,
// tpm2-pkcs11 over swtpm, opencryptoki's soft token. Where one lacks
// something, the test asserts the refusal tokenseal gives.

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"strings"
	"testing"

	"github.com/tokenseal/tokenseal/internal/logtest"
	"github.com/tokenseal/tokenseal/internal/p11test"
	"github.com/tokenseal/tokenseal/token"
)

// openToken opens pt's token.
func openToken(t *testing.T, pt *p11test.Token) *token.Token {
	t.Helper()
	tok, err := token.Open(token.Config{Module: pt.Module, Token: pt.Label, PIN: pt.PIN})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := tok.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return tok
}

// each runs f on an open token of every kind.
func each(t *testing.T, f func(t *testing.T, tok *token.Token, pt *p11test.Token)) {
	p11test.Each(t, func(t *testing.T, pt *p11test.Token) { f(t, openToken(t, pt), pt) })
}

func generate(t *testing.T, tok *token.Token, label, typ string, usage token.Usage) *token.Key {
	t.Helper()
	k, err := tok.GenerateKey(label, typ, usage)
	if err != nil {
		t.Fatalf("GenerateKey(%s, %s, %s): %v", label, typ, usage, err)
	}
	return k
}

// keyCase is a key to generate, or to see refused, on a kind of token.
type keyCase struct {
	label, typ string
	usage      token.Usage
	refused    string // "": generated; else a part of the refusal
}

// keyCases are the keys each kind makes or refuses: RSA-2048 both ways
// everywhere, EC where the token has it, an EC exchange key only where
// it has ECDH, RSA-4096 only where the sizes allow (made once per token:
// the expensive case).
func keyCases(c p11test.Caps) []keyCase {
	cases := []keyCase{{"rsa2k-x", "rsa-2048", token.UsageExchange, ""}, {"rsa2k-s", "rsa-2048", token.UsageSign, ""}}
	if !c.PSS {
		cases[1].refused = "no CKM_RSA_PKCS_PSS"
	}
	switch {
	case !c.EC:
		cases = append(cases, keyCase{"p256-s", "p256", token.UsageSign, "does not generate EC key pairs"})
	case c.ECDH:
		cases = append(cases, keyCase{"p256-x", "p256", token.UsageExchange, ""}, keyCase{"p384-x", "p384", token.UsageExchange, ""}, keyCase{"p256-s", "p256", token.UsageSign, ""})
	default:
		cases = append(cases, keyCase{"p256-x", "p256", token.UsageExchange, "has no ECDH"}, keyCase{"p256-s", "p256", token.UsageSign, ""}, keyCase{"p384-s", "p384", token.UsageSign, ""})
	}
	if c.RSAMaxBits < 4096 {
		cases = append(cases, keyCase{"rsa4k", "rsa-4096", token.UsageExchange, "makes RSA keys of 1024 to 3072 bits"})
	}
	return cases
}

func TestGenerateListDelete(t *testing.T) {
	each(t, func(t *testing.T, tok *token.Token, pt *p11test.Token) {
		if got := tok.Info(); got.Label != pt.Label || got.Slot != pt.Slot {
			t.Fatalf("token %+v, want label %q slot %d", got, pt.Label, pt.Slot)
		}
		made := 0
		for _, c := range keyCases(pt.Caps()) {
			k, err := tok.GenerateKey(c.label, c.typ, c.usage)
			if c.refused != "" {
				if !errors.Is(err, token.ErrMechanism) || !strings.Contains(err.Error(), c.refused) {
					t.Errorf("%s: got %v, want a refusal saying %q", c.label, err, c.refused)
				}
				if used, _ := tok.LabelInUse(c.label); used {
					t.Errorf("%s: refused, but an object was left with its label", c.label)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s: %v", c.label, err)
			}
			made++
			checkNewKey(t, k, c)
		}
		if _, err := tok.GenerateKey("rsa2k-x", "rsa-2048", token.UsageExchange); !errors.Is(err, token.ErrKeyExists) {
			t.Errorf("duplicate label: got %v, want ErrKeyExists", err)
		}
		keys, err := tok.Keys()
		if err != nil || len(keys) != made {
			t.Fatalf("Keys: %d keys, %v; want %d", len(keys), err, made)
		}
		k, err := tok.FindKey("rsa2k-x")
		if err != nil {
			t.Fatal(err)
		}
		spki := sha256.Sum256(k.SPKI())
		for _, id := range [][]byte{k.ID, spki[:]} {
			if k2, err := tok.FindKeyByID(id); err != nil || k2.Label != "rsa2k-x" {
				t.Fatalf("FindKeyByID(%x): %v %v", id, k2, err)
			}
		}
		if err := tok.DeleteKey(k); err != nil {
			t.Fatal(err)
		}
		if _, err := tok.FindKey("rsa2k-x"); !errors.Is(err, token.ErrKeyNotFound) || !errors.Is(err, token.ErrToken) {
			t.Errorf("after delete: got %v, want ErrKeyNotFound", err)
		}
		if used, _ := tok.LabelInUse("rsa2k-x"); used {
			t.Error("after delete: objects labelled rsa2k-x remain")
		}
	})
}

// checkNewKey checks what GenerateKey promises about a key it made.
func checkNewKey(t *testing.T, k *token.Key, c keyCase) {
	t.Helper()
	if k.Label != c.label || k.Type != c.typ || k.Usage != c.usage {
		t.Errorf("%s: got label %q type %q usage %s", c.label, k.Label, k.Type, k.Usage)
	}
	if !k.Sensitive || !k.NeverExtractable || k.Extractable {
		t.Errorf("%s: sensitive=%v never-extractable=%v extractable=%v", c.label, k.Sensitive, k.NeverExtractable, k.Extractable)
	}
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	if id := sha256.Sum256(der); !bytes.Equal(k.ID, id[:]) || !k.Generated() {
		t.Errorf("%s: CKA_ID %x is not SHA-256 of the SPKI %x", c.label, k.ID, id)
	}
	if !bytes.Equal(k.SPKI(), der) {
		t.Errorf("%s: SPKI differs", c.label)
	}
	if err := k.Check(); err != nil {
		t.Errorf("%s: Check: %v", c.label, err)
	}
}

// wantPaths are the OAEP paths each kind's probe must choose, and the
// hash key export records.
var wantPaths = map[p11test.Kind]struct {
	sha1, sha256 string
	export       crypto.Hash
}{
	p11test.SoftHSM2:     {token.PathUnwrap, token.PathRaw, crypto.SHA1},
	p11test.TPM2:         {token.PathDecrypt, token.PathDecrypt, crypto.SHA256},
	p11test.OpenCryptoki: {token.PathDecrypt, token.PathDecrypt, crypto.SHA256},
}

func TestRSAOAEP(t *testing.T) {
	each(t, func(t *testing.T, tok *token.Token, pt *p11test.Token) {
		k := generate(t, tok, "alice", "rsa-2048", token.UsageExchange)
		pub := k.Public().(*rsa.PublicKey)
		want := wantPaths[pt.Kind]
		for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
			path, err := k.OAEPPath(h)
			if wantPath := map[crypto.Hash]string{crypto.SHA1: want.sha1, crypto.SHA256: want.sha256}[h]; err != nil || path != wantPath {
				t.Errorf("OAEPPath(%v) = %s, %v; want %s", h, path, err, wantPath)
			}
			secret := make([]byte, 32)
			rand.Read(secret)
			ct, _ := rsa.EncryptOAEP(h.New(), rand.Reader, pub, secret, nil)
			pt, err := k.DecryptOAEP(h, ct)
			if err != nil || !bytes.Equal(pt, secret) {
				t.Fatalf("DecryptOAEP(%v): %x, %v", h, pt, err)
			}
		}
		if h, err := k.OAEPHash(); err != nil || h != want.export {
			t.Errorf("OAEPHash = %v, %v; want %v", h, err, want.export)
		}
		typ := "rsa-2048"
		if !pt.Caps().PSS {
			typ = "p256"
		}
		s := generate(t, tok, "signer", typ, token.UsageSign)
		ct, _ := rsa.EncryptOAEP(crypto.SHA1.New(), rand.Reader, pub, []byte("x"), nil)
		if _, err := s.DecryptOAEP(crypto.SHA1, ct); !errors.Is(err, token.ErrWrongKeyType) {
			t.Errorf("%s sign key: got %v", typ, err)
		}
	})
}

// TestOAEPOneFixedFailure is issue 11 finding 2: every bad ciphertext
// fails the same way, by the one path probed beforehand, with one fixed
// message (no CKR_ value, no path name): no ladder of paths decided by
// the token's error code on data from outside.
func TestOAEPOneFixedFailure(t *testing.T) {
	each(t, func(t *testing.T, tok *token.Token, pt *p11test.Token) {
		k := generate(t, tok, "alice", "rsa-2048", token.UsageExchange)
		pub := k.Public().(*rsa.PublicKey)
		other, _ := rsa.GenerateKey(rand.Reader, 2048)
		for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
			if _, err := k.OAEPPath(h); err != nil { // the probe, before any outside data
				t.Fatal(err)
			}
			good, _ := rsa.EncryptOAEP(h.New(), rand.Reader, pub, make([]byte, 32), nil)
			flipped := bytes.Clone(good)
			flipped[len(flipped)/2] ^= 0x40
			labelled, _ := rsa.EncryptOAEP(h.New(), rand.Reader, pub, make([]byte, 32), []byte("label"))
			otherKey, _ := rsa.EncryptOAEP(h.New(), rand.Reader, &other.PublicKey, make([]byte, 32), nil)
			zeroM := rsaRaw(pub, []byte{0})
			big := pub.N.FillBytes(make([]byte, pub.Size()))
			logs := logtest.Debug(t)
			for name, ct := range map[string][]byte{"flipped": flipped, "label": labelled, "other key": otherKey,
				"m=0": zeroM, "c=n": big, "short": good[1:], "long": append(good, 0), "empty": nil} {
				logs.Reset()
				out, err := k.DecryptOAEP(h, ct)
				if out != nil || err == nil || err.Error() != token.ErrUnwrapFailed.Error() || !errors.Is(err, token.ErrUnwrapFailed) || errors.Is(err, token.ErrToken) {
					t.Errorf("%v %s: got %q, %v; want exactly %q", h, name, out, err, token.ErrUnwrapFailed)
				}
				if n := strings.Count(logs.String(), "outside data failed"); len(ct) == pub.Size() && n != 1 {
					t.Errorf("%v %s: %d operations failed on the data, want exactly one:\n%s", h, name, n, logs)
				}
			}
		}
	})
}

func TestECDH(t *testing.T) {
	each(t, func(t *testing.T, tok *token.Token, pt *p11test.Token) {
		if !pt.Caps().ECDH {
			// The refusal is in TestGenerateListDelete; a key made by
			// another tool that allows derive is refused on use.
			return
		}
		for _, c := range []struct {
			typ   string
			curve ecdh.Curve
			size  int
		}{{"p256", ecdh.P256(), 32}, {"p384", ecdh.P384(), 48}} {
			k := generate(t, tok, "ecdh-"+c.typ, c.typ, token.UsageExchange)
			tokPub, _ := k.Public().(*ecdsa.PublicKey).ECDH()
			for i := 0; i < 3; i++ {
				eph, _ := c.curve.GenerateKey(rand.Reader)
				want, _ := eph.ECDH(tokPub)
				got, err := k.ECDH(eph.PublicKey().Bytes())
				if err != nil || len(got) != c.size || !bytes.Equal(got, want) {
					t.Fatalf("%s ECDH: got %x, %v; want %x", c.typ, got, err, want)
				}
			}
			eph, _ := c.curve.GenerateKey(rand.Reader)
			bad := eph.PublicKey().Bytes()
			offCurve := bytes.Clone(bad)
			offCurve[len(offCurve)-1] ^= 1
			for _, p := range [][]byte{nil, {4}, bad[:len(bad)-1], append([]byte{2}, bad[1:]...), offCurve} {
				if _, err := k.ECDH(p); err == nil || err.Error() != token.ErrUnwrapFailed.Error() {
					t.Errorf("%s bad peer %x: got %v", c.typ, p, err)
				}
			}
		}
		s := generate(t, tok, "sig", "p256", token.UsageSign)
		eph, _ := ecdh.P256().GenerateKey(rand.Reader)
		if _, err := s.ECDH(eph.PublicKey().Bytes()); !errors.Is(err, token.ErrWrongKeyType) {
			t.Errorf("sign key: got %v", err)
		}
	})
}

func TestSigner(t *testing.T) {
	each(t, func(t *testing.T, tok *token.Token, pt *p11test.Token) {
		digest := sha256.Sum256([]byte("hello"))
		if pt.Caps().EC {
			e := generate(t, tok, "ecsig", "p256", token.UsageSign)
			s, err := e.Signer()
			if err != nil {
				t.Fatal(err)
			}
			sig, err := s.Sign(rand.Reader, digest[:], crypto.SHA256)
			if err != nil || !ecdsa.VerifyASN1(e.Public().(*ecdsa.PublicKey), digest[:], sig) {
				t.Errorf("ecdsa signature: %v", err)
			}
		}
		if !pt.Caps().PSS {
			return // the refusal is in TestGenerateListDelete; keys made elsewhere in TestForeignKeys
		}
		r := generate(t, tok, "rsasig", "rsa-2048", token.UsageSign)
		s, err := r.Signer()
		if err != nil {
			t.Fatal(err)
		}
		for _, salt := range []int{32, rsa.PSSSaltLengthEqualsHash} {
			opts := &rsa.PSSOptions{SaltLength: salt, Hash: crypto.SHA256}
			sig, err := s.Sign(rand.Reader, digest[:], opts)
			if err != nil {
				t.Fatalf("rsa-pss (no CKM_RSA_PKCS_PSS: %v): %v", !pt.Caps().PSS, err)
			}
			if err := rsa.VerifyPSS(r.Public().(*rsa.PublicKey), crypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: 32}); err != nil {
				t.Errorf("rsa-pss: %v", err)
			}
		}
		if _, err := s.Sign(rand.Reader, digest[:], crypto.SHA256); err == nil {
			t.Error("rsa pkcs#1 v1.5 signature made; only PSS is offered")
		}
		x := generate(t, tok, "rsax", "rsa-2048", token.UsageExchange)
		if _, err := x.Signer(); !errors.Is(err, token.ErrWrongKeyType) {
			t.Errorf("exchange key as signer: %v", err)
		}
		if b, err := tok.GenerateRandom(32); err != nil || len(b) != 32 {
			t.Errorf("GenerateRandom: %d %v", len(b), err)
		}
	})
}
