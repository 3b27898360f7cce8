package token

import (
	"testing"

	"github.com/tokenseal/tokenseal/internal/softhsmtest"
)

// TestTrialsDestroyTemporaryPairs checks the temporary session key pairs
// are destroyed explicitly, not merely dropped when the session closes:
// the count is taken while the sessions that made them are still open.
func TestTrialsDestroyTemporaryPairs(t *testing.T) {
	st := softhsmtest.New(t)
	tok, err := Open(Config{Module: st.Module, Token: st.Label, PIN: st.PIN})
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	d := &Diagnosis{}
	for _, c := range Capabilities {
		d.Capabilities = append(d.Capabilities, CapabilityResult{Capability: c, Offered: true})
	}
	if err := d.trials(tok); err != nil {
		t.Fatal(err)
	}
	if c := d.Capability(CapRSAKeyGen); c.Trial != TrialOK {
		t.Fatalf("no temporary rsa pair was made: %+v", c)
	}
	if c := d.Capability(CapECKeyGen); c.Trial != TrialOK {
		t.Fatalf("no temporary ec pair was made: %+v", c)
	}
	if len(d.Problems) != 0 {
		t.Fatalf("problems: %v", d.Problems)
	}
	n, err := tok.CountObjects()
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d objects left in the open sessions", n)
	}
}
