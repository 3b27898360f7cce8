package token_test

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"testing"

	"github.com/tokenseal/tokenseal/internal/p11test"
	"github.com/tokenseal/tokenseal/token"
)

// BenchmarkUnwrap measures one file-key recovery on a SoftHSM2 token:
// RSA-OAEP by the path the probe chose (SHA-1: C_UnwrapKey) and ECDH
// through C_DeriveKey.
func BenchmarkUnwrap(b *testing.B) {
	pt := p11test.New(b, p11test.SoftHSM2)
	tok, err := token.Open(token.Config{Module: pt.Module, Token: pt.Label, PIN: pt.PIN})
	if err != nil {
		b.Fatal(err)
	}
	defer tok.Close()
	for _, typ := range []string{"rsa-2048", "rsa-3072"} {
		k, err := tok.GenerateKey("b-"+typ, typ, token.UsageExchange)
		if err != nil {
			b.Fatal(err)
		}
		h, err := k.OAEPHash()
		if err != nil {
			b.Fatal(err)
		}
		ct, err := rsa.EncryptOAEP(h.New(), rand.Reader, k.Public().(*rsa.PublicKey), make([]byte, 32), nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(typ, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := k.DecryptOAEP(h, ct); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, typ := range []string{"p256", "p384"} {
		k, err := tok.GenerateKey("b-"+typ, typ, token.UsageExchange)
		if err != nil {
			b.Fatal(err)
		}
		pub, _ := k.Public().(*ecdsa.PublicKey).ECDH()
		eph, _ := pub.Curve().GenerateKey(rand.Reader)
		peer := eph.PublicKey().Bytes()
		b.Run(typ, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := k.ECDH(peer); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
