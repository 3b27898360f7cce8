//go:build linux

package main

// Secrets hygiene: the failing cases of open, with and without
// --verbose, never print the PIN or the file key (or the keys derived
// from it) in any common encoding; outputs and the state database are
// private files even under umask 0; failures leave no temporary file.

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
	ref "github.com/tokenseal/tokenseal/internal/reference"
)

// recoverFileKey unwraps the file key of a binary envelope from its
// RSA-OAEP (SHA-256) stanza for priv, with the reference decoder, and
// returns it with the keys derived from it.
func recoverFileKey(t *testing.T, env []byte, priv *rsa.PrivateKey) [][]byte {
	t.Helper()
	h, _, err := ref.Parse(env)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range h.Stanzas {
		if st.Type == ref.TypeRSA && bytes.Equal(st.KeyID, ref.KeyID(&priv.PublicKey)) && st.Body[0] != ref.OAEPSHA256 {
			t.Fatalf("the software key's stanza uses oaep_hash %d, not SHA-256", st.Body[0])
		}
	}
	fk, err := ref.Unwrap(h, []crypto.PrivateKey{priv})
	if err != nil {
		t.Fatalf("recovering the file key: %v", err)
	}
	kh, kp := ref.DeriveKeys(fk, h.Salt)
	return [][]byte{fk, kh, kp}
}

// encodings are the forms a secret could leak in.
func encodings(secret []byte) map[string]string {
	m := map[string]string{
		"raw":        string(secret),
		"hex":        hex.EncodeToString(secret),
		"HEX":        strings.ToUpper(hex.EncodeToString(secret)),
		"base64":     base64.StdEncoding.EncodeToString(secret),
		"base64 raw": base64.RawStdEncoding.EncodeToString(secret),
		"base64url":  base64.URLEncoding.EncodeToString(secret),
	}
	if len(secret) >= 16 { // keys: a leaked part counts too
		m["hex prefix"] = hex.EncodeToString(secret[:12])
		m["base64 prefix"] = base64.RawStdEncoding.EncodeToString(secret[:12])
		m["decimal prefix"] = decimalBytes(secret[:8])
	}
	return m
}

// decimalBytes is how fmt prints a []byte with %v: "[12 34 ...".
func decimalBytes(b []byte) string {
	var s []string
	for _, c := range b {
		s = append(s, strconv.Itoa(int(c)))
	}
	return "[" + strings.Join(s, " ")
}

func TestSecretsHygiene(t *testing.T) {
	old := syscall.Umask(0) // the modes must not depend on the umask
	defer syscall.Umask(old)
	r := newAdvRig(t)

	blk, _ := pem.Decode(mustRead(t, "../../envelope/testdata/keys/rsa2048-b.pem"))
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	soft := k.(*rsa.PrivateKey)
	der, _ := x509.MarshalPKIXPublicKey(&soft.PublicKey)
	softPEM := r.path("soft.pem")
	os.WriteFile(softPEM, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)

	plain := bytes.Repeat([]byte("the plaintext is not a secret here "), 3000)
	signed := r.seal(plain, "--sign-with", "s-p256", "-r", "token:x-p256", "-r", softPEM)
	softOnly := r.seal(plain, "--anonymous", "-r", softPEM)
	secrets := map[string][]byte{"PIN": []byte(r.tok.PIN), "wrong PIN": []byte("0000-wrong")}
	for i, s := range recoverFileKey(t, signed, soft) {
		secrets[[]string{"file key", "header key", "payload key"}[i]] = s
	}
	for i, s := range recoverFileKey(t, softOnly, soft) {
		secrets[[]string{"file key 2", "header key 2", "payload key 2"}[i]] = s
	}

	write := func(name string, b []byte) string {
		p := r.path(name)
		os.WriteFile(p, b, 0o600)
		return p
	}
	good := write("good.tseal", signed)
	// Signed by a key on no token here (the token's own signing keys are
	// trusted as the user's own).
	stranger := write("stranger.tseal", sealTo(t, r.recipient(r.pems["x-p256"]),
		&envelope.Sender{Signer: p256Key(t), StreamID: randomStream(), Serial: 1, Time: time.Now()}, plain))
	flip := func(b []byte, i int) []byte {
		b = bytes.Clone(b)
		b[(i+len(b))%len(b)] ^= 1
		return b
	}
	h, _, err := ref.Parse(signed)
	if err != nil {
		t.Fatal(err)
	}
	hl := len(h.Raw())
	outDir := r.path("hygiene-out")
	os.Mkdir(outDir, 0o700)
	out := filepath.Join(outDir, "plain")

	type failing struct {
		name string
		want int
		env  map[string]string
		args []string
	}
	cases := []failing{
		{"wrong PIN", exitToken, map[string]string{"TOKENSEAL_PIN": "0000-wrong"}, []string{"open", "-o", out, good}},
		{"wrong PIN file", exitToken, map[string]string{"TOKENSEAL_PIN": "", "TOKENSEAL_PIN_FILE": write("pin", []byte("0000-wrong\n"))}, []string{"open", "-o", out, good}},
		{"tampered payload", exitEnvelope, nil, []string{"open", "-o", out, write("t1.tseal", flip(signed, hl+100))}},
		{"tampered signature", exitEnvelope, nil, []string{"open", "-o", out, write("t2.tseal", flip(signed, -1))}},
		{"tampered MAC", exitEnvelope, nil, []string{"open", "-o", out, write("t3.tseal", flip(signed, hl-1))}},
		{"tampered to stdout", exitEnvelope, nil, []string{"open", write("t4.tseal", flip(signed, hl+100))}},
		{"truncated", exitEnvelope, nil, []string{"open", "-o", out, write("t5.tseal", signed[:len(signed)-200])}},
		{"untrusted sender", exitEnvelope, nil, []string{"open", "-o", out, stranger}},
		{"wrong key", exitEnvelope, nil, []string{"open", "--allow-anonymous", "-o", out, write("soft.tseal", softOnly)}},
		{"missing module", exitToken, map[string]string{"TOKENSEAL_MODULE": r.path("nope.so")}, []string{"open", "-o", out, good}},
		{"first open", exitOK, nil, []string{"open", "-o", out, good}},
		{"replay", exitReplay, nil, []string{"open", "-o", filepath.Join(outDir, "again"), good}},
		{"replay to stdout", exitReplay, nil, []string{"open", good}},
	}
	scanned := 0
	allowed := map[string]bool{} // what may be in outDir
	for _, c := range cases {
		for _, verbose := range []bool{false, true} {
			if c.want == exitOK && verbose {
				continue // once only
			}
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			args := c.args
			if verbose {
				args = append([]string{"--verbose"}, args...)
			}
			code, stdout, stderr := r.runCLI(args...)
			if code != c.want {
				t.Errorf("%s (verbose %v): exit %d, want %d: %s", c.name, verbose, code, c.want, stderr)
			}
			for what, s := range secrets {
				for enc, v := range encodings(s) {
					if v != "" && (strings.Contains(stderr, v) || strings.Contains(stdout, v)) {
						t.Errorf("%s (verbose %v): the %s appears (%s) in the output", c.name, verbose, what, enc)
					}
				}
			}
			scanned++
			if c.want == exitOK {
				allowed["plain"] = true
			}
			for _, f := range dirEntries(outDir) {
				if !allowed[f] {
					t.Errorf("%s: %s left in the output directory", c.name, f)
				}
			}
			if left := dirEntries(r.path("tmp")); len(left) != 0 {
				t.Errorf("%s: left in TMPDIR: %v", c.name, left)
			}
			t.Setenv("TOKENSEAL_PIN", r.tok.PIN)
			t.Setenv("TOKENSEAL_PIN_FILE", "")
			t.Setenv("TOKENSEAL_STATE_DIR", r.recv)
			t.Setenv("TOKENSEAL_MODULE", r.tok.Module)
		}
	}
	t.Logf("%d runs scanned for %d secrets in %d encodings", scanned, len(secrets), len(encodings([]byte("0123456789abcdef"))))

	// Modes, under umask 0: the plaintext and the state are private.
	if got, _ := os.ReadFile(out); !bytes.Equal(got, plain) {
		t.Fatal("plaintext differs")
	}
	os.WriteFile(filepath.Join(outDir, "force"), []byte("old"), 0o644)
	write("anon.tseal", r.seal(plain, "--anonymous", "-r", "token:x-p256"))
	if code, _, stderr := r.runCLI("open", "--allow-anonymous", "--force", "-o", filepath.Join(outDir, "force"), r.path("anon.tseal")); code != 0 {
		t.Fatalf("open --force: %s", stderr)
	}
	modes := map[string]fs.FileMode{out: 0o600, filepath.Join(outDir, "force"): 0o600}
	for _, stateDir := range []string{r.send, r.recv} {
		n := len(modes)
		modes[stateDir] = 0o700
		filepath.WalkDir(stateDir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				modes[p] = 0o600
			}
			return nil
		})
		if len(modes)-n < 2 {
			t.Errorf("state directory %s holds %d files", stateDir, len(modes)-n-1)
		}
	}
	for p, want := range modes {
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
