package token_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"testing"

	"github.com/tokenseal/tokenseal/internal/softhsmtest"
	"github.com/tokenseal/tokenseal/token"
)

// BenchmarkUnwrap measures one file-key recovery on the token: RSA-OAEP
// through C_UnwrapKey (SoftHSM2: SHA-1) and ECDH through C_DeriveKey.
func BenchmarkUnwrap(b *testing.B) {
	st := softhsmtest.New(b)
	tok, err := token.Open(token.Config{Module: st.Module, Token: st.Label, PIN: st.PIN})
	if err != nil {
		b.Fatal(err)
	}
	defer tok.Close()
	for _, typ := range []string{"rsa-2048", "rsa-3072"} {
		k, err := tok.GenerateKey("b-"+typ, typ, "exchange")
		if err != nil {
			b.Fatal(err)
		}
		ct, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, k.Public().(*rsa.PublicKey), make([]byte, 32), nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(typ, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := k.DecryptOAEP(crypto.SHA1, ct); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, typ := range []string{"p256", "p384"} {
		k, err := tok.GenerateKey("b-"+typ, typ, "exchange")
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
