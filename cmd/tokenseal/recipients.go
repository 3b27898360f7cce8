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
	"github.com/tokenseal/tokenseal/token/keyring"
)

// recipientError is a recipient that cannot be used (exit 1).
type recipientError struct {
	spec string
	err  error
}

func (e *recipientError) Error() string { return fmt.Sprintf("recipient %s: %v", e.spec, e.err) }
func (e *recipientError) Unwrap() error { return e.err }

// readRecipientsFile reads a recipients file: one recipient a line, blank
// lines and lines starting with # ignored, and as in the config file a
// " # comment" after a recipient, which may be in double quotes to hold
// " #" itself; relative paths are relative to the file's directory.
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
		if line, err = configValue(line); err != nil {
			return nil, &recipientError{fmt.Sprintf("%s:%d", path, n), err}
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

// readPublicKey reads a sender's key file (trust add, --sender): a PEM
// or DER public key or certificate. A key file marked as a recipient's
// (# tokenseal recipient) is refused with envelope.ErrKeyRole, a
// command-line mistake (exit 2).
func readPublicKey(path string) (crypto.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return envelope.ParseSenderKey(data)
}

// parseRecipientFile reads a recipient's key file for seal or rewrap -r.
// A key file marked as a sender's (# tokenseal sender) is refused with
// envelope.ErrKeyRole, a command-line mistake (exit 2).
func parseRecipientFile(spec string) (envelope.Recipient, error) {
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
