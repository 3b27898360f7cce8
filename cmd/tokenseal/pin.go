package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/tokenseal/tokenseal/token"
	"github.com/tokenseal/tokenseal/token/keyring"
	"github.com/urfave/cli/v2"
)

// userPIN finds the user PIN as every setting is found: the command
// line, then the environment, then the config file. Each level tries its
// PIN file, then (the environment) TOKENSEAL_PIN, then the pin-source of
// a pkcs11: URI given as the token at that level:
//
//	--pin-file, the pin-source of --token URI
//	TOKENSEAL_PIN_FILE, TOKENSEAL_PIN, the pin-source of TOKENSEAL_TOKEN
//	the config's pin-file, the pin-source of the config's token
//
// then the prompt. "" means: no PIN here, the token package reads the
// URI's pin-source (when it won), else prompts. Whatever the source, the
// token package refuses a PIN that cannot be right (a control character,
// a length the token does not take) before it is sent.
func userPIN(c *cli.Context) (string, error) {
	pinAt, uriAt := levelOf(c, "pin-file"), levelOf(c, "token")
	uriPIN := uriHas(c.String("token"), "pin-source")
	for lv := levelFlag; lv > levelDefault; lv-- {
		switch {
		case pinAt == lv:
			return token.ReadPINFile(c.String("pin-file"))
		case lv == levelEnv && os.Getenv("TOKENSEAL_PIN") != "":
			return os.Getenv("TOKENSEAL_PIN"), nil
		case uriAt == lv && uriPIN:
			return "", nil
		}
	}
	return "", nil
}

// uriHas reports whether s is a pkcs11: URI with the query attribute
// attr. A URI that does not parse has none (token.Open refuses it).
func uriHas(s, attr string) bool {
	if !keyring.IsSpec(s) || strings.HasPrefix(s, "token:") {
		return false
	}
	u, err := token.ParseURI(s)
	return err == nil && u.Query[attr] != ""
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
	// A URI's module-path wins over a module given at a lower level.
	module := c.String("module")
	if uriHas(c.String("token"), "module-path") && levelOf(c, "token") > levelOf(c, "module") {
		module = ""
	}
	cfg := token.Config{
		Module: module,
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
