// Package softhsmtest makes throwaway SoftHSM2 tokens for tests.
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
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Default PINs of the tokens made here.
const (
	SOPIN = "5678-so"
	PIN   = "1234-user"
)

// InstallHint tells how to get SoftHSM2.
const InstallHint = "install SoftHSM2 (scripts/install-deps.sh, or apt-get install softhsm2 opensc), or set TOKENSEAL_TEST_MODULE"

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

// modulePaths are where Debian, Ubuntu, Fedora and /usr/local put SoftHSM2.
var modulePaths = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
	"/usr/lib64/pkcs11/libsofthsm2.so",
	"/usr/lib/pkcs11/libsofthsm2.so",
}

// FindModule returns TOKENSEAL_TEST_MODULE or the first SoftHSM2 module
// found in the usual places.
func FindModule() (string, error) {
	if p := os.Getenv("TOKENSEAL_TEST_MODULE"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("TOKENSEAL_TEST_MODULE=%s: %w", p, err)
		}
		return p, nil
	}
	for _, p := range modulePaths {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("softhsm2 module not found; " + InstallHint)
}

// Make creates a token under dir (which must exist) without touching the
// process environment; the caller sets SOFTHSM2_CONF=tok.Conf wherever the
// module will be loaded. It is what [New] uses and what testscript Setup
// functions call.
func Make(dir string) (*Token, error) {
	module, err := FindModule()
	if err != nil {
		return nil, err
	}
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		return nil, errors.New("softhsm2-util not found; " + InstallHint)
	}
	tokDir := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokDir, 0o700); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokDir)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return nil, err
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	tok := &Token{Module: module, Conf: conf, Dir: dir, Label: "test-" + hex.EncodeToString(rnd[:]), SOPIN: SOPIN, PIN: PIN}
	cmd := exec.Command(util, "--init-token", "--free", "--label", tok.Label,
		"--so-pin", tok.SOPIN, "--pin", tok.PIN, "--module", module)
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+conf)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("softhsm2-util --init-token: %v: %s", err, strings.TrimSpace(string(out)))
	}
	// "The token has been initialized and is reassigned to slot N"
	cmd = exec.Command(util, "--show-slots", "--module", module)
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+conf)
	out, err = cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("softhsm2-util --show-slots: %v: %s", err, strings.TrimSpace(string(out)))
	}
	if m := regexp.MustCompile(`Serial number:\s+([0-9a-f]+)`).FindSubmatch(out); m != nil {
		tok.Serial = string(m[1])
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
