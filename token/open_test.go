package token_test

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/miekg/pkcs11"
	"github.com/tokenseal/tokenseal/internal/p11test"
	"github.com/tokenseal/tokenseal/token"
)

func TestOpenErrors(t *testing.T) {
	p11test.Each(t, func(t *testing.T, pt *p11test.Token) {
		cfg := token.Config{Module: pt.Module, Token: pt.Label}
		wrong := cfg
		wrong.PIN = "wrong-1"
		_, err := token.Open(wrong)
		var te *token.Error
		if !errors.Is(err, token.ErrLoginFailed) || !errors.As(err, &te) || te.Code != pkcs11.CKR_PIN_INCORRECT {
			t.Errorf("wrong pin: got %v", err)
		} else if strings.Contains(err.Error(), "wrong-1") || !strings.Contains(err.Error(), "token pin flags:") {
			t.Errorf("wrong pin message: %q", err)
		}
		unknown := cfg
		unknown.Token, unknown.PIN = "no-such-token", pt.PIN
		if _, err := token.Open(unknown); !errors.Is(err, token.ErrTokenNotFound) || !strings.Contains(err.Error(), pt.Label) {
			t.Errorf("unknown label: got %v, want the tokens listed", err)
		}
		if _, err := token.Open(token.Config{Module: "/nonexistent/module.so", PIN: pt.PIN}); !errors.Is(err, token.ErrModuleNotFound) {
			t.Errorf("missing module: got %v", err)
		}
		if _, err := token.Open(cfg); !errors.Is(err, token.ErrNoPIN) {
			t.Errorf("no pin: got %v", err)
		}
		// The only initialized token: selected without a selector; the
		// right PIN still works after the wrong one.
		tok, err := token.Open(token.Config{Module: pt.Module, PIN: pt.PIN})
		if err != nil || tok.Info().Label != pt.Label {
			t.Fatalf("no selector: %v", err)
		}
		if _, err := token.Open(token.Config{Module: pt.Module, PIN: pt.PIN}); err == nil {
			t.Error("second Open of the same module succeeded")
		}
		if err := tok.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestPINNeverSent is issue 11 finding 5: a PIN that cannot be right is
// refused before C_Login, so it costs no try: a PIN file with two
// newlines (one is stripped, the other stays), a stray carriage return,
// another control character, a length outside the token's limits.
func TestPINNeverSent(t *testing.T) {
	p11test.Each(t, func(t *testing.T, pt *p11test.Token) {
		dir := t.TempDir()
		file := func(body string) string {
			p := filepath.Join(dir, fmt.Sprint(len(body), "pin"))
			os.WriteFile(p, []byte(body), 0o600)
			return p
		}
		for body, want := range map[string]string{pt.PIN + "\n": pt.PIN, pt.PIN + "\r\n": pt.PIN, pt.PIN: pt.PIN, pt.PIN + "\n\n": pt.PIN + "\n"} {
			if got, err := token.ReadPINFile(file(body)); err != nil || got != want {
				t.Errorf("ReadPINFile(%q) = %q, %v; want %q", body, got, err, want)
			}
		}
		twoNewlines, _ := token.ReadPINFile(file(pt.PIN + "\n\n"))
		bad := []string{twoNewlines, pt.PIN + "\r", "12\x0034", "\t" + pt.PIN}
		c := pt.Caps()
		if c.MinPIN > 1 {
			bad = append(bad, strings.Repeat("1", c.MinPIN-1))
		}
		bad = append(bad, strings.Repeat("1", c.MaxPIN+1))
		for _, pin := range bad {
			_, err := token.Open(token.Config{Module: pt.Module, Token: pt.Label, PIN: pin})
			if !errors.Is(err, token.ErrPINInvalid) || strings.Contains(err.Error(), pin) {
				t.Errorf("pin %q: got %v, want ErrPINInvalid without the pin", pin, err)
			}
		}
		// No try was spent: the token reports no failed login.
		_, toks, err := token.ListTokens(pt.Module)
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range toks {
			if i.Slot == pt.Slot && i.Flags&(pkcs11.CKF_USER_PIN_COUNT_LOW|pkcs11.CKF_USER_PIN_FINAL_TRY|pkcs11.CKF_USER_PIN_LOCKED) != 0 {
				t.Errorf("the token counted a failed login: %v", token.FlagNames(i.Flags))
			}
		}
		tok, err := token.Open(token.Config{Module: pt.Module, Token: pt.Label, PIN: pt.PIN})
		if err != nil {
			t.Fatal(err)
		}
		tok.Close()
	})
}

// TestSelectBeforeLogin is issue 10's wrong-token PIN: tokens that share
// a label (SoftHSM2) or a serial (every tpm2-pkcs11 token) are refused as
// ambiguous, listing their slots, before any PIN is asked for; the slot
// picks one. opencryptoki has one soft token: the slot picks it, or names
// no token.
func TestSelectBeforeLogin(t *testing.T) {
	p11test.Each(t, func(t *testing.T, pt *p11test.Token) {
		c := pt.Caps()
		toks := []*p11test.Token{pt}
		for i := 0; c.ManyTokens && i < 2; i++ {
			label := pt.Label
			if !c.SameLabels {
				label = fmt.Sprintf("%s-%d", pt.Label, i+2)
			}
			more, err := pt.AddToken(label)
			if err != nil {
				t.Fatal(err)
			}
			toks = append(toks, more)
		}
		var asked atomic.Int32
		prompt := func(string) (string, error) { asked.Add(1); return pt.PIN, nil }
		alike := token.Config{Module: pt.Module, Token: pt.Label, Prompt: prompt}
		if c.SameSerials {
			alike.Token, alike.Serial = "", pt.Serial
		}
		if len(toks) > 1 {
			_, err := token.Open(alike)
			if !errors.Is(err, token.ErrTokenAmbiguous) || !errors.Is(err, token.ErrTokenNotFound) {
				t.Fatalf("%d tokens alike: got %v, want ErrTokenAmbiguous", len(toks), err)
			}
			for _, tt := range toks {
				if !strings.Contains(err.Error(), fmt.Sprintf("slot %d ", tt.Slot)) {
					t.Errorf("the refusal does not list slot %d: %v", tt.Slot, err)
				}
			}
			if asked.Load() != 0 {
				t.Fatal("a PIN was asked for before the token was certain")
			}
		}
		for _, tt := range toks {
			cfg := alike
			cfg.Slot = &tt.Slot
			tok, err := token.Open(cfg)
			if err != nil {
				t.Fatalf("slot %d: %v", tt.Slot, err)
			}
			if tok.Info().Slot != tt.Slot || tok.Info().Label != tt.Label {
				t.Errorf("slot %d opened %v", tt.Slot, tok.Info())
			}
			tok.Close()
		}
		nowhere := uint(4242)
		cfg := alike
		cfg.Slot = &nowhere
		if _, err := token.Open(cfg); !errors.Is(err, token.ErrTokenNotFound) || errors.Is(err, token.ErrTokenAmbiguous) {
			t.Errorf("slot %d: got %v", nowhere, err)
		}
		if int(asked.Load()) != len(toks) {
			t.Errorf("asked for %d PINs, want one per token opened (%d)", asked.Load(), len(toks))
		}
	})
}

// TestSensitive checks the private key material cannot be read, through
// a raw session of our own, as an attacker with the PIN would try.
func TestSensitive(t *testing.T) {
	p11test.Each(t, func(t *testing.T, pt *p11test.Token) {
		tok := openToken(t, pt)
		generate(t, tok, "r", "rsa-2048", token.UsageExchange)
		if pt.Caps().EC {
			generate(t, tok, "e", "p256", token.UsageSign)
		}
		if err := tok.Close(); err != nil {
			t.Fatal(err)
		}
		ctx := pkcs11.New(pt.Module)
		if err := ctx.Initialize(); err != nil {
			t.Fatal(err)
		}
		defer ctx.Finalize()
		sh, err := ctx.OpenSession(pt.Slot, pkcs11.CKF_SERIAL_SESSION)
		if err != nil {
			t.Fatal(err)
		}
		defer ctx.CloseSession(sh)
		if err := ctx.Login(sh, pkcs11.CKU_USER, pt.PIN); err != nil {
			t.Fatal(err)
		}
		defer ctx.Logout(sh)
		ctx.FindObjectsInit(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY)})
		hs, _, err := ctx.FindObjects(sh, 10)
		ctx.FindObjectsFinal(sh)
		if err != nil || len(hs) == 0 {
			t.Fatalf("found %d private keys: %v", len(hs), err)
		}
		for _, h := range hs {
			for _, a := range []uint{pkcs11.CKA_VALUE, pkcs11.CKA_PRIVATE_EXPONENT, pkcs11.CKA_PRIME_1, pkcs11.CKA_PRIME_2} {
				got, err := ctx.GetAttributeValue(sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(a, nil)})
				var pe pkcs11.Error
				if err == nil && len(got) == 1 && len(got[0].Value) > 0 {
					t.Errorf("attribute 0x%x readable", a)
				} else if err != nil && (!errors.As(err, &pe) || (pe != pkcs11.CKR_ATTRIBUTE_SENSITIVE && pe != pkcs11.CKR_ATTRIBUTE_TYPE_INVALID)) {
					t.Errorf("attribute 0x%x: got %v, want CKR_ATTRIBUTE_SENSITIVE", a, err)
				}
			}
		}
	})
}

// TestConcurrent runs unwraps (and derives, where the token has ECDH)
// from several goroutines, so the session pool lends more than one
// session (run with -race).
func TestConcurrent(t *testing.T) {
	each(t, func(t *testing.T, tok *token.Token, pt *p11test.Token) {
		r := generate(t, tok, "r", "rsa-2048", token.UsageExchange)
		h, err := r.OAEPHash()
		if err != nil {
			t.Fatal(err)
		}
		pub := r.Public().(*rsa.PublicKey)
		var e *token.Key
		var tokPub *ecdh.PublicKey
		if pt.Caps().ECDH {
			e = generate(t, tok, "e", "p256", token.UsageExchange)
			tokPub, _ = e.Public().(*ecdsa.PublicKey).ECDH()
		}
		errs := make(chan error, 12)
		for i := 0; i < 12; i++ {
			go func(i int) {
				if i%2 == 0 || e == nil {
					secret := []byte{byte(i), 1, 2, 3}
					ct, _ := rsa.EncryptOAEP(h.New(), rand.Reader, pub, secret, nil)
					got, err := r.DecryptOAEP(h, ct)
					if err == nil && string(got) != string(secret) {
						err = errors.New("wrong plaintext")
					}
					errs <- err
					return
				}
				eph, _ := ecdh.P256().GenerateKey(rand.Reader)
				want, _ := eph.ECDH(tokPub)
				got, err := e.ECDH(eph.PublicKey().Bytes())
				if err == nil && string(got) != string(want) {
					err = errors.New("wrong shared secret")
				}
				errs <- err
			}(i)
		}
		for i := 0; i < 12; i++ {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	})
}
