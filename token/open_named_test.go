package token_test

import (
	"errors"
	"os"
	"os/exec"
	"testing"

	"github.com/tokenseal/tokenseal/internal/softhsmtest"
	"github.com/tokenseal/tokenseal/token"
)

// Open names a token by label without the probe; a second token with the
// same label must still be refused, not silently picked, and a missing
// label falls back to the probe's error that lists the tokens.
func TestOpenNamedLabel(t *testing.T) {
	st := softhsmtest.New(t)
	tok, err := token.Open(token.Config{Module: st.Module, Token: st.Label, PIN: st.PIN})
	if err != nil {
		t.Fatal(err)
	}
	if tok.Info().Serial != st.Serial {
		t.Errorf("serial %q, want %q", tok.Info().Serial, st.Serial)
	}
	tok.Close()

	_, err = token.Open(token.Config{Module: st.Module, Token: "no-such-label", PIN: st.PIN})
	if !errors.Is(err, token.ErrTokenNotFound) {
		t.Fatalf("unknown label: %v", err)
	}

	// A second token with the same label in the same store.
	cmd := exec.Command("softhsm2-util", "--init-token", "--free", "--label", st.Label,
		"--so-pin", st.SOPIN, "--pin", st.PIN, "--module", st.Module)
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+st.Conf)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("second token: %v: %s", err, out)
	}
	_, err = token.Open(token.Config{Module: st.Module, Token: st.Label, PIN: st.PIN})
	if !errors.Is(err, token.ErrTokenNotFound) {
		t.Fatalf("duplicate label: err = %v, want a refusal", err)
	}
	// By serial it is unambiguous.
	tok, err = token.Open(token.Config{Module: st.Module, Serial: st.Serial, PIN: st.PIN})
	if err != nil {
		t.Fatalf("by serial: %v", err)
	}
	tok.Close()
}
