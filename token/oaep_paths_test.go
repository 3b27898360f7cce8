package token_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"log/slog"
	"strings"
	"testing"
)

// TestOAEPPaths checks which path runs for each hash on SoftHSM2 2.6.1:
// SHA-1 through C_UnwrapKey, SHA-256 (refused with CKR_ARGUMENTS_BAD by
// both C_UnwrapKey and C_Decrypt) through raw RSA and host decoding.
func TestOAEPPaths(t *testing.T) {
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(old) })
	tok, _ := open(t)
	k := generate(t, tok, "paths", "rsa-2048", "exchange")
	for _, c := range []struct {
		h    crypto.Hash
		path string
	}{{crypto.SHA1, "path=unwrap"}, {crypto.SHA256, "path=raw"}} {
		buf.Reset()
		ct, _ := rsa.EncryptOAEP(c.h.New(), rand.Reader, k.Public().(*rsa.PublicKey), []byte("secret"), nil)
		pt, err := k.DecryptOAEP(c.h, ct)
		if err != nil || string(pt) != "secret" {
			t.Fatalf("%v: %q %v", c.h, pt, err)
		}
		if !strings.Contains(buf.String(), c.path) {
			t.Errorf("%v: log does not show %s:\n%s", c.h, c.path, buf.String())
		}
	}
	t.Log(buf.String())
}
