package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/state"
	"github.com/tokenseal/tokenseal/token"
	"github.com/urfave/cli/v2"
)

// lazyToken opens the token on first use, so commands that turn out not
// to need it never ask for a PIN, and opens it once per process.
type lazyToken struct {
	c   *cli.Context
	tok *token.Token
	err error
}

func (l *lazyToken) get() (*token.Token, error) {
	if l.tok == nil && l.err == nil {
		l.tok, l.err = openToken(l.c)
	}
	return l.tok, l.err
}

func (l *lazyToken) Close() error {
	if l.tok != nil {
		return l.tok.Close()
	}
	return nil
}

// findTokenKey resolves a label or a pkcs11: URI to a key on the token.
func findTokenKey(tok *token.Token, spec string) (*token.Key, error) {
	if strings.HasPrefix(spec, "pkcs11:") {
		u, err := token.ParseURI(spec)
		if err != nil {
			return nil, err
		}
		return tok.FindKeyURI(u)
	}
	return tok.FindKey(spec)
}

// resolveRecipient turns one -r value into a recipient: a PEM or DER
// public key or certificate file, "token:LABEL", or a pkcs11: URI.
func resolveRecipient(lt *lazyToken, spec string) (envelope.Recipient, error) {
	if label, ok := strings.CutPrefix(spec, "token:"); ok || strings.HasPrefix(spec, "pkcs11:") {
		if !ok {
			label = spec
		}
		tok, err := lt.get()
		if err != nil {
			return nil, err
		}
		k, err := findTokenKey(tok, label)
		if err != nil {
			return nil, err
		}
		// A key that cannot unwrap or derive could never open what is
		// sealed to it (an EC signing key would otherwise pass).
		if k.Usage != token.UsageExchange && k.Usage != "exchange+sign" {
			return nil, fmt.Errorf("%w: key %q cannot be a recipient: its usage is %s", token.ErrWrongKeyType, k.Label, k.Usage)
		}
		hash := crypto.SHA256
		if _, isRSA := k.Public().(*rsa.PublicKey); isRSA {
			if hash, _, err = k.ProbeOAEPHash(); err != nil {
				return nil, err
			}
		}
		r, err := envelope.NewRecipient(k.Public(), hash)
		if err != nil {
			return nil, &recipientError{spec, err}
		}
		return r, nil
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
		if !strings.HasPrefix(line, "token:") && !strings.HasPrefix(line, "pkcs11:") && !filepath.IsAbs(line) {
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

// tokenIdentity is the envelope Identity of every exchange key on the
// token. It looks a stanza's key identifier up as CKA_ID first (tokenseal
// provisions keys that way) and falls back to comparing every key's public
// key, for keys made by other tools.
type tokenIdentity struct {
	lt *lazyToken

	mu      sync.Mutex
	byID    map[envelope.KeyID]envelope.Identity // nil entries: looked up, absent
	scanned bool
}

func newTokenIdentity(lt *lazyToken) *tokenIdentity {
	return &tokenIdentity{lt: lt, byID: map[envelope.KeyID]envelope.Identity{}}
}

func identityOf(k *token.Key) (envelope.Identity, error) {
	switch k.Public().(type) {
	case *rsa.PublicKey:
		return envelope.NewRSAIdentity(k)
	case *ecdsa.PublicKey:
		return envelope.NewECDHIdentity(k)
	}
	return nil, fmt.Errorf("%w: key %q", token.ErrWrongKeyType, k.Label)
}

func (ti *tokenIdentity) lookup(id envelope.KeyID) (envelope.Identity, error) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	if idn, ok := ti.byID[id]; ok {
		return idn, nil
	}
	tok, err := ti.lt.get()
	if err != nil {
		return nil, err
	}
	k, err := tok.FindKeyByID(id[:])
	if err == nil {
		kid, _ := envelope.KeyIDOf(k.Public())
		if kid == id && k.Usage == token.UsageSign {
			// Held, but it can only sign: say so (exit 3) rather than
			// "not addressed to any available key" (exit 4).
			return nil, fmt.Errorf("%w: the envelope is addressed to key %q, which can only sign", token.ErrWrongKeyType, k.Label)
		}
		if kid == id {
			idn, err := identityOf(k)
			if err != nil {
				return nil, err
			}
			slog.Debug("key found by CKA_ID", "label", k.Label, "key_id", id.String())
			ti.byID[id] = idn
			return idn, nil
		}
	} else if !errors.Is(err, token.ErrKeyNotFound) {
		return nil, err
	}
	if !ti.scanned {
		ti.scanned = true
		keys, err := tok.Keys()
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			kid, err := envelope.KeyIDOf(k.Public())
			if err != nil || k.Usage == token.UsageSign {
				continue
			}
			if _, ok := ti.byID[kid]; ok {
				continue
			}
			if idn, err := identityOf(k); err == nil {
				ti.byID[kid] = idn
			}
		}
	}
	idn, ok := ti.byID[id]
	if !ok {
		ti.byID[id] = nil
	}
	return idn, nil
}

// Unwrap implements envelope.Identity.
func (ti *tokenIdentity) Unwrap(stanzas []*envelope.Stanza) ([]byte, error) {
	for _, s := range stanzas {
		idn, err := ti.lookup(envelope.KeyID(s.KeyID))
		if err != nil {
			return nil, err
		}
		if idn == nil {
			continue
		}
		fk, err := idn.Unwrap(stanzas)
		if errors.Is(err, envelope.ErrIncorrectIdentity) {
			continue // same key id, other stanza type
		}
		return fk, err
	}
	return nil, envelope.ErrIncorrectIdentity
}

// stateDir returns --state-dir, TOKENSEAL_STATE_DIR or the default.
func stateDir(c *cli.Context) (string, error) {
	if d := c.String("state-dir"); d != "" {
		return d, nil
	}
	return state.DefaultDir()
}

func openState(c *cli.Context) (state.Store, error) { return openStore(c) }

// readPublicKey reads a PEM or DER public key or certificate file.
func readPublicKey(path string) (crypto.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return envelope.ParsePublicKey(data)
}

var _ = context.Background
