package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/internal/softhsmtest"
	"github.com/tokenseal/tokenseal/token"
)

// TestExportPEM parses exported keys with the standard library and checks
// the comment header.
func TestExportPEM(t *testing.T) {
	st := softhsmtest.New(t)
	tok, err := token.Open(token.Config{Module: st.Module, Token: st.Label, PIN: st.PIN})
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	for _, c := range []struct {
		label, typ string
		usage      token.Usage
		oaep, role string
	}{
		{"rx", "rsa-2048", token.UsageExchange, "# oaep-hash: sha1\n", "recipient"},
		{"rs", "rsa-2048", token.UsageSign, "", "sender"},
		{"ex", "p256", token.UsageExchange, "", "recipient"},
		{"es", "p384", token.UsageSign, "", "sender"},
	} {
		k, err := tok.GenerateKey(c.label, c.typ, c.usage)
		if err != nil {
			t.Fatal(err)
		}
		out, err := exportPEM(k)
		if err != nil {
			t.Fatal(err)
		}
		head := "# tokenseal " + c.role + "\n# label: " + c.label + "\n# key-id: " + hex.EncodeToString(k.ID) + "\n" + c.oaep + "-----BEGIN PUBLIC KEY-----\n"
		if !strings.HasPrefix(string(out), head) {
			t.Errorf("%s: header:\n%s", c.label, out)
		}
		block, rest := pem.Decode(out)
		if block == nil || block.Type != "PUBLIC KEY" || len(bytes.TrimSpace(rest)) != 0 {
			t.Fatalf("%s: pem.Decode failed", c.label)
		}
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		switch p := pub.(type) {
		case *rsa.PublicKey:
			if !p.Equal(k.Public()) {
				t.Errorf("%s: rsa key differs", c.label)
			}
		case *ecdsa.PublicKey:
			if !p.Equal(k.Public()) {
				t.Errorf("%s: ec key differs", c.label)
			}
		default:
			t.Errorf("%s: %T", c.label, pub)
		}
		if id, _ := envelope.KeyIDOf(pub); !bytes.Equal(id[:], k.ID) {
			t.Errorf("%s: key-id is not SHA-256 of the SPKI", c.label)
		}
	}
}
