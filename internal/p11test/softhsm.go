package p11test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
)

// PINs of the SoftHSM2 and tpm2-pkcs11 tokens made here.
const (
	SOPIN = "5678-so"
	PIN   = "1234-user"
)

// SoftHSMModule returns TOKENSEAL_TEST_MODULE or the first SoftHSM2
// module found in the usual places.
func SoftHSMModule() (string, error) {
	if p := os.Getenv("TOKENSEAL_TEST_MODULE"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("TOKENSEAL_TEST_MODULE=%s: %w", p, err)
		}
		return p, nil
	}
	return findFile("softhsm2 module",
		"/usr/lib/softhsm/libsofthsm2.so",
		"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
		"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
		"/usr/local/lib/softhsm/libsofthsm2.so",
		"/usr/lib64/pkcs11/libsofthsm2.so",
		"/usr/lib/pkcs11/libsofthsm2.so")
}

var reassignedRE = regexp.MustCompile(`reassigned to slot (\d+)`)

// makeSoftHSM writes a softhsm2.conf under dir and makes a token there
// with softhsm2-util.
func makeSoftHSM(dir, label string) (*Token, error) {
	module, err := SoftHSMModule()
	if err != nil {
		return nil, err
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
	tok := &Token{Kind: SoftHSM2, Module: module, Dir: dir, SOPIN: SOPIN, PIN: PIN, env: []string{"SOFTHSM2_CONF=" + conf}}
	tok.addTok = func(label string) (*Token, error) { return tok.softhsmToken(label) }
	first, err := tok.softhsmToken(label)
	if err != nil {
		return nil, err
	}
	tok.Label, tok.Serial, tok.Slot = first.Label, first.Serial, first.Slot
	return tok, nil
}

// softhsmToken initialises one more token in tok's token directory.
func (tok *Token) softhsmToken(label string) (*Token, error) {
	out, err := run(tok.env, "softhsm2-util", "--init-token", "--free", "--label", label,
		"--so-pin", tok.SOPIN, "--pin", tok.PIN, "--module", tok.Module)
	if err != nil {
		return nil, err
	}
	// "The token has been initialized and is reassigned to slot N"
	var slot uint
	if m := reassignedRE.FindSubmatch(out); m != nil {
		fmt.Sscan(string(m[1]), &slot)
	}
	return tok.inSlot(label, slot)
}
