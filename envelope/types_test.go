package envelope

import (
	"testing"

	"github.com/tokenseal/tokenseal/envelope/internal/format"
)

// The exported signature algorithms are the wire's.
func TestSigAlgValues(t *testing.T) {
	if ECDSAP256SHA256 != format.SigECDSAP256SHA256 || RSAPSSSHA256 != format.SigRSAPSSSHA256 {
		t.Fatal("SigAlg constants differ from the format's")
	}
	if ECDSAP256SHA256.String() != "ECDSA-P256-SHA256" || RSAPSSSHA256.String() != "RSA-PSS-SHA256" || SigAlg(9).String() != "SigAlg(9)" {
		t.Fatal("SigAlg names")
	}
}
