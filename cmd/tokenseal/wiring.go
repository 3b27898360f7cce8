package main

import (
	"bufio"
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/state"
	"github.com/tokenseal/tokenseal/token"
	"github.com/tokenseal/tokenseal/token/keyring"
	"github.com/urfave/cli/v2"
)

// newKeyring returns the token's keys as the envelope package sees them,
// opening the token (and asking for a PIN) only when a key on it is
// needed.
func newKeyring(c *cli.Context) *keyring.Keyring {
	return keyring.New(func() (*token.Token, error) { return openToken(c) })
}

// resolveRecipient turns one -r value into a recipient: a PEM or DER
// public key or certificate file, or "token:LABEL" or a pkcs11: URI
// naming a key on the token.
func resolveRecipient(kr *keyring.Keyring, spec string) (envelope.Recipient, error) {
	if keyring.IsSpec(spec) {
		return kr.Recipient(spec)
	}
	data, err := os.ReadFile(spec)
	if err != nil {
		return nil, &recipientError{spec, err}
	}
	r, err := envelope.ParseRecipient(data)
	if err != nil {
		return nil, &recipientError{spec, err}
	}
	return r, nil
}

// recipientError is a recipient that cannot be used (exit 1).
type recipientError struct {
	spec string
	err  error
}

func (e *recipientError) Error() string { return fmt.Sprintf("recipient %s: %v", e.spec, e.err) }
func (e *recipientError) Unwrap() error { return e.err }

// readRecipientsFile reads a recipients file: one recipient a line, blank
// lines and lines starting with # ignored; relative paths are relative to
// the file's directory.
func readRecipientsFile(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &recipientError{path, err}
	}
	var specs []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !keyring.IsSpec(line) && !filepath.IsAbs(line) {
			line = filepath.Join(filepath.Dir(path), line)
		}
		specs = append(specs, line)
	}
	if err := sc.Err(); err != nil {
		return nil, &recipientError{path, err}
	}
	if len(specs) == 0 {
		return nil, &recipientError{path, errors.New("no recipients in file")}
	}
	return specs, nil
}

// stateDir returns --state-dir, TOKENSEAL_STATE_DIR or the default.
func stateDir(c *cli.Context) (string, error) {
	if d := c.String("state-dir"); d != "" {
		return d, nil
	}
	return state.DefaultDir()
}

func openState(c *cli.Context) (*state.Store, error) {
	dir, err := stateDir(c)
	if err != nil {
		return nil, err
	}
	return state.Open(dir)
}

// readPublicKey reads a PEM or DER public key or certificate file.
func readPublicKey(path string) (crypto.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return envelope.ParsePublicKey(data)
}
