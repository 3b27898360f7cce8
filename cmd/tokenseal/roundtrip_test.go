package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenseal/tokenseal/internal/softhsmtest"
	"github.com/tokenseal/tokenseal/token"
)

// tokenFixture is a SoftHSM2 token with one exchange key of every type.
// (Round trips through the token for every key type, size and kind of
// token are token/keyring's TestRoundTrip.)
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
