package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
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

// Every single-byte change and every truncation of a small envelope, for
// every key type, is refused by the real CLI with exit 4 and no output
// file, and the error is one line.
func TestCLITamperMatrix(t *testing.T) {
	r := newRig(t)
	plain := r.write("plain", []byte("attack at dawn"))
	out := r.path("out")
	cases := 0
	for _, typ := range keyTypes {
		r.key("k-"+typ, typ, "exchange")
		env := r.path(typ + ".tseal")
		if code, _, stderr := r.runCLI("seal", "--anonymous", "-r", "token:k-"+typ, "-o", env, plain); code != 0 {
			t.Fatalf("seal %s: %d %s", typ, code, stderr)
		}
		good := r.read(env)
		if code, _, stderr := r.runCLI("open", "--allow-anonymous", "-o", out, env); code != 0 {
			t.Fatalf("open %s: %d %s", typ, code, stderr)
		}
		os.Remove(out)
		bad := r.path("bad")
		check := func(what string, data []byte) {
			t.Helper()
			cases++
			os.WriteFile(bad, data, 0o644)
			code, stdout, stderr := r.runCLI("open", "--allow-anonymous", "-o", out, bad)
			if code != exitEnvelope || stdout != "" || strings.Count(stderr, "\n") > 2 {
				t.Fatalf("%s %s: exit %d, stdout %q, stderr %q", typ, what, code, stdout, stderr)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s %s: output file left behind", typ, what)
			}
			if matches := tempsOf(out); len(matches) != 0 {
				t.Fatalf("%s %s: temporary file left behind: %v", typ, what, matches)
			}
		}
		for i := range good {
			b := bytes.Clone(good)
			b[i] ^= 0x40
			check(fmt.Sprintf("flip %d", i), b)
		}
		for n := 0; n < len(good); n += 1 + n/64 {
			check(fmt.Sprintf("truncate %d", n), good[:n])
		}
		check("truncate last byte", good[:len(good)-1])
		check("append", append(bytes.Clone(good), 0))
	}
	t.Logf("%d tampered envelopes refused with exit 4", cases)
}
