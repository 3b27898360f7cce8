package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"

	"github.com/tokenseal/tokenseal/token"
	"github.com/urfave/cli/v2"
)

// userPIN returns the user PIN from --pin-file (exactly one trailing
// newline stripped), then TOKENSEAL_PIN. An empty result means: let the
// token package try a URI pin-source, then the prompt. Whatever the
// source, the token package refuses a PIN that cannot be right (a control
// character, a length the token does not take) before it is sent.
func userPIN(c *cli.Context) (string, error) {
	if f := c.String("pin-file"); f != "" {
		return token.ReadPINFile(f)
	}
	return os.Getenv("TOKENSEAL_PIN"), nil
}

// maxPINPrompts bounds the PIN prompts of one run, as sudo and
// gpg-agent bound theirs.
const maxPINPrompts = 3

// promptFunc returns a no-echo prompt on /dev/tty when tokenseal may ask
// (see canAsk), else nil (no prompt: a missing PIN is an error).
func promptFunc(c *cli.Context) func(string) (string, error) {
	if !canAsk(c) {
		return nil
	}
	return func(label string) (string, error) {
		pin, err := readSecret(fmt.Sprintf("PIN for token %q: ", label))
		switch {
		case err != nil:
			return "", fmt.Errorf("%w: %v", token.ErrNoPIN, err)
		case pin == "":
			return "", fmt.Errorf("%w: empty pin", token.ErrNoPIN)
		}
		return pin, nil
	}
}

// againFunc decides, after a PIN typed at the prompt was refused, whether
// to ask again: it says on the terminal why it was refused and, where the
// token tells, how many tries are left. Up to maxPINPrompts in all; once
// the token reports few tries left (CKF_USER_PIN_COUNT_LOW) or one
// (CKF_USER_PIN_FINAL_TRY), only when the user confirms.
func againFunc() func(token.Info, error) bool {
	prompts := 1
	return func(info token.Info, refused error) bool {
		tty, err := openTTY()
		if err != nil || prompts >= maxPINPrompts {
			return false
		}
		defer tty.Close()
		prompts++
		if errors.Is(refused, token.ErrPINInvalid) {
			fmt.Fprintf(tty, "tokenseal: %s; it was not sent to the token (no try spent)\n", oneLine(refused.Error()))
			return true
		}
		flags := token.FlagNames(info.Flags)
		switch {
		case slices.Contains(flags, "CKF_USER_PIN_FINAL_TRY"):
			fmt.Fprintln(tty, "tokenseal: wrong PIN; 1 try left: one more wrong PIN locks the token's PIN (CKF_USER_PIN_FINAL_TRY)")
		case slices.Contains(flags, "CKF_USER_PIN_COUNT_LOW"):
			fmt.Fprintln(tty, "tokenseal: wrong PIN; the token reports few tries left (CKF_USER_PIN_COUNT_LOW)")
		default:
			fmt.Fprintln(tty, "tokenseal: wrong PIN")
			return true
		}
		tty.Close()
		ok, _ := confirm("Try again?")
		return ok
	}
}

// tokenConfig is the token the global flags choose, and where its PIN
// comes from: --pin-file or TOKENSEAL_PIN (empty: the URI's pin-source,
// then the prompt).
func tokenConfig(c *cli.Context) (token.Config, error) {
	cfg := token.Config{
		Module: c.String("module"),
		Token:  c.String("token"),
		Serial: c.String("token-serial"),
		Prompt: promptFunc(c),
		Again:  againFunc(),
	}
	if s := c.String("token-slot"); s != "" {
		n, err := strconv.ParseUint(s, 10, 0)
		if err != nil {
			return token.Config{}, usageErrorf("--token-slot %q is not a slot number (see 'tokenseal token list')", s)
		}
		slot := uint(n)
		cfg.Slot = &slot
	}
	pin, err := userPIN(c)
	cfg.PIN = pin
	return cfg, err
}

// openToken opens the token chosen by the global flags and logs in.
func openToken(c *cli.Context) (*token.Token, error) {
	cfg, err := tokenConfig(c)
	if err != nil {
		return nil, err
	}
	return token.Open(cfg)
}
