package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/internal/softhsmtest"
	"github.com/tokenseal/tokenseal/token"
)

// tokenFixture is a SoftHSM2 token with one exchange key of every type.
type tokenFixture struct {
	st   *softhsmtest.Token
	tok  *token.Token
	keys map[string]*token.Key
}

var keyTypes = []string{"rsa-2048", "rsa-3072", "p256", "p384"}

func newTokenFixture(t *testing.T) *tokenFixture {
	t.Helper()
	st := softhsmtest.New(t)
	tok, err := token.Open(token.Config{Module: st.Module, Token: st.Label, PIN: st.PIN})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tok.Close() })
	f := &tokenFixture{st: st, tok: tok, keys: map[string]*token.Key{}}
	for _, typ := range keyTypes {
		k, err := tok.GenerateKey("k-"+typ, typ, token.UsageExchange)
		if err != nil {
			t.Fatal(err)
		}
		f.keys[typ] = k
	}
	return f
}

func (f *tokenFixture) recipient(t *testing.T, typ string) envelope.Recipient {
	t.Helper()
	k := f.keys[typ]
	var r envelope.Recipient
	var err error
	if strings.HasPrefix(typ, "rsa") {
		h, _, perr := k.ProbeOAEPHash()
		if perr != nil {
			t.Fatal(perr)
		}
		r, err = envelope.NewRecipient(k.Public(), h)
	} else {
		r, err = envelope.NewRecipient(k.Public(), 0)
	}
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (f *tokenFixture) identity(t *testing.T, typ string) envelope.Identity {
	t.Helper()
	id, err := identityOf(f.keys[typ])
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Round trips through the real token for every key type and the sizes
// around the chunk boundary, binary and armored.
func TestTokenRoundTrip(t *testing.T) {
	f := newTokenFixture(t)
	const chunk = 64 << 10
	sizes := []int{0, 1, chunk - 1, chunk, chunk + 1, 3 << 20}
	for _, typ := range keyTypes {
		r, id := f.recipient(t, typ), f.identity(t, typ)
		for _, armor := range []bool{false, true} {
			for _, n := range sizes {
				t.Run(fmt.Sprintf("%s/armor=%v/%d", typ, armor, n), func(t *testing.T) {
					plain := make([]byte, n)
					rand.Read(plain)
					var env bytes.Buffer
					w, err := envelope.Seal(&env, []envelope.Recipient{r}, &envelope.SealOptions{Armor: armor})
					if err != nil {
						t.Fatal(err)
					}
					w.Write(plain)
					if err := w.Close(); err != nil {
						t.Fatal(err)
					}
					rd, err := envelope.Open(&env, []envelope.Identity{id}, nil)
					if err != nil {
						t.Fatal(err)
					}
					got, err := io.ReadAll(rd)
					if err != nil || !bytes.Equal(got, plain) {
						t.Fatalf("round trip: %v", err)
					}
				})
			}
		}
	}
	// One envelope to all four; each key opens it through the token
	// identity that looks keys up by CKA_ID.
	var rs []envelope.Recipient
	for _, typ := range keyTypes {
		rs = append(rs, f.recipient(t, typ))
	}
	var env bytes.Buffer
	w, _ := envelope.Seal(&env, rs, nil)
	io.WriteString(w, "to everyone")
	w.Close()
	ti := newTokenIdentity(&lazyToken{tok: f.tok})
	rd, err := envelope.Open(bytes.NewReader(env.Bytes()), []envelope.Identity{ti}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(rd); err != nil || string(b) != "to everyone" {
		t.Fatalf("multi: %q %v", b, err)
	}
}
