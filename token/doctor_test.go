package token_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tokenseal/tokenseal/internal/p11test"
	"github.com/tokenseal/tokenseal/token"
)

// wantCaps is what each implementation really does, as the trials must
// find it on a token with no keys (temporary key pairs made with the
// real template). SoftHSM2 2.6.1: OAEP only with SHA-1 (SHA-256 refused
// with CKR_ARGUMENTS_BAD); tpm2-pkcs11 1.9.0: OAEP by C_Decrypt only, no
// ECDH, no CKM_RSA_PKCS_PSS, no session objects; opencryptoki 3.8.1: no
// unwrap into a readable object, no EC.
var wantCaps = map[p11test.Kind]map[string]bool{
	p11test.SoftHSM2: {
		token.CapOAEPUnwrapSHA1: true, token.CapOAEPUnwrapSHA256: false, token.CapOAEPDecryptSHA1: true,
		token.CapOAEPDecryptSHA256: false, token.CapRSARaw: true, token.CapECDH: true, token.CapAESKeyWrapPad: true,
		token.CapECDSA: true, token.CapRSAPSS: true, token.CapRSARawSign: true, token.CapRandom: true,
		token.CapRSAKeyGen: true, token.CapECKeyGen: true,
	},
	p11test.TPM2: {
		token.CapOAEPUnwrapSHA1: false, token.CapOAEPUnwrapSHA256: false, token.CapOAEPDecryptSHA1: true,
		token.CapOAEPDecryptSHA256: true, token.CapRSARaw: true, token.CapECDH: false, token.CapAESKeyWrapPad: false,
		token.CapECDSA: true, token.CapRSAPSS: false, token.CapRSARawSign: false, token.CapRandom: true,
		token.CapRSAKeyGen: true, token.CapECKeyGen: true,
	},
	p11test.OpenCryptoki: {
		token.CapOAEPUnwrapSHA1: false, token.CapOAEPUnwrapSHA256: false, token.CapOAEPDecryptSHA1: true,
		token.CapOAEPDecryptSHA256: true, token.CapRSARaw: true, token.CapECDH: false, token.CapAESKeyWrapPad: false,
		token.CapECDSA: false, token.CapRSAPSS: true, token.CapRSARawSign: true, token.CapRandom: true,
		token.CapRSAKeyGen: true, token.CapECKeyGen: false,
	},
}

func checkCapabilities(t *testing.T, kind p11test.Kind, d *token.Diagnosis) {
	t.Helper()
	want := wantCaps[kind]
	if len(d.Capabilities) != len(token.Capabilities) || len(want) != len(token.Capabilities) {
		t.Fatalf("%d capabilities, want %d", len(d.Capabilities), len(token.Capabilities))
	}
	for _, c := range d.Capabilities {
		if c.Supported() != want[c.Name] {
			t.Errorf("%s: supported=%v (offered=%v trial=%s %s), want %v", c.Name, c.Supported(), c.Offered, c.Trial, c.Detail, want[c.Name])
		}
	}
}

// countObjects opens pt's token and counts its objects.
func countObjects(t *testing.T, pt *p11test.Token) int {
	t.Helper()
	tok := openToken(t, pt)
	defer tok.Close()
	n, err := tok.CountObjects()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDiagnoseTemporaryKeys runs doctor on tokens without keys: the
// trials run on temporary pairs made with the real template (token
// objects on tpm2-pkcs11, which makes no session objects), none is left
// behind, and the report never says all is well unless something was
// really opened (issue 10: "problems: none" on a token where nothing
// could be generated or opened).
func TestDiagnoseTemporaryKeys(t *testing.T) {
	p11test.Each(t, func(t *testing.T, pt *p11test.Token) {
		d := token.Diagnose(token.Config{Module: pt.Module, Token: pt.Label, PIN: pt.PIN})
		if len(d.Problems) != 0 {
			t.Fatalf("problems: %v", d.Problems)
		}
		if d.Login != token.LoginOK || !d.TrialsRun || d.Module == nil || d.Module.Path != pt.Module {
			t.Fatalf("login %s trials %v module %+v", d.Login, d.TrialsRun, d.Module)
		}
		if d.Token == nil || d.Token.Label != pt.Label || d.Token.Slot != pt.Slot {
			t.Fatalf("token: %+v", d.Token)
		}
		checkCapabilities(t, pt.Kind, d)
		opened := false
		for _, c := range d.Capabilities {
			if c.Trial == token.TrialOK && strings.HasPrefix(c.Name, "rsa_") && strings.Contains(c.Name, "crypt") || c.Name == token.CapECDH && c.Trial == token.TrialOK {
				opened = true
				if !strings.Contains(c.Detail, "temporary") {
					t.Errorf("%s: ran %q, want on a temporary pair", c.Name, c.Detail)
				}
			}
		}
		if !opened {
			t.Error("no problems reported, yet no trial opened anything")
		}
		if d.TokenObjects != !pt.Caps().SessionObjects {
			t.Errorf("temporary pairs as token objects: %v", d.TokenObjects)
		}
		if c := d.Capability(token.CapRSAKeyGen); c.Trial != token.TrialOK {
			t.Errorf("rsa key gen: %s %q", c.Trial, c.Detail)
		}
		if len(d.Keys) != 0 {
			t.Errorf("keys: %+v", d.Keys)
		}
		if n := countObjects(t, pt); n != 0 {
			t.Errorf("%d objects left on the token after Diagnose", n)
		}
	})
}

func TestDiagnoseExistingKeys(t *testing.T) {
	p11test.Each(t, func(t *testing.T, pt *p11test.Token) {
		cfg := token.Config{Module: pt.Module, Token: pt.Label, PIN: pt.PIN}
		tok := openToken(t, pt)
		made := map[string]bool{}
		for _, c := range keyCases(pt.Caps()) {
			if c.refused == "" && c.typ != "rsa-4096" {
				generate(t, tok, c.label, c.typ, c.usage)
				made[c.label] = true
			}
		}
		before, _ := tok.CountObjects()
		tok.Close()
		d := token.Diagnose(cfg)
		if len(d.Problems) != 0 {
			t.Fatalf("problems: %v", d.Problems)
		}
		got := map[string]token.KeyDiagnosis{}
		for _, k := range d.Keys {
			got[k.Label] = k
			if !k.Generated || k.Problem != "" {
				t.Errorf("%s: %+v", k.Label, k)
			}
		}
		if len(got) != len(made) {
			t.Errorf("keys %v, made %v", got, made)
		}
		want := wantPaths[pt.Kind]
		if k := got["rsa2k-x"]; k.OAEPPathSHA1 != want.sha1 || k.OAEPPathSHA256 != want.sha256 || k.ExportHash != map[bool]string{true: "sha1", false: "sha256"}[want.export.String() == "SHA-1"] {
			t.Errorf("rsa2k-x: %+v", k)
		}
		if k, ok := got["p256-x"]; ok && (!k.Derive || k.Sign != "") {
			t.Errorf("p256-x: %+v", k)
		}
		if k, ok := got["p256-s"]; ok && (k.Sign != "ecdsa" || k.Derive) {
			t.Errorf("p256-s: %+v", k)
		}
		if k, ok := got["rsa2k-s"]; ok && (k.Sign != "rsa-pss" || k.OAEPPathSHA1 != "") {
			t.Errorf("rsa2k-s: %+v", k)
		}
		if made["p384-s"] && !strings.Contains(strings.Join(d.Notes, "\n"), `key "p384-s": envelopes are signed with P-256`) {
			t.Errorf("no note about the P-384 signing key: %q", d.Notes)
		}
		for _, name := range []string{token.CapOAEPDecryptSHA1, token.CapRSARaw} {
			if c := d.Capability(name); !strings.HasPrefix(c.Detail, "on key ") {
				t.Errorf("%s: ran %q, want on an existing key", name, c.Detail)
			}
		}
		if after := countObjects(t, pt); after != before {
			t.Errorf("%d objects before Diagnose, %d after", before, after)
		}
	})
}

func TestDiagnoseWithoutPIN(t *testing.T) {
	p11test.Each(t, func(t *testing.T, pt *p11test.Token) {
		d := token.Diagnose(token.Config{Module: pt.Module, Token: pt.Label})
		if len(d.Problems) != 0 {
			t.Fatalf("problems: %v", d.Problems)
		}
		if d.Login != token.LoginSkipped || d.TrialsRun || d.HavePIN {
			t.Errorf("login %s trials %v", d.Login, d.TrialsRun)
		}
		for _, c := range d.Capabilities {
			if c.Trial != token.TrialNotTried || c.Supported() != c.Offered {
				t.Errorf("%s: offered=%v trial=%s supported=%v", c.Name, c.Offered, c.Trial, c.Supported())
			}
		}
		if !strings.Contains(strings.Join(d.Notes, "\n"), "trials skipped") {
			t.Errorf("notes: %q", d.Notes)
		}
	})
}

func TestDiagnoseFailures(t *testing.T) {
	pt := p11test.New(t, p11test.SoftHSM2)
	d := token.Diagnose(token.Config{Module: pt.Module, Token: pt.Label, PIN: "wrong"})
	if d.Login != token.LoginFailed || len(d.Problems) != 1 || !errors.Is(d.Problems[0], token.ErrLoginFailed) {
		t.Errorf("wrong pin: login %s problems %v", d.Login, d.Problems)
	}
	d = token.Diagnose(token.Config{Module: pt.Module, Token: "no-such-token", PIN: pt.PIN})
	if d.Module == nil || len(d.Slots) == 0 || d.Token != nil || len(d.Problems) != 1 || !errors.Is(d.Problems[0], token.ErrTokenNotFound) {
		t.Errorf("no token: module %v slots %d token %v problems %v", d.Module, len(d.Slots), d.Token, d.Problems)
	}
	d = token.Diagnose(token.Config{Module: "/nonexistent.so"})
	if d.Module != nil || len(d.Problems) != 1 || !errors.Is(d.Problems[0], token.ErrModuleNotFound) {
		t.Errorf("no module: %v", d.Problems)
	}
}
