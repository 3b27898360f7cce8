package token_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tokenseal/tokenseal/internal/softhsmtest"
	"github.com/tokenseal/tokenseal/token"
)

// wantSoftHSM2 is what SoftHSM2 2.6.1 really does, as the trials must find
// it: OAEP only with SHA-1 (SHA-256 is refused with CKR_ARGUMENTS_BAD by
// both C_UnwrapKey and C_Decrypt), raw RSA, ECDH with CKD_NULL, ECDSA,
// RSA-PSS, C_GenerateRandom.
var wantSoftHSM2 = map[string]bool{
	token.CapOAEPUnwrapSHA1:    true,
	token.CapOAEPUnwrapSHA256:  false,
	token.CapOAEPDecryptSHA1:   true,
	token.CapOAEPDecryptSHA256: false,
	token.CapRSARaw:            true,
	token.CapECDH:              true,
	token.CapAESKeyWrapPad:     true, // offered; not tried
	token.CapECDSA:             true,
	token.CapRSAPSS:            true,
	token.CapRandom:            true,
	token.CapRSAKeyGen:         true,
	token.CapECKeyGen:          true,
}

func checkCapabilities(t *testing.T, d *token.Diagnosis) {
	t.Helper()
	if len(d.Capabilities) != len(token.Capabilities) {
		t.Fatalf("%d capabilities, want %d", len(d.Capabilities), len(token.Capabilities))
	}
	for _, c := range d.Capabilities {
		want, ok := wantSoftHSM2[c.Name]
		if !ok {
			t.Errorf("capability %s not covered by the test", c.Name)
			continue
		}
		if c.Supported() != want {
			t.Errorf("%s: supported=%v (offered=%v trial=%s %s), want %v", c.Name, c.Supported(), c.Offered, c.Trial, c.Detail, want)
		}
		if !c.Offered {
			t.Errorf("%s: SoftHSM2 lists it in C_GetMechanismInfo, report says not offered", c.Name)
		}
	}
}

func TestDiagnoseTemporaryKeys(t *testing.T) {
	st := softhsmtest.New(t)
	d := token.Diagnose(token.Config{Module: st.Module, Token: st.Label, PIN: st.PIN})
	if len(d.Problems) != 0 {
		t.Fatalf("problems: %v", d.Problems)
	}
	if d.Login != token.LoginOK || !d.TrialsRun {
		t.Fatalf("login %s trials %v", d.Login, d.TrialsRun)
	}
	if d.Module == nil || d.Module.Path != st.Module || d.Module.Manufacturer != "SoftHSM" || d.Module.CryptokiVersion == "" || d.Module.LibraryVersion == "" {
		t.Errorf("module info: %+v", d.Module)
	}
	if d.Token == nil || d.Token.Label != st.Label || d.Token.Serial != st.Serial {
		t.Fatalf("token: %+v", d.Token)
	}
	checkCapabilities(t, d)
	// With no keys on the token, the trials ran on temporary pairs.
	for _, name := range []string{token.CapOAEPUnwrapSHA1, token.CapECDH, token.CapECDSA, token.CapRSAPSS} {
		c := d.Capability(name)
		if c.Trial != token.TrialOK || !strings.Contains(c.Detail, "temporary session") {
			t.Errorf("%s: trial %s %q, want ok on a temporary session pair", name, c.Trial, c.Detail)
		}
	}
	if c := d.Capability(token.CapOAEPUnwrapSHA256); c.Trial != token.TrialRefused || !strings.Contains(c.Detail, "CKR_ARGUMENTS_BAD") {
		t.Errorf("unwrap sha256: %s %q", c.Trial, c.Detail)
	}
	if c := d.Capability(token.CapRSAKeyGen); c.Trial != token.TrialOK {
		t.Errorf("rsa key gen: %s %q", c.Trial, c.Detail)
	}
	if len(d.Keys) != 0 {
		t.Errorf("keys: %+v", d.Keys)
	}

	// Nothing was left behind: the token has no objects at all.
	tok, err := token.Open(token.Config{Module: st.Module, Token: st.Label, PIN: st.PIN})
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	n, err := tok.CountObjects()
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d objects left on the token after Diagnose", n)
	}
}

func TestDiagnoseExistingKeys(t *testing.T) {
	st := softhsmtest.New(t)
	cfg := token.Config{Module: st.Module, Token: st.Label, PIN: st.PIN}
	tok, err := token.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct{ label, typ, usage string }{
		{"rx", "rsa-2048", "exchange"}, {"ex", "p256", "exchange"}, {"ex384", "p384", "exchange"},
		{"es", "p256", "sign"}, {"rs", "rsa-2048", "sign"}, {"es384", "p384", "sign"},
	} {
		generate(t, tok, k.label, k.typ, k.usage)
	}
	before, err := tok.CountObjects()
	if err != nil {
		t.Fatal(err)
	}
	tok.Close()

	d := token.Diagnose(cfg)
	if len(d.Problems) != 0 {
		t.Fatalf("problems: %v", d.Problems)
	}
	checkCapabilities(t, d)
	for _, name := range []string{token.CapOAEPUnwrapSHA1, token.CapOAEPDecryptSHA1, token.CapRSARaw, token.CapECDH, token.CapECDSA, token.CapRSAPSS} {
		if c := d.Capability(name); !strings.HasPrefix(c.Detail, "on key ") {
			t.Errorf("%s: ran %q, want on an existing key", name, c.Detail)
		}
	}
	if c := d.Capability(token.CapRSAKeyGen); c.Trial != token.TrialNotTried {
		t.Errorf("rsa key gen tried without need: %s %q", c.Trial, c.Detail)
	}
	got := map[string]token.KeyDiagnosis{}
	for _, k := range d.Keys {
		got[k.Label] = k
	}
	if k := got["rx"]; k.OAEPPathSHA1 != token.PathUnwrap || k.OAEPPathSHA256 != token.PathRaw || k.ExportHash != "sha1" || k.Problem != "" {
		t.Errorf("rx: %+v", k)
	}
	for _, l := range []string{"ex", "ex384"} {
		if k := got[l]; !k.Derive || k.Problem != "" || k.Sign != "" {
			t.Errorf("%s: %+v", l, k)
		}
	}
	if k := got["es"]; k.Sign != "ecdsa" || k.Derive {
		t.Errorf("es: %+v", k)
	}
	if k := got["rs"]; k.Sign != "rsa-pss" || k.OAEPPathSHA1 != "" {
		t.Errorf("rs: %+v", k)
	}
	if !strings.Contains(strings.Join(d.Notes, "\n"), `key "es384": envelopes are signed with P-256`) {
		t.Errorf("no note about the P-384 signing key: %q", d.Notes)
	}

	tok, err = token.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	after, err := tok.CountObjects()
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("%d objects before Diagnose, %d after", before, after)
	}
}

func TestDiagnoseWithoutPIN(t *testing.T) {
	st := softhsmtest.New(t)
	d := token.Diagnose(token.Config{Module: st.Module, Token: st.Label})
	if len(d.Problems) != 0 {
		t.Fatalf("problems: %v", d.Problems)
	}
	if d.Login != token.LoginSkipped || d.TrialsRun {
		t.Errorf("login %s trials %v", d.Login, d.TrialsRun)
	}
	for _, c := range d.Capabilities {
		if c.Trial != token.TrialNotTried || !c.Offered || !c.Supported() {
			t.Errorf("%s: offered=%v trial=%s supported=%v", c.Name, c.Offered, c.Trial, c.Supported())
		}
	}
	if !strings.Contains(strings.Join(d.Notes, "\n"), "trials skipped") {
		t.Errorf("notes: %q", d.Notes)
	}
}

func TestDiagnoseFailures(t *testing.T) {
	st := softhsmtest.New(t)
	d := token.Diagnose(token.Config{Module: st.Module, Token: st.Label, PIN: "wrong"})
	if d.Login != token.LoginFailed || len(d.Problems) != 1 || !errors.Is(d.Problems[0], token.ErrLoginFailed) {
		t.Errorf("wrong pin: login %s problems %v", d.Login, d.Problems)
	}
	d = token.Diagnose(token.Config{Module: st.Module, Token: "no-such-token", PIN: st.PIN})
	if d.Module == nil || len(d.Slots) == 0 || d.Token != nil || len(d.Problems) != 1 || !errors.Is(d.Problems[0], token.ErrTokenNotFound) {
		t.Errorf("no token: module %v slots %d token %v problems %v", d.Module, len(d.Slots), d.Token, d.Problems)
	}
	d = token.Diagnose(token.Config{Module: "/nonexistent.so"})
	if d.Module != nil || len(d.Problems) != 1 || !errors.Is(d.Problems[0], token.ErrModuleNotFound) {
		t.Errorf("no module: %v", d.Problems)
	}
}
