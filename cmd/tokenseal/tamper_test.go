package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// keyTypes are the exchange key types the tamper matrix seals to. (Round
// trips through the token for every key type, size and kind of token are
// token/keyring's TestRoundTrip.)
var keyTypes = []string{"rsa-2048", "rsa-3072", "p256", "p384"}

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
