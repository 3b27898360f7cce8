// Package softhsmtest makes throwaway SoftHSM2 tokens for tests. It is a
// thin layer over [p11test], kept for the tests that need SoftHSM2 only;
// tests that run on every implementation use p11test directly.
//
// [New] writes a softhsm2.conf in a temporary directory, points
// SOFTHSM2_CONF at it, and creates a token with a unique label through
// softhsm2-util, before the test loads the module: SoftHSM2 does not see
// tokens created after the module was initialised in a process. A missing
// SoftHSM2 fails the test with an install hint; it never skips.
//
// Environment: TOKENSEAL_TEST_MODULE overrides the module path.
package softhsmtest

import (
	"strings"
	"testing"

	"github.com/tokenseal/tokenseal/internal/p11test"
)

// Default PINs of the tokens made here.
const (
	SOPIN = p11test.SOPIN
	PIN   = p11test.PIN
)

// InstallHint tells how to get SoftHSM2.
const InstallHint = p11test.InstallHint

// Token is a SoftHSM2 token made for a test.
type Token struct {
	Module string // module path
	Conf   string // the softhsm2.conf written (SOFTHSM2_CONF)
	Dir    string // the directory holding Conf and tokens/
	Label  string
	Serial string
	SOPIN  string
	PIN    string
}

// Env returns the environment a subprocess needs to use the token.
func (tok *Token) Env() []string {
	return []string{
		"SOFTHSM2_CONF=" + tok.Conf,
		"TOKENSEAL_MODULE=" + tok.Module,
		"TOKENSEAL_TOKEN=" + tok.Label,
		"TOKENSEAL_PIN=" + tok.PIN,
	}
}

// FindModule returns TOKENSEAL_TEST_MODULE or the first SoftHSM2 module
// found in the usual places.
func FindModule() (string, error) { return p11test.SoftHSMModule() }

// Make creates a token under dir (which must exist) without touching the
// process environment; the caller sets SOFTHSM2_CONF=tok.Conf wherever the
// module will be loaded. It is what [New] uses and what testscript Setup
// functions call.
func Make(dir string) (*Token, error) {
	pt, _, err := p11test.Make(dir, p11test.SoftHSM2)
	if err != nil {
		return nil, err
	}
	tok := &Token{Module: pt.Module, Dir: pt.Dir, Label: pt.Label, Serial: pt.Serial, SOPIN: pt.SOPIN, PIN: pt.PIN}
	for _, kv := range pt.ModuleEnv() {
		if v, ok := strings.CutPrefix(kv, "SOFTHSM2_CONF="); ok {
			tok.Conf = v
		}
	}
	return tok, nil
}

// New creates a token for t in a temporary directory and sets
// SOFTHSM2_CONF for the rest of the test (so t must not be parallel). Call
// it before the module is loaded. The directory is removed by t.Cleanup.
func New(t testing.TB) *Token {
	t.Helper()
	tok, err := Make(t.TempDir())
	if err != nil {
		t.Fatalf("softhsmtest: %v", err)
	}
	t.Setenv("SOFTHSM2_CONF", tok.Conf)
	return tok
}
