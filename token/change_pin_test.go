package token_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tokenseal/tokenseal/internal/p11test"
	"github.com/tokenseal/tokenseal/token"
)

func TestChangePIN(t *testing.T) {
	p11test.Each(t, func(t *testing.T, pt *p11test.Token) {
		cfg := token.Config{Module: pt.Module, Token: pt.Label, PIN: pt.PIN}
		fixed := func(p string) func() (string, error) { return func() (string, error) { return p, nil } }

		// A wrong old PIN is refused before the new one is asked for.
		asked := false
		bad := cfg
		bad.PIN = "wrong-pn"
		_, err := token.ChangePIN(bad, func() (string, error) { asked = true; return "x", nil })
		if !errors.Is(err, token.ErrLoginFailed) || !strings.Contains(err.Error(), "CKR_PIN_INCORRECT") || !strings.Contains(err.Error(), "token pin flags:") {
			t.Errorf("wrong old pin: %v", err)
		}
		if asked || strings.Contains(err.Error(), "wrong-pn") {
			t.Errorf("new pin asked for after a wrong old pin (%v), or the pin shown: %v", asked, err)
		}

		// New PINs the token would refuse, or the same PIN, are refused.
		refused := []string{pt.PIN, "12\n34", strings.Repeat("9", pt.Caps().MaxPIN+1)}
		if pt.Caps().MinPIN > 1 {
			refused = append(refused, "1")
		}
		for _, p := range refused {
			if _, err := token.ChangePIN(cfg, fixed(p)); !errors.Is(err, token.ErrPINInvalid) {
				t.Errorf("new pin %q: %v", p, err)
			}
		}

		// The change works: the new PIN logs in, the old one no longer does.
		info, err := token.ChangePIN(cfg, fixed("2468-new"))
		if err != nil {
			t.Fatal(err)
		}
		if info.Slot != pt.Slot || info.Label != pt.Label {
			t.Errorf("changed the pin of %v, want slot %d", info, pt.Slot)
		}
		if _, err := token.Open(cfg); !errors.Is(err, token.ErrLoginFailed) {
			t.Errorf("old pin still opens: %v", err)
		}
		cfg.PIN = "2468-new"
		tok, err := token.Open(cfg)
		if err != nil {
			t.Fatalf("new pin: %v", err)
		}
		tok.Close()

		cfg.PIN = ""
		if _, err := token.ChangePIN(cfg, fixed("x")); !errors.Is(err, token.ErrNoPIN) {
			t.Errorf("no pin: %v", err)
		}
	})
}

// TestInitToken initializes a token on the module's free slot; on
// opencryptoki, whose one soft token is in use, it says there is none.
func TestInitToken(t *testing.T) {
	p11test.Each(t, func(t *testing.T, pt *p11test.Token) {
		if _, err := token.InitToken(pt.Module, pt.Label, pt.SOPIN, pt.PIN); !errors.Is(err, token.ErrTokenExists) {
			t.Errorf("existing label: %v", err)
		}
		label := pt.Label + "-new"
		info, err := token.InitToken(pt.Module, label, pt.SOPIN, "4321-new")
		if !pt.Caps().ManyTokens {
			if !errors.Is(err, token.ErrTokenNotFound) || !strings.Contains(err.Error(), "no slot with an uninitialized token") {
				t.Errorf("no free slot: %v", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if info.Label != label || !info.Initialized || !info.UserPINInit {
			t.Errorf("new token: %+v", info)
		}
		tok, err := token.Open(token.Config{Module: pt.Module, Token: label, PIN: "4321-new"})
		if err != nil {
			t.Fatal(err)
		}
		tok.Close()
	})
}
