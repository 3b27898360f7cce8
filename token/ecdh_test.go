package token

import (
	"crypto/ecdh"
	"crypto/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tokenseal/tokenseal/internal/softhsmtest"
)

// spyModules are where Debian's opensc-pkcs11 puts OpenSC's pkcs11-spy,
// a real module that logs every call to the module in PKCS11SPY.
var spyModules = []string{"/usr/lib/x86_64-linux-gnu/pkcs11-spy.so", "/usr/lib/aarch64-linux-gnu/pkcs11-spy.so", "/usr/lib64/pkcs11-spy.so"}

// TestECDHOneDerive: a run's first ECDH on a key makes one C_DeriveKey
// when the token takes the usual template (SoftHSM2 does), not a probe
// derive and then the real one: a one-shot open pays for one derive.
// Counted through pkcs11-spy in front of SoftHSM2.
func TestECDHOneDerive(t *testing.T) {
	i := slices.IndexFunc(spyModules, func(p string) bool { _, err := os.Stat(p); return err == nil })
	if i < 0 {
		t.Fatalf("pkcs11-spy (package opensc-pkcs11) is needed, in one of %v", spyModules)
	}
	spyModule := spyModules[i]
	st := softhsmtest.New(t)
	log := filepath.Join(t.TempDir(), "spy.log")
	t.Setenv("PKCS11SPY", st.Module)
	t.Setenv("PKCS11SPY_OUTPUT", log)
	cfg := Config{Module: spyModule, Token: st.Label, PIN: st.PIN}
	tok, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tok.GenerateKey("x", "p256", UsageExchange); err != nil {
		t.Fatal(err)
	}
	tok.Close()
	// A new run: nothing is chosen yet for the key.
	if tok, err = Open(cfg); err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	k, err := tok.FindKey("x")
	if err != nil {
		t.Fatal(err)
	}
	eph, _ := ecdh.P256().GenerateKey(rand.Reader)
	count := func() int {
		b, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(b), ": C_DeriveKey\n")
	}
	before := count()
	for i := 1; i <= 3; i++ {
		if _, err := k.ECDH(eph.PublicKey().Bytes()); err != nil {
			t.Fatal(err)
		}
		if n := count() - before; n != i {
			t.Fatalf("after %d ECDH: %d C_DeriveKey calls", i, n)
		}
	}
}
