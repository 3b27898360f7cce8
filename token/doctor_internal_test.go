package token

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"math/big"
	"testing"
)

// TestVerdictNothingWorks: a token on which no key could be found or
// made to try anything on gets a problem, even though its mechanisms are
// offered (issue 10: "problems: none" when nothing could be generated or
// opened).
func TestVerdictNothingWorks(t *testing.T) {
	d := &Diagnosis{Token: &Info{}, TrialsRun: true}
	for _, c := range Capabilities {
		d.Capabilities = append(d.Capabilities, CapabilityResult{Capability: c, Offered: true, Trial: TrialNotTried, noKey: true})
	}
	d.verdict()
	if len(d.Problems) != 1 || !errors.Is(d.Problems[0], ErrMechanism) {
		t.Fatalf("problems: %v", d.Problems)
	}
	d = &Diagnosis{Token: &Info{}}
	for _, c := range Capabilities {
		d.Capabilities = append(d.Capabilities, CapabilityResult{Capability: c, Offered: true, Trial: TrialNotTried})
	}
	d.verdict()
	if len(d.Problems) != 0 {
		t.Fatalf("no trials, mechanisms offered: problems %v", d.Problems)
	}
}

// TestEMSAPSS checks the host-side PSS encoding used with raw RSA
// signing: a software key plays the token.
func TestEMSAPSS(t *testing.T) {
	for _, bits := range []int{2048, 2049, 3072} {
		priv, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		digest := randomDigest()
		em, err := emsaPSSEncode(digest, priv.N.BitLen()-1, 32)
		if err != nil {
			t.Fatal(err)
		}
		s := new(big.Int).Exp(new(big.Int).SetBytes(em), priv.D, priv.N)
		sig := s.FillBytes(make([]byte, priv.Size()))
		if err := rsa.VerifyPSS(&priv.PublicKey, crypto.SHA256, digest, sig, &rsa.PSSOptions{SaltLength: 32}); err != nil {
			t.Errorf("%d bits: %v", bits, err)
		}
	}
}
