package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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

// runCLI runs the CLI in-process.
func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(append([]string{"tokenseal"}, args...), strings.NewReader(""), &o, &e)
	return code, o.String(), e.String()
}

// Every single-byte change and every truncation of a small envelope, for
// every key type, is refused by the real CLI with exit 4 and no output
// file, and the error is one line.
func TestCLITamperMatrix(t *testing.T) {
	f := newTokenFixture(t)
	f.tok.Close() // the CLI opens the token itself, once per run
	dir := t.TempDir()
	t.Setenv("SOFTHSM2_CONF", f.st.Conf)
	t.Setenv("TOKENSEAL_MODULE", f.st.Module)
	t.Setenv("TOKENSEAL_TOKEN", f.st.Label)
	t.Setenv("TOKENSEAL_PIN", f.st.PIN)
	t.Setenv("TOKENSEAL_STATE_DIR", filepath.Join(dir, "state"))
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, []byte("attack at dawn"), 0o644)
	out := filepath.Join(dir, "out")
	cases := 0
	for _, typ := range keyTypes {
		env := filepath.Join(dir, typ+".tseal")
		if code, _, stderr := runCLI("seal", "--anonymous", "-r", "token:k-"+typ, "-o", env, plain); code != 0 {
			t.Fatalf("seal %s: %d %s", typ, code, stderr)
		}
		good, _ := os.ReadFile(env)
		if code, _, stderr := runCLI("open", "--allow-anonymous", "-o", out, env); code != 0 {
			t.Fatalf("open %s: %d %s", typ, code, stderr)
		}
		os.Remove(out)
		bad := filepath.Join(dir, "bad")
		check := func(what string, data []byte) {
			t.Helper()
			cases++
			os.WriteFile(bad, data, 0o644)
			code, stdout, stderr := runCLI("open", "--allow-anonymous", "-o", out, bad)
			if code != exitEnvelope || stdout != "" || strings.Count(stderr, "\n") > 2 {
				t.Fatalf("%s %s: exit %d, stdout %q, stderr %q", typ, what, code, stdout, stderr)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s %s: output file left behind", typ, what)
			}
			if matches, _ := filepath.Glob(filepath.Join(dir, ".out.tokenseal-*")); len(matches) != 0 {
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

// Opening to stdout, anonymous (streamed) and signed (verified whole,
// then decrypted again from the spool with the kept file key), for an
// envelope of several chunks: the bytes on stdout are the plaintext.
func TestStdoutMultiChunk(t *testing.T) {
	f := newTokenFixture(t)
	f.tok.Close()
	dir := t.TempDir()
	t.Setenv("SOFTHSM2_CONF", f.st.Conf)
	t.Setenv("TOKENSEAL_MODULE", f.st.Module)
	t.Setenv("TOKENSEAL_TOKEN", f.st.Label)
	t.Setenv("TOKENSEAL_PIN", f.st.PIN)
	t.Setenv("TOKENSEAL_STATE_DIR", filepath.Join(dir, "state"))
	plainPath := filepath.Join(dir, "plain")
	plain := make([]byte, 5*65536+123)
	rand.Read(plain)
	os.WriteFile(plainPath, plain, 0o644)
	tok, err := token.Open(token.Config{Module: f.st.Module, Token: f.st.Label, PIN: f.st.PIN})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tok.GenerateKey("signer", "p256", token.UsageSign); err != nil {
		t.Fatal(err)
	}
	tok.Close()
	if code, _, stderr := runCLI("key", "export", "--label", "signer", "-o", filepath.Join(dir, "signer.pem")); code != 0 {
		t.Fatal(stderr)
	}
	if code, _, stderr := runCLI("trust", "add", "me", filepath.Join(dir, "signer.pem")); code != 0 {
		t.Fatal(stderr)
	}
	for _, args := range [][]string{
		{"--anonymous"},
		{"--sign-with", "signer"},
		{"--sign-with", "signer", "--armor"},
	} {
		env := filepath.Join(dir, "env")
		os.Remove(env)
		sealArgs := append([]string{"seal", "-r", "token:k-p256", "-o", env}, args...)
		if code, _, stderr := runCLI(append(sealArgs, plainPath)...); code != 0 {
			t.Fatalf("seal %v: %s", args, stderr)
		}
		code, stdout, stderr := runCLI("open", "--allow-anonymous", env)
		if code != 0 || stdout != string(plain) {
			t.Fatalf("open %v to stdout: exit %d, %d bytes, %s", args, code, len(stdout), stderr)
		}
	}
}
