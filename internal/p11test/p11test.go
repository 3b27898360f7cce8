// Package p11test makes throwaway tokens of three real PKCS#11
// implementations for tests: SoftHSM2, tpm2-pkcs11 on the swtpm TPM
// simulator, and opencryptoki's soft token.
//
// # The three tokens
//
//   - [SoftHSM2]: a softhsm2.conf and token directory in a temporary
//     directory (SOFTHSM2_CONF), the token made with softhsm2-util before
//     any module is loaded (SoftHSM2 does not see tokens created after
//     C_Initialize).
//   - [TPM2]: swtpm on two free ports, a private D-Bus session bus and
//     tpm2-abrmd in front of it (a TPM holds three loaded objects; the
//     resource manager swaps them, as /dev/tpmrm0 does on a real host),
//     a tpm2-pkcs11 store in the temporary directory (TPM2_PKCS11_STORE,
//     TPM2_PKCS11_TCTI), the token made with pkcs11-tool. Every process is
//     stopped by its PID when the test ends.
//   - [OpenCryptoki]: the machine's one pkcsslotd (started when not
//     running) and its one soft token in slot 3, re-initialised for each
//     test. Tests using it are serialised across processes with an flock
//     on a fixed file, since the token and CLI test packages run in
//     parallel.
//
// A component that is missing or does not start fails the test with an
// install hint; nothing is ever skipped.
//
// # Using it
//
// [Each] runs a subtest per kind; [New] makes one token and points the
// process environment at it (so the test must not be parallel); [Make]
// does the same without touching the environment, for testscript Setup
// functions and subprocesses ([Token.Env]).
package p11test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Kind names a PKCS#11 implementation.
type Kind string

// The implementations tests run on.
const (
	SoftHSM2     Kind = "softhsm2"
	TPM2         Kind = "tpm2"
	OpenCryptoki Kind = "opencryptoki"
)

// Kinds lists every implementation, in the order tests run them.
var Kinds = []Kind{SoftHSM2, TPM2, OpenCryptoki}

// InstallHint says how to get every component.
const InstallHint = "run scripts/install-deps.sh (softhsm2 opensc swtpm swtpm-tools libtpm2-pkcs11-1 tpm2-abrmd libtss2-tcti-tabrmd0 dbus-daemon opencryptoki)"

// Caps is what a kind's token offers tokenseal, as measured on the Debian
// 12 packages (SoftHSM2 2.6.1, tpm2-pkcs11 1.9.0 over swtpm 0.7.1,
// opencryptoki 3.8.1's soft token). Tests assert tokenseal's refusal where
// a capability is missing.
type Caps struct {
	RSAMinBits, RSAMaxBits int  // CKM_RSA_PKCS_KEY_PAIR_GEN key sizes
	EC                     bool // EC key pairs
	ECDH                   bool // CKM_ECDH1_DERIVE
	SessionObjects         bool // CKA_TOKEN false objects
	PSS                    bool // CKM_RSA_PKCS_PSS signatures (over a digest)
	ManyTokens             bool // more than one token per module
	SameLabels             bool // several tokens of one module may share a label
	SameSerials            bool // every token of the module has the same serial
	MinPIN, MaxPIN         int  // ulMinPinLen, ulMaxPinLen
}

var caps = map[Kind]Caps{
	SoftHSM2:     {RSAMinBits: 512, RSAMaxBits: 16384, EC: true, ECDH: true, SessionObjects: true, PSS: true, ManyTokens: true, SameLabels: true, MinPIN: 4, MaxPIN: 255},
	TPM2:         {RSAMinBits: 1024, RSAMaxBits: 3072, EC: true, ManyTokens: true, SameSerials: true, MinPIN: 0, MaxPIN: 128},
	OpenCryptoki: {RSAMinBits: 512, RSAMaxBits: 4096, SessionObjects: true, PSS: true, MinPIN: 4, MaxPIN: 8},
}

// Token is a token made for a test.
type Token struct {
	Kind   Kind
	Module string // module path
	Label  string
	Serial string
	Slot   uint
	PIN    string // user PIN
	SOPIN  string
	Dir    string // the temporary directory holding its files

	env    []string // NAME=value the module needs
	addTok func(label string) (*Token, error)
}

// Caps returns what the token's implementation offers.
func (tok *Token) Caps() Caps { return caps[tok.Kind] }

// ModuleEnv returns the NAME=value settings the module needs
// (SOFTHSM2_CONF; TPM2_PKCS11_TCTI, TPM2_PKCS11_STORE and
// DBUS_SESSION_BUS_ADDRESS; none for opencryptoki).
func (tok *Token) ModuleEnv() []string { return append([]string(nil), tok.env...) }

// Env returns what a tokenseal subprocess needs to use the token: the
// module's settings, TOKENSEAL_MODULE, TOKENSEAL_TOKEN and TOKENSEAL_PIN.
func (tok *Token) Env() []string {
	return append(tok.ModuleEnv(),
		"TOKENSEAL_MODULE="+tok.Module,
		"TOKENSEAL_TOKEN="+tok.Label,
		"TOKENSEAL_PIN="+tok.PIN)
}

// AddToken makes another token in the same module, with its own label
// (which may repeat one already there) and the same PINs. It fails for a
// kind that has one token only (see [Caps].ManyTokens).
func (tok *Token) AddToken(label string) (*Token, error) {
	if tok.addTok == nil {
		return nil, fmt.Errorf("p11test: %s has one token only", tok.Kind)
	}
	return tok.addTok(label)
}

// Make makes a token of kind under dir (which must exist) without
// touching the process environment. The returned function stops what was
// started and releases locks; call it when done, also after an error.
func Make(dir string, kind Kind) (*Token, func(), error) {
	switch kind {
	case SoftHSM2:
		tok, err := makeSoftHSM(dir, uniqueLabel())
		return tok, func() {}, err
	case TPM2:
		return makeTPM(dir)
	case OpenCryptoki:
		return makeOpenCryptoki()
	}
	return nil, func() {}, fmt.Errorf("p11test: unknown kind %q", kind)
}

// New makes a token of kind for t in a temporary directory and sets the
// module's environment for the rest of the test (so t must not be
// parallel). Call it before the module is loaded.
func New(t testing.TB, kind Kind) *Token {
	t.Helper()
	tok, stop, err := Make(t.TempDir(), kind)
	t.Cleanup(stop)
	if err != nil {
		t.Fatalf("p11test: %s: %v", kind, err)
	}
	for _, kv := range tok.env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return tok
}

// Each runs f as a subtest for each kind, one after the other, with a
// fresh token made by [New].
func Each(t *testing.T, f func(t *testing.T, tok *Token)) {
	t.Helper()
	for _, k := range Kinds {
		t.Run(string(k), func(t *testing.T) { f(t, New(t, k)) })
	}
}

func uniqueLabel() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return "test-" + hex.EncodeToString(b[:])
}

// run runs a helper program with extra environment and returns its
// combined output, or an error quoting it.
func run(env []string, name string, args ...string) ([]byte, error) {
	return runIn("", env, name, args...)
}

func runIn(dir string, env []string, name string, args ...string) ([]byte, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("%s not found; %s", name, InstallHint)
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %v: %s", name, strings.Join(redact(args), " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// redact hides the values of PIN options in error messages.
func redact(args []string) []string {
	out := append([]string(nil), args...)
	for i := 1; i < len(out); i++ {
		if strings.HasSuffix(out[i-1], "pin") {
			out[i] = "***"
		}
	}
	return out
}

func findFile(what string, paths ...string) (string, error) {
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found; %s", what, InstallHint)
}

// pkcs11Slot is one slot of `pkcs11-tool -L`.
type pkcs11Slot struct {
	id            uint
	label, serial string
	uninitialized bool
}

// listSlots parses `pkcs11-tool --module M -L`.
func listSlots(env []string, module string) ([]pkcs11Slot, error) {
	out, err := run(env, "pkcs11-tool", "--module", module, "-L")
	if err != nil {
		return nil, err
	}
	var slots []pkcs11Slot
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		var n, id uint
		if _, err := fmt.Sscanf(line, "Slot %d (0x%x):", &n, &id); err == nil {
			slots = append(slots, pkcs11Slot{id: id})
			continue
		}
		if len(slots) == 0 {
			continue
		}
		s := &slots[len(slots)-1]
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "token label":
			s.label = strings.TrimSpace(v)
		case "serial num":
			s.serial = strings.TrimSpace(v)
		case "token state":
			s.uninitialized = strings.TrimSpace(v) == "uninitialized"
		}
	}
	return slots, nil
}

// initWithTool initialises the token in slot with pkcs11-tool and sets
// its user PIN.
func initWithTool(env []string, module string, slot uint, label, soPIN, pin string) error {
	s := fmt.Sprintf("0x%x", slot)
	if _, err := run(env, "pkcs11-tool", "--module", module, "--slot", s, "--init-token", "--label", label, "--so-pin", soPIN); err != nil {
		return err
	}
	_, err := run(env, "pkcs11-tool", "--module", module, "--slot", s, "--init-pin", "--so-pin", soPIN, "--pin", pin)
	return err
}

// lookUp finds the initialised token in slot.
func lookUp(env []string, module string, slot uint) (pkcs11Slot, error) {
	slots, err := listSlots(env, module)
	if err != nil {
		return pkcs11Slot{}, err
	}
	for _, s := range slots {
		if s.id == slot && !s.uninitialized {
			return s, nil
		}
	}
	return pkcs11Slot{}, fmt.Errorf("no initialised token in slot %d after pkcs11-tool --init-token", slot)
}

// inSlot is tok's sibling: the token just initialised with label in slot.
func (tok *Token) inSlot(label string, slot uint) (*Token, error) {
	s, err := lookUp(tok.env, tok.Module, slot)
	if err != nil {
		return nil, err
	}
	nt := *tok
	nt.Label, nt.Serial, nt.Slot = label, s.serial, slot
	return &nt, nil
}

var errNoFreeSlot = errors.New("no slot with an uninitialised token")

func freeSlot(env []string, module string) (uint, error) {
	slots, err := listSlots(env, module)
	if err != nil {
		return 0, err
	}
	for _, s := range slots {
		if s.uninitialized {
			return s.id, nil
		}
	}
	return 0, errNoFreeSlot
}

// Tool runs pkcs11-tool on the token's module and slot with the module's
// environment, e.g. Tool("--write-object", "pub.der", "--type", "pubkey")
// writes a public-key object without logging in, as anyone with access to
// the token could.
func (tok *Token) Tool(args ...string) ([]byte, error) {
	return tok.ToolIn("", args...)
}

// ToolIn is [Token.Tool] run in directory dir.
func (tok *Token) ToolIn(dir string, args ...string) ([]byte, error) {
	return runIn(dir, tok.env, "pkcs11-tool", append([]string{"--module", tok.Module, "--slot", fmt.Sprintf("0x%x", tok.Slot)}, args...)...)
}
