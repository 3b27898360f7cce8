package token_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tokenseal/tokenseal/internal/softhsmtest"
	"github.com/tokenseal/tokenseal/token"
)

func TestChangePIN(t *testing.T) {
	st := softhsmtest.New(t)
	cfg := token.Config{Module: st.Module, Token: st.Label, PIN: st.PIN}
	fixed := func(p string) func() (string, error) { return func() (string, error) { return p, nil } }

	// A wrong old PIN is refused before the new one is asked for.
	asked := false
	bad := cfg
	bad.PIN = "wrong-pin"
	_, err := token.ChangePIN(bad, func() (string, error) { asked = true; return "x", nil })
	if !errors.Is(err, token.ErrLoginFailed) || !strings.Contains(err.Error(), "CKR_PIN_INCORRECT") || !strings.Contains(err.Error(), "token pin flags:") {
		t.Errorf("wrong old pin: %v", err)
	}
	if asked {
		t.Error("new pin asked for after a wrong old pin")
	}
	if strings.Contains(err.Error(), "wrong-pin") {
		t.Error("error shows the pin")
	}

	// New PINs the token would refuse, or the same PIN, are refused.
	for _, p := range []string{st.PIN, "123"} {
		if _, err := token.ChangePIN(cfg, fixed(p)); !errors.Is(err, token.ErrPINInvalid) {
			t.Errorf("new pin %q: %v", p, err)
		}
	}

	// The change works: the new PIN logs in, the old one no longer does.
	info, err := token.ChangePIN(cfg, fixed("2468-new"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Serial != st.Serial {
		t.Errorf("changed the pin of %q, want %q", info.Serial, st.Serial)
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

	// No old PIN at all: ErrNoPIN.
	cfg.PIN = ""
	if _, err := token.ChangePIN(cfg, fixed("x")); !errors.Is(err, token.ErrNoPIN) {
		t.Errorf("no pin: %v", err)
	}
}
