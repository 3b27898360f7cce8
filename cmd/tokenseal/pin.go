package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/tokenseal/tokenseal/token"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"
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

// isTerminal reports whether r is a terminal.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// promptFunc returns a no-echo prompt on /dev/tty when stdin is a
// terminal, else nil (no prompt: a missing PIN is an error).
func promptFunc(c *cli.Context) func(string) (string, error) {
	if !isTerminal(c.App.Reader) {
		return nil
	}
	return func(label string) (string, error) {
		return readSecret(fmt.Sprintf("PIN for token %q: ", label))
	}
}

// readSecret prompts on /dev/tty and reads a line without echo.
func readSecret(prompt string) (string, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return "", fmt.Errorf("%w: no terminal to prompt on", token.ErrNoPIN)
	}
	defer tty.Close()
	fmt.Fprint(tty, prompt)
	b, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		return "", fmt.Errorf("%w: reading the pin from the terminal failed", token.ErrNoPIN)
	}
	s := string(b)
	clear(b)
	if s == "" {
		return "", fmt.Errorf("%w: empty pin", token.ErrNoPIN)
	}
	return s, nil
}

// confirm asks a yes/no question on /dev/tty.
func confirm(question string) (bool, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return false, usageErrorf("no terminal to confirm on: use --yes")
	}
	defer tty.Close()
	fmt.Fprintf(tty, "%s [y/N] ", question)
	var line string
	buf := make([]byte, 1)
	for {
		n, err := tty.Read(buf)
		if n == 0 || err != nil || buf[0] == '\n' {
			break
		}
		line += string(buf[0])
	}
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes", nil
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
