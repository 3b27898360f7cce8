package token

import (
	"testing"

	"github.com/miekg/pkcs11"
	"github.com/tokenseal/tokenseal/internal/p11test"
)

// TestPublicUnmodifiable: the public-key object of a generated pair has
// CKA_MODIFIABLE false on every implementation (by C_SetAttributeValue on
// tpm2-pkcs11, by a copy elsewhere), and is the only one with its CKA_ID.
func TestPublicUnmodifiable(t *testing.T) {
	p11test.Each(t, func(t *testing.T, pt *p11test.Token) {
		tok, err := Open(Config{Module: pt.Module, Token: pt.Label, PIN: pt.PIN})
		if err != nil {
			t.Fatal(err)
		}
		defer tok.Close()
		typ := "rsa-2048"
		k, err := tok.GenerateKey("k", typ, UsageExchange)
		if err != nil {
			t.Fatal(err)
		}
		if len(k.pubs) != 1 {
			t.Fatalf("%d public-key objects", len(k.pubs))
		}
		err = tok.withSession(func(sh pkcs11.SessionHandle) error {
			a, err := tok.readAttrs(sh, k.pubs[0], pkcs11.CKA_MODIFIABLE)
			if err == nil && a.bool(pkcs11.CKA_MODIFIABLE) {
				t.Error("the public-key object is modifiable")
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
