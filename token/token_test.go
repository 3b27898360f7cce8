package token_test

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
	"testing"

	"github.com/miekg/pkcs11"
	"github.com/tokenseal/tokenseal/internal/softhsmtest"
	"github.com/tokenseal/tokenseal/token"
)

// open makes a fresh SoftHSM2 token and opens it.
func open(t *testing.T) (*token.Token, *softhsmtest.Token) {
	t.Helper()
	st := softhsmtest.New(t)
	tok, err := token.Open(token.Config{Module: st.Module, Token: st.Label, PIN: st.PIN})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := tok.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return tok, st
}

func generate(t *testing.T, tok *token.Token, label, typ, usage string) *token.Key {
	t.Helper()
	k, err := tok.GenerateKey(label, typ, usage)
	if err != nil {
		t.Fatalf("GenerateKey(%s, %s, %s): %v", label, typ, usage, err)
	}
	return k
}

func TestGenerateListDelete(t *testing.T) {
	tok, st := open(t)
	if got := tok.Info().Label; got != st.Label {
		t.Fatalf("token label %q, want %q", got, st.Label)
	}
	cases := []struct{ label, typ, usage string }{
		{"rsa2k-x", "rsa-2048", "exchange"},
		{"rsa3k-x", "rsa-3072", "exchange"},
		{"rsa2k-s", "rsa-2048", "sign"},
		{"p256-x", "p256", "exchange"},
		{"p256-s", "p256", "sign"},
		{"p384-x", "p384", "exchange"},
		{"p384-s", "p384", "sign"},
	}
	for _, c := range cases {
		k := generate(t, tok, c.label, c.typ, c.usage)
		if k.Label != c.label || k.Type != c.typ || k.Usage != c.usage {
			t.Errorf("%s: got label %q type %q usage %q", c.label, k.Label, k.Type, k.Usage)
		}
		if !k.Sensitive || !k.NeverExtractable || k.Extractable {
			t.Errorf("%s: sensitive=%v never-extractable=%v extractable=%v", c.label, k.Sensitive, k.NeverExtractable, k.Extractable)
		}
		der, err := x509.MarshalPKIXPublicKey(k.Public())
		if err != nil {
			t.Fatal(err)
		}
		if id := sha256.Sum256(der); !bytes.Equal(k.ID, id[:]) {
			t.Errorf("%s: CKA_ID %x is not SHA-256 of the SPKI %x", c.label, k.ID, id)
		}
		if !bytes.Equal(k.SPKI(), der) {
			t.Errorf("%s: SPKI differs", c.label)
		}
		switch c.typ {
		case "p256", "p384":
			if _, ok := k.Public().(*ecdsa.PublicKey); !ok {
				t.Errorf("%s: public key is %T", c.label, k.Public())
			}
		default:
			if _, ok := k.Public().(*rsa.PublicKey); !ok {
				t.Errorf("%s: public key is %T", c.label, k.Public())
			}
		}
	}
	if _, err := tok.GenerateKey("p256-x", "p256", "exchange"); !errors.Is(err, token.ErrKeyExists) {
		t.Errorf("duplicate label: got %v, want ErrKeyExists", err)
	}
	keys, err := tok.Keys()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != len(cases) {
		t.Fatalf("Keys: %d keys, want %d", len(keys), len(cases))
	}
	k, err := tok.FindKey("p384-s")
	if err != nil {
		t.Fatal(err)
	}
	k2, err := tok.FindKeyByID(k.ID)
	if err != nil || k2.Label != "p384-s" {
		t.Fatalf("FindKeyByID: %v %v", k2, err)
	}
	if err := tok.DeleteKey("p384-s"); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.FindKey("p384-s"); !errors.Is(err, token.ErrKeyNotFound) {
		t.Errorf("after delete: got %v, want ErrKeyNotFound", err)
	}
	if _, err := tok.FindKeyByID(k.ID); !errors.Is(err, token.ErrKeyNotFound) {
		t.Errorf("after delete by id: got %v, want ErrKeyNotFound", err)
	}
	if err := tok.DeleteKey("p384-s"); !errors.Is(err, token.ErrKeyNotFound) || !errors.Is(err, token.ErrToken) {
		t.Errorf("delete twice: got %v", err)
	}
	keys, _ = tok.Keys()
	if len(keys) != len(cases)-1 {
		t.Errorf("after delete: %d keys", len(keys))
	}
}

func TestRSA4096(t *testing.T) {
	tok, _ := open(t)
	k := generate(t, tok, "big", "rsa-4096", "exchange")
	if k.Bits != 4096 {
		t.Fatalf("bits %d", k.Bits)
	}
	secret := []byte("0123456789abcdef0123456789abcdef")
	ct, err := rsa.EncryptOAEP(crypto.SHA1.New(), rand.Reader, k.Public().(*rsa.PublicKey), secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := k.DecryptOAEP(crypto.SHA1, ct)
	if err != nil || !bytes.Equal(pt, secret) {
		t.Fatalf("DecryptOAEP: %x %v", pt, err)
	}
}

func TestRSAOAEP(t *testing.T) {
	tok, _ := open(t)
	k := generate(t, tok, "alice", "rsa-2048", "exchange")
	pub := k.Public().(*rsa.PublicKey)
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384} {
		secret := make([]byte, 32)
		rand.Read(secret)
		ct, err := rsa.EncryptOAEP(h.New(), rand.Reader, pub, secret, nil)
		if err != nil {
			t.Fatal(err)
		}
		pt, err := k.DecryptOAEP(h, ct)
		if err != nil {
			t.Fatalf("DecryptOAEP(%v): %v", h, err)
		}
		if !bytes.Equal(pt, secret) {
			t.Fatalf("DecryptOAEP(%v): wrong plaintext", h)
		}
		// Corrupted ciphertext: not addressed to us.
		bad := bytes.Clone(ct)
		bad[len(bad)/2] ^= 0x40
		if _, err := k.DecryptOAEP(h, bad); !errors.Is(err, token.ErrUnwrapFailed) || errors.Is(err, token.ErrToken) {
			t.Errorf("corrupted (%v): got %v, want ErrUnwrapFailed only", h, err)
		}
		// Addressed to another key.
		other, _ := rsa.GenerateKey(rand.Reader, 2048)
		ct2, _ := rsa.EncryptOAEP(h.New(), rand.Reader, &other.PublicKey, secret, nil)
		if _, err := k.DecryptOAEP(h, ct2); !errors.Is(err, token.ErrUnwrapFailed) {
			t.Errorf("other key (%v): got %v, want ErrUnwrapFailed", h, err)
		}
	}
	for _, ct := range [][]byte{nil, {}, make([]byte, 255), make([]byte, 257), make([]byte, 4096)} {
		if _, err := k.DecryptOAEP(crypto.SHA1, ct); !errors.Is(err, token.ErrUnwrapFailed) {
			t.Errorf("ciphertext of %d bytes: got %v", len(ct), err)
		}
	}
	h, path, err := k.ProbeOAEPHash()
	if err != nil {
		t.Fatal(err)
	}
	if h != crypto.SHA1 {
		t.Errorf("ProbeOAEPHash = %v via %s, SoftHSM2 should give SHA-1", h, path)
	}
	t.Logf("ProbeOAEPHash: %v via %s", h, path)

	// Wrong kinds of key.
	s := generate(t, tok, "signer", "rsa-2048", "sign")
	ct, _ := rsa.EncryptOAEP(crypto.SHA1.New(), rand.Reader, s.Public().(*rsa.PublicKey), []byte("x"), nil)
	if _, err := s.DecryptOAEP(crypto.SHA1, ct); !errors.Is(err, token.ErrWrongKeyType) {
		t.Errorf("sign key: got %v", err)
	}
	e := generate(t, tok, "ec", "p256", "exchange")
	if _, err := e.DecryptOAEP(crypto.SHA1, ct); !errors.Is(err, token.ErrWrongKeyType) {
		t.Errorf("ec key: got %v", err)
	}
}

func TestECDH(t *testing.T) {
	tok, _ := open(t)
	for _, c := range []struct {
		typ   string
		curve ecdh.Curve
		size  int
	}{{"p256", ecdh.P256(), 32}, {"p384", ecdh.P384(), 48}} {
		k := generate(t, tok, "ecdh-"+c.typ, c.typ, "exchange")
		tokPub, err := k.Public().(*ecdsa.PublicKey).ECDH()
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 5; i++ {
			eph, err := c.curve.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			want, err := eph.ECDH(tokPub)
			if err != nil {
				t.Fatal(err)
			}
			got, err := k.ECDH(eph.PublicKey().Bytes())
			if err != nil {
				t.Fatalf("%s ECDH: %v", c.typ, err)
			}
			if len(got) != c.size || !bytes.Equal(got, want) {
				t.Fatalf("%s ECDH: got %x, want %x", c.typ, got, want)
			}
		}
		eph, _ := c.curve.GenerateKey(rand.Reader)
		bad := eph.PublicKey().Bytes()
		for _, p := range [][]byte{nil, {4}, bad[:len(bad)-1], append([]byte{2}, bad[1:]...)} {
			if _, err := k.ECDH(p); !errors.Is(err, token.ErrUnwrapFailed) {
				t.Errorf("%s bad peer %x: got %v", c.typ, p, err)
			}
		}
		offCurve := bytes.Clone(bad)
		offCurve[len(offCurve)-1] ^= 1
		if _, err := k.ECDH(offCurve); !errors.Is(err, token.ErrUnwrapFailed) {
			t.Errorf("%s off-curve peer: got %v", c.typ, err)
		}
	}
	s := generate(t, tok, "sig", "p256", "sign")
	eph, _ := ecdh.P256().GenerateKey(rand.Reader)
	if _, err := s.ECDH(eph.PublicKey().Bytes()); !errors.Is(err, token.ErrWrongKeyType) {
		t.Errorf("sign key: got %v", err)
	}
}

func TestSigner(t *testing.T) {
	tok, _ := open(t)
	digest := sha256.Sum256([]byte("hello"))
	e := generate(t, tok, "ecsig", "p256", "sign")
	s, err := e.Signer()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(e.Public().(*ecdsa.PublicKey), digest[:], sig) {
		t.Error("ecdsa signature does not verify")
	}
	r := generate(t, tok, "rsasig", "rsa-2048", "sign")
	s, err = r.Signer()
	if err != nil {
		t.Fatal(err)
	}
	opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
	sig, err = s.Sign(rand.Reader, digest[:], opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPSS(r.Public().(*rsa.PublicKey), crypto.SHA256, digest[:], sig, opts); err != nil {
		t.Errorf("rsa-pss: %v", err)
	}
	b, err := tok.GenerateRandom(32)
	if err != nil || len(b) != 32 {
		t.Errorf("GenerateRandom: %d %v", len(b), err)
	}
}

// TestSensitive checks the private key material cannot be read.
func TestSensitive(t *testing.T) {
	st := softhsmtest.New(t)
	tok, err := token.Open(token.Config{Module: st.Module, Token: st.Label, PIN: st.PIN})
	if err != nil {
		t.Fatal(err)
	}
	generate(t, tok, "r", "rsa-2048", "exchange")
	generate(t, tok, "e", "p256", "exchange")
	if err := tok.Close(); err != nil {
		t.Fatal(err)
	}
	// A raw session of our own, outside the package, as an attacker would.
	ctx := pkcs11.New(st.Module)
	if ctx == nil {
		t.Fatal("cannot load module")
	}
	defer ctx.Destroy()
	if err := ctx.Initialize(); err != nil {
		t.Fatal(err)
	}
	defer ctx.Finalize()
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	var slot uint
	for _, s := range slots {
		ti, _ := ctx.GetTokenInfo(s)
		if ti.Label == st.Label {
			slot = s
		}
	}
	sh, err := ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.CloseSession(sh)
	if err := ctx.Login(sh, pkcs11.CKU_USER, st.PIN); err != nil {
		t.Fatal(err)
	}
	defer ctx.Logout(sh)
	if err := ctx.FindObjectsInit(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY)}); err != nil {
		t.Fatal(err)
	}
	hs, _, err := ctx.FindObjects(sh, 10)
	ctx.FindObjectsFinal(sh)
	if err != nil || len(hs) != 2 {
		t.Fatalf("found %d private keys: %v", len(hs), err)
	}
	for _, h := range hs {
		for _, a := range []uint{pkcs11.CKA_VALUE, pkcs11.CKA_PRIVATE_EXPONENT, pkcs11.CKA_PRIME_1, pkcs11.CKA_PRIME_2} {
			_, err := ctx.GetAttributeValue(sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(a, nil)})
			var pe pkcs11.Error
			if !errors.As(err, &pe) || (pe != pkcs11.CKR_ATTRIBUTE_SENSITIVE && pe != pkcs11.CKR_ATTRIBUTE_TYPE_INVALID) {
				t.Errorf("attribute 0x%x: got %v, want CKR_ATTRIBUTE_SENSITIVE", a, err)
			}
			if pe == pkcs11.CKR_ATTRIBUTE_SENSITIVE {
				continue
			}
		}
	}
}

func TestOpenErrors(t *testing.T) {
	st := softhsmtest.New(t)
	_, err := token.Open(token.Config{Module: st.Module, Token: st.Label, PIN: "wrong"})
	var te *token.Error
	if !errors.Is(err, token.ErrLoginFailed) || !errors.As(err, &te) || te.Code != pkcs11.CKR_PIN_INCORRECT {
		t.Errorf("wrong pin: got %v", err)
	} else if got := err.Error(); !bytes.Contains([]byte(got), []byte("CKR_PIN_INCORRECT")) || bytes.Contains([]byte(got), []byte("wrong")) {
		t.Errorf("wrong pin message: %q", got)
	}
	t.Logf("wrong pin: %v", err)
	_, err = token.Open(token.Config{Module: st.Module, Token: "no-such-token", PIN: st.PIN})
	if !errors.Is(err, token.ErrTokenNotFound) {
		t.Errorf("unknown label: got %v", err)
	}
	_, err = token.Open(token.Config{Module: "/nonexistent/module.so", Token: st.Label, PIN: st.PIN})
	if !errors.Is(err, token.ErrModuleNotFound) || !errors.Is(err, token.ErrToken) {
		t.Errorf("missing module: got %v", err)
	}
	_, err = token.Open(token.Config{Module: st.Module, Token: st.Label})
	if !errors.Is(err, token.ErrNoPIN) {
		t.Errorf("no pin: got %v", err)
	}
	// Only one token: selected without a label. The good PIN still works
	// after the failed login.
	tok, err := token.Open(token.Config{Module: st.Module, PIN: st.PIN})
	if err != nil {
		t.Fatalf("no selector: %v", err)
	}
	if tok.Info().Label != st.Label {
		t.Errorf("no selector: got %q", tok.Info().Label)
	}
	if _, err := token.Open(token.Config{Module: st.Module, PIN: st.PIN}); err == nil {
		t.Error("second Open of the same module succeeded")
	}
	if err := tok.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrent runs unwraps and derives from several goroutines, so the
// session pool lends more than one session (run with -race).
func TestConcurrent(t *testing.T) {
	tok, _ := open(t)
	r := generate(t, tok, "r", "rsa-2048", "exchange")
	e := generate(t, tok, "e", "p256", "exchange")
	pub := r.Public().(*rsa.PublicKey)
	tokPub, _ := e.Public().(*ecdsa.PublicKey).ECDH()
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		go func(i int) {
			if i%2 == 0 {
				secret := []byte{byte(i), 1, 2, 3}
				ct, _ := rsa.EncryptOAEP(crypto.SHA1.New(), rand.Reader, pub, secret, nil)
				pt, err := r.DecryptOAEP(crypto.SHA1, ct)
				if err == nil && !bytes.Equal(pt, secret) {
					err = errors.New("wrong plaintext")
				}
				errs <- err
				return
			}
			eph, _ := ecdh.P256().GenerateKey(rand.Reader)
			want, _ := eph.ECDH(tokPub)
			got, err := e.ECDH(eph.PublicKey().Bytes())
			if err == nil && !bytes.Equal(got, want) {
				err = errors.New("wrong shared secret")
			}
			errs <- err
		}(i)
	}
	for i := 0; i < 16; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
