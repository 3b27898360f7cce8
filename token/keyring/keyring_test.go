package keyring_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/internal/logtest"
	"github.com/tokenseal/tokenseal/internal/p11test"
	"github.com/tokenseal/tokenseal/token"
	"github.com/tokenseal/tokenseal/token/keyring"
)

// fixture is a token of one kind with exchange keys of the types it can
// make, and a Keyring on it.
type fixture struct {
	pt   *p11test.Token
	tok  *token.Token
	ring *keyring.Keyring
	keys map[string]*token.Key // by type
}

func newFixture(t *testing.T, pt *p11test.Token, types ...string) *fixture {
	t.Helper()
	tok, err := token.Open(token.Config{Module: pt.Module, Token: pt.Label, PIN: pt.PIN})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{pt: pt, tok: tok, keys: map[string]*token.Key{}}
	f.ring = keyring.New(func() (*token.Token, error) { return tok, nil })
	t.Cleanup(func() { f.ring.Close() })
	for _, typ := range types {
		k, err := tok.GenerateKey("k-"+typ, typ, token.UsageExchange)
		if err != nil {
			t.Fatal(err)
		}
		f.keys[typ] = k
	}
	return f
}

// exchangeTypes are the exchange key types a kind makes; the larger
// sizes only on SoftHSM2, where they are cheap.
func exchangeTypes(pt *p11test.Token) []string {
	switch {
	case pt.Kind == p11test.SoftHSM2:
		return []string{"rsa-2048", "rsa-3072", "p256", "p384"}
	case pt.Caps().ECDH:
		return []string{"rsa-2048", "p256"}
	}
	return []string{"rsa-2048"}
}

func (f *fixture) recipient(t *testing.T, typ string) envelope.Recipient {
	t.Helper()
	r, err := f.ring.Recipient("token:k-" + typ)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func seal(t *testing.T, plain []byte, armor bool, rs ...envelope.Recipient) []byte {
	t.Helper()
	var env bytes.Buffer
	w, err := envelope.Seal(&env, rs, &envelope.SealOptions{Armor: armor})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return env.Bytes()
}

func open(ring *keyring.Keyring, env []byte) ([]byte, error) {
	r, err := envelope.Open(bytes.NewReader(env), []envelope.Identity{ring}, nil)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// TestRoundTrip seals to keys on the token (token: recipients) and opens
// through the Keyring, for every key type each kind makes, sizes around
// the chunk boundary, binary and armored; then one envelope to all.
func TestRoundTrip(t *testing.T) {
	p11test.Each(t, func(t *testing.T, pt *p11test.Token) {
		types := exchangeTypes(pt)
		f := newFixture(t, pt, types...)
		const chunk = 64 << 10
		sizes := []int{0, 1, chunk - 1, chunk, chunk + 1, 3 << 20}
		if pt.Kind != p11test.SoftHSM2 {
			sizes = []int{1, chunk + 1}
		}
		var all []envelope.Recipient
		for _, typ := range types {
			r := f.recipient(t, typ)
			all = append(all, r)
			for _, armor := range []bool{false, true} {
				for _, n := range sizes {
					plain := make([]byte, n)
					rand.Read(plain)
					got, err := open(f.ring, seal(t, plain, armor, r))
					if err != nil || !bytes.Equal(got, plain) {
						t.Fatalf("%s armor=%v %d bytes: %v", typ, armor, n, err)
					}
				}
			}
		}
		if got, err := open(f.ring, seal(t, []byte("to everyone"), false, all...)); err != nil || string(got) != "to everyone" {
			t.Fatalf("to all: %q %v", got, err)
		}
	})
}

// TestStanzaChoice is issue 11 finding 7: a stanza for a key the token
// holds but that can only sign does not stop the search; the first
// stanza whose key can unwrap or derive decides. An envelope only for the
// signing key is not addressed to any key that can open it.
func TestStanzaChoice(t *testing.T) {
	p11test.Each(t, func(t *testing.T, pt *p11test.Token) {
		f := newFixture(t, pt, "rsa-2048")
		typ := "p256"
		if !pt.Caps().EC {
			typ = "rsa-2048"
		}
		s, err := f.tok.GenerateKey("signer", typ, token.UsageSign)
		if err != nil {
			t.Fatal(err)
		}
		toSigner, err := envelope.NewRecipient(s.Public(), 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := open(f.ring, seal(t, []byte("hi"), false, toSigner, f.recipient(t, "rsa-2048")))
		if err != nil || string(got) != "hi" {
			t.Fatalf("signing key's stanza first: %q %v", got, err)
		}
		_, err = open(f.ring, seal(t, []byte("hi"), false, toSigner))
		var nm *envelope.NoIdentityMatchError
		if !errors.As(err, &nm) || !errors.Is(err, envelope.ErrRejected) {
			t.Errorf("only the signing key's stanza: %v", err)
		}
		if _, err := f.ring.Recipient("token:signer"); !errors.Is(err, token.ErrWrongKeyType) {
			t.Errorf("a signing key as recipient: %v", err)
		}
	})
}

// TestManyStanzas is the first half of issue 11 finding 10: 4,096
// stanzas naming keys the token does not hold cost one read of the token,
// not one lookup each; the one stanza for a key it holds, last, opens.
func TestManyStanzas(t *testing.T) {
	pt := p11test.New(t, p11test.SoftHSM2)
	f := newFixture(t, pt, "p256")
	var rs []envelope.Recipient
	for range 4095 {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		r, err := envelope.NewRecipient(&k.PublicKey, 0)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	logs := logtest.Debug(t)
	env := seal(t, []byte("needle"), false, append(rs, f.recipient(t, "p256"))...)
	logs.Reset()
	if got, err := open(f.ring, env); err != nil || string(got) != "needle" {
		t.Fatalf("open: %q %v", got, err)
	}
	if n := strings.Count(logs.String(), "token keys read"); n != 1 {
		t.Errorf("the token was read %d times, want once", n)
	}
	// A new Keyring, and no stanza for any of its keys.
	ring := keyring.New(func() (*token.Token, error) { return f.tok, nil })
	logs.Reset()
	_, err := open(ring, seal(t, []byte("x"), false, rs...))
	var nm *envelope.NoIdentityMatchError
	if !errors.As(err, &nm) || len(nm.KeyIDs) != len(rs) {
		t.Fatalf("no key: %v", err)
	}
	if n := strings.Count(logs.String(), "token keys read"); n != 1 {
		t.Errorf("the token was read %d times, want once", n)
	}
}

// TestErrors: a stanza the token refuses is an envelope rejection with
// one fixed message; a token that cannot be opened is a token error, and
// the Keyring opens it only when needed.
func TestErrors(t *testing.T) {
	pt := p11test.New(t, p11test.SoftHSM2)
	f := newFixture(t, pt, "rsa-2048", "p256")
	for _, typ := range []string{"rsa-2048", "p256"} {
		env := seal(t, []byte("x"), false, f.recipient(t, typ))
		// The wrapped key sits at the end of the stanza, before the
		// header MAC; flipping bits all over the stanza body.
		var msgs []string
		for _, off := range []int{60, 100, 150, 200} {
			bad := bytes.Clone(env)
			bad[off] ^= 0x10
			_, err := open(f.ring, bad)
			if !errors.Is(err, envelope.ErrRejected) || errors.Is(err, token.ErrToken) || strings.Contains(err.Error(), "CKR_") {
				t.Errorf("%s flip at %d: %v", typ, off, err)
			}
			msgs = append(msgs, err.Error())
		}
		t.Logf("%s: %q", typ, msgs)
	}
	var opened atomic.Int32
	ring := keyring.New(func() (*token.Token, error) { opened.Add(1); return nil, token.ErrNoPIN })
	if err := ring.Close(); err != nil || opened.Load() != 0 {
		t.Fatalf("Close opened the token (%d) or failed: %v", opened.Load(), err)
	}
	_, err := open(ring, seal(t, []byte("x"), false, f.recipient(t, "p256")))
	if !errors.Is(err, token.ErrNoPIN) || opened.Load() != 1 {
		t.Errorf("token that cannot be opened: %v (opened %d times)", err, opened.Load())
	}
}
