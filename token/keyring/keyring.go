// Package keyring is a PKCS#11 token as the envelope package sees it: an
// [envelope.Identity] made of every key on the token that can unwrap or
// derive, and the resolver of recipients and signers that name a key on
// the token ("token:LABEL" or a pkcs11: URI). It implements envelope's
// interfaces outside the envelope package, as age's agessh implements
// age.Identity outside age.
//
// The token is opened lazily, on the first use that needs it, so a
// command that turns out not to need the token never asks for a PIN; it
// is read once, and stanzas are matched against its keys in memory by
// key id (SHA-256 of the SPKI), whatever the keys' CKA_ID.
//
// Errors: a stanza the token refuses for its data is [envelope.ErrUnwrap]
// (an envelope rejection, one fixed message); token failures stay
// [token.ErrToken] errors.
package keyring

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/token"
)

// Keyring is the keys of one token. Its methods are safe for concurrent
// use; Close closes the token if it was opened.
type Keyring struct {
	open func() (*token.Token, error)

	mu     sync.Mutex
	tok    *token.Token
	err    error
	byID   map[envelope.KeyID]*token.Key // every key pair, by key id; nil until read
	list   []*token.Key                  // the same, in the token's order
	cmsIDs []cmsIdentity                 // for CMS, made from list once (cms.go)
	idens  map[envelope.KeyID]envelope.Identity
}

// New returns a Keyring that calls open the first time it needs the
// token.
func New(open func() (*token.Token, error)) *Keyring {
	return &Keyring{open: open}
}

// Token opens the token if it is not open yet, and returns it.
func (r *Keyring) Token() (*token.Token, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.token()
}

func (r *Keyring) token() (*token.Token, error) {
	if r.tok == nil && r.err == nil {
		r.tok, r.err = r.open()
	}
	return r.tok, r.err
}

// Close closes the token if it was opened.
func (r *Keyring) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tok == nil {
		return nil
	}
	err := r.tok.Close()
	r.tok, r.err = nil, token.ErrClosed
	return err
}

// keys reads the token's key pairs once and indexes them by key id.
func (r *Keyring) keys() (map[envelope.KeyID]*token.Key, error) {
	if r.byID != nil {
		return r.byID, nil
	}
	tok, err := r.token()
	if err != nil {
		return nil, err
	}
	keys, err := tok.Keys()
	if err != nil {
		return nil, err
	}
	r.byID = map[envelope.KeyID]*token.Key{}
	for _, k := range keys {
		id, err := envelope.KeyIDOf(k.Public())
		if err != nil {
			continue
		}
		if _, dup := r.byID[id]; !dup {
			r.byID[id] = k
			r.list = append(r.list, k)
		}
	}
	slog.Debug("token keys read", "keys", len(r.byID))
	return r.byID, nil
}

// Unwrap implements [envelope.Identity]. It looks each stanza's key id up
// among the token's keys, in memory, and gives the stanza to the first
// key that can unwrap (RSA) or derive (EC) on this token: a stanza for a
// key the token holds that cannot (a signing key) does not stop the
// search. A stanza no key here can open is [envelope.ErrIncorrectIdentity].
func (r *Keyring) Unwrap(stanzas []*envelope.Stanza) ([]byte, error) {
	for _, s := range stanzas {
		idn, err := r.identity(envelope.KeyID(s.KeyID))
		if err != nil {
			return nil, err
		}
		if idn == nil {
			continue
		}
		fk, err := idn.Unwrap([]*envelope.Stanza{s})
		if errors.Is(err, envelope.ErrIncorrectIdentity) {
			continue // same key id, another stanza type
		}
		return fk, err
	}
	return nil, envelope.ErrIncorrectIdentity
}

// identity returns the Identity of the key with id, nil when the token
// holds no such key or holds it but cannot open with it.
func (r *Keyring) identity(id envelope.KeyID) (envelope.Identity, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if idn, ok := r.idens[id]; ok {
		return idn, nil
	}
	keys, err := r.keys()
	if err != nil {
		return nil, err
	}
	k := keys[id]
	var idn envelope.Identity
	switch {
	case k == nil:
	case !k.Usage.CanExchange():
		slog.Debug("stanza for a key that cannot unwrap or derive: skipped", "key", k.Label, "usage", k.Usage.String())
	default:
		if err := k.CanOpen(); err != nil {
			if !errors.Is(err, token.ErrMechanism) {
				return nil, err
			}
			slog.Debug("stanza for a key this token cannot open with: skipped", "key", k.Label, "err", err)
			break
		}
		if idn, err = identityOf(k); err != nil {
			return nil, err
		}
		slog.Debug("stanza matched", "key", k.Label, "key_id", id.String())
	}
	if r.idens == nil {
		r.idens = map[envelope.KeyID]envelope.Identity{}
	}
	r.idens[id] = idn
	return idn, nil
}

// identityOf makes the envelope Identity of a key pair on the token.
func identityOf(k *token.Key) (envelope.Identity, error) {
	switch k.Public().(type) {
	case *rsa.PublicKey:
		return envelope.NewRSAIdentity(tokenRSA{k})
	case *ecdsa.PublicKey:
		return envelope.NewECDHIdentity(tokenECDH{k})
	}
	return nil, fmt.Errorf("%w: key %q", token.ErrWrongKeyType, k.Label)
}

// tokenRSA and tokenECDH are a key pair on the token as the envelope and
// cms packages' RSAKey and ECDHKey, each with only its own method (cms
// tells the kinds apart by method set). They map the token's data
// failure ([token.ErrUnwrapFailed], one fixed message) to envelope's
// ([envelope.ErrUnwrap]).
type (
	tokenRSA  struct{ k *token.Key }
	tokenECDH struct{ k *token.Key }
)

func (t tokenRSA) Public() crypto.PublicKey  { return t.k.Public() }
func (t tokenECDH) Public() crypto.PublicKey { return t.k.Public() }

func (t tokenRSA) DecryptOAEP(h crypto.Hash, ct []byte) ([]byte, error) {
	pt, err := t.k.DecryptOAEP(h, ct)
	return pt, mapErr(err)
}

func (t tokenECDH) ECDH(peer []byte) ([]byte, error) {
	z, err := t.k.ECDH(peer)
	return z, mapErr(err)
}

func mapErr(err error) error {
	if errors.Is(err, token.ErrUnwrapFailed) {
		return envelope.ErrUnwrap
	}
	return err
}

// IsSpec reports whether spec names a key on the token: "token:LABEL" or
// a pkcs11: URI.
func IsSpec(spec string) bool {
	return strings.HasPrefix(spec, "token:") || strings.HasPrefix(strings.ToLower(spec), "pkcs11:")
}

// Key finds the key pair a spec names: "token:LABEL", a bare label, or
// a pkcs11: URI with object= and/or id=.
func (r *Keyring) Key(spec string) (*token.Key, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tok, err := r.token()
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(strings.ToLower(spec), "pkcs11:") {
		u, err := token.ParseURI(spec)
		if err != nil {
			return nil, err
		}
		return tok.FindKeyURI(u)
	}
	return tok.FindKey(strings.TrimPrefix(spec, "token:"))
}

// Recipient resolves a spec naming a key on the token (see [Keyring.Key])
// to the recipient envelopes are sealed to. The key must be able to
// unwrap or derive on this token, and its public key must belong to it
// ([token.Key.Check]: a replaced public-key object is refused, naming the
// key). RSA recipients use the OAEP hash the token undoes.
func (r *Keyring) Recipient(spec string) (envelope.Recipient, error) {
	k, h, err := r.recipientKey(spec)
	if err != nil {
		return nil, err
	}
	rc, err := envelope.NewRecipient(k.Public(), h)
	if err != nil {
		return nil, fmt.Errorf("recipient %s: %w", spec, err)
	}
	return rc, nil
}

// recipientKey finds the key a recipient spec names, checks it can be
// one (see [Keyring.Recipient]), and returns the OAEP hash for an RSA
// key (zero for EC).
func (r *Keyring) recipientKey(spec string) (*token.Key, crypto.Hash, error) {
	k, err := r.Key(spec)
	if err != nil {
		return nil, 0, err
	}
	if !k.Usage.CanExchange() {
		return nil, 0, fmt.Errorf("%w: key %q cannot be a recipient: its usage is %s", token.ErrWrongKeyType, k.Label, k.Usage)
	}
	if err := k.Check(); err != nil {
		return nil, 0, err
	}
	if err := k.CanOpen(); err != nil {
		return nil, 0, err
	}
	var h crypto.Hash
	if _, isRSA := k.Public().(*rsa.PublicKey); isRSA {
		if h, err = k.OAEPHash(); err != nil {
			return nil, 0, err
		}
	}
	return k, h, nil
}

// Signer resolves a spec naming a signing key on the token to a signer
// and its key id. Each signature it makes is verified against the public
// key before it is returned (see [token.Key.Signer]).
func (r *Keyring) Signer(spec string) (crypto.Signer, envelope.KeyID, error) {
	k, err := r.Key(spec)
	if err != nil {
		return nil, envelope.KeyID{}, err
	}
	s, err := k.Signer()
	if err != nil {
		return nil, envelope.KeyID{}, err
	}
	id, err := envelope.KeyIDOf(k.Public())
	return s, id, err
}

// Labels maps the key id of every key pair on the token to its label.
func (r *Keyring) Labels() (map[envelope.KeyID]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	keys, err := r.keys()
	if err != nil {
		return nil, err
	}
	out := make(map[envelope.KeyID]string, len(keys))
	for id, k := range keys {
		out[id] = k.Label
	}
	return out, nil
}
