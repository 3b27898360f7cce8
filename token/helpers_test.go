package token_test

import (
	"crypto/rsa"
	"math/big"
)

// rsaRaw is textbook RSA: m^e mod n, as many bytes as the modulus.
func rsaRaw(pub *rsa.PublicKey, m []byte) []byte {
	c := new(big.Int).Exp(new(big.Int).SetBytes(m), big.NewInt(int64(pub.E)), pub.N)
	return c.FillBytes(make([]byte, pub.Size()))
}
