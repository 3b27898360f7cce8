package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/tokenseal/tokenseal/internal/p11test"
)

// TestTokenScripts runs testdata/tokens/*.txtar on every implementation
// p11test makes: SoftHSM2, tpm2-pkcs11 over swtpm, opencryptoki's soft
// token, each script on a fresh token. Where an implementation lacks
// something, the script asserts tokenseal's refusal under a condition.
//
// The script sees the module's environment, TOKENSEAL_MODULE,
// TOKENSEAL_TOKEN, TOKENSEAL_PIN, TOKENSEAL_STATE_DIR, and TOKEN_SERIAL,
// TOKEN_SLOT, SO_PIN, KIND, OAEP_HASH (the hash key export records).
// Conditions: the kind ([softhsm2], [tpm2], [opencryptoki]) and what it
// offers ([ec], [ecdh], [pss], [manytokens], [samelabels], [sameserials],
// [rsa4096]). Commands besides testscript's: exits, flipbyte, truncate
// (as in TestScripts), "addtoken LABEL" (another token of the module,
// its slot in $ADDED_SLOT), "swappub LABEL DER" (replace a key's
// public-key object by the key in DER, with pkcs11-tool and no PIN where
// the token allows), "p11tool ARGS..." (pkcs11-tool on the token's slot).
func TestTokenScripts(t *testing.T) {
	for _, kind := range p11test.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			testscript.Run(t, testscript.Params{
				Dir:       "testdata/tokens",
				Setup:     func(env *testscript.Env) error { return setupToken(env, kind) },
				Condition: func(cond string) (bool, error) { return tokenCondition(kind, cond) },
				Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
					"exits": cmdExits, "flipbyte": cmdFlipByte, "truncate": cmdTruncate,
					"addtoken": cmdAddToken, "swappub": cmdSwapPub, "p11tool": cmdP11Tool,
					"randfile": cmdRandFile, "cmsreorder": cmdCMSReorder,
				},
			})
		})
	}
}

const tokenValueKey = "p11test.Token"

func setupToken(env *testscript.Env, kind p11test.Kind) error {
	dir, err := os.MkdirTemp("", "tokenseal-"+string(kind)+"-")
	if err != nil {
		return err
	}
	env.Defer(func() { os.RemoveAll(dir) })
	tok, stop, err := p11test.Make(dir, kind)
	env.Defer(stop)
	if err != nil {
		return err
	}
	for _, kv := range tok.ModuleEnv() {
		k, v, _ := strings.Cut(kv, "=")
		env.Setenv(k, v)
	}
	hash := "sha256"
	if kind == p11test.SoftHSM2 {
		hash = "sha1" // SoftHSM2 2.6.1 unwraps OAEP with SHA-1 only
	}
	for k, v := range map[string]string{
		"TOKENSEAL_MODULE": tok.Module, "TOKENSEAL_TOKEN": tok.Label, "TOKENSEAL_PIN": tok.PIN,
		"TOKENSEAL_STATE_DIR": env.WorkDir + "/state", "TOKEN_SERIAL": tok.Serial,
		"TOKEN_SLOT": strconv.FormatUint(uint64(tok.Slot), 10), "SO_PIN": tok.SOPIN,
		"KIND": string(kind), "OAEP_HASH": hash,
		// The race detector sleeps a second at every exit by default.
		"GORACE": "atexit_sleep_ms=0",
	} {
		env.Setenv(k, v)
	}
	env.Values[tokenValueKey] = tok
	return nil
}

func tokenCondition(kind p11test.Kind, cond string) (bool, error) {
	c := (&p11test.Token{Kind: kind}).Caps()
	switch cond {
	case string(p11test.SoftHSM2), string(p11test.TPM2), string(p11test.OpenCryptoki):
		return cond == string(kind), nil
	case "ec":
		return c.EC, nil
	case "ecdh":
		return c.ECDH, nil
	case "pss":
		return c.PSS, nil
	case "manytokens":
		return c.ManyTokens, nil
	case "samelabels":
		return c.SameLabels, nil
	case "sameserials":
		return c.SameSerials, nil
	case "rsa4096":
		return c.RSAMaxBits >= 4096, nil
	}
	return false, fmt.Errorf("unknown condition %q", cond)
}

func scriptToken(ts *testscript.TestScript) *p11test.Token {
	return ts.Value(tokenValueKey).(*p11test.Token)
}

func cmdAddToken(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: addtoken LABEL")
	}
	more, err := scriptToken(ts).AddToken(args[0])
	ts.Check(err)
	ts.Setenv("ADDED_SLOT", strconv.FormatUint(uint64(more.Slot), 10))
}

func cmdP11Tool(ts *testscript.TestScript, neg bool, args []string) {
	out, err := scriptToken(ts).ToolIn(ts.Getenv("WORK"), args...)
	ts.Logf("%s", out)
	if neg != (err != nil) {
		ts.Fatalf("pkcs11-tool: %v", err)
	}
}

// cmdSwapPub replaces the public-key object of the key labelled LABEL by
// the public key in the DER file, as an attacker with access to the token
// but not its PIN would: delete the object, write the new one under the
// same label and CKA_ID. Where the token wants the PIN for that
// (tpm2-pkcs11) it logs in, as an insider would.
func cmdSwapPub(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: swappub LABEL DER")
	}
	ts.Check(ts.Exec("tokenseal", "key", "list", "--json"))
	var keys []keyJSON
	ts.Check(json.Unmarshal([]byte(ts.ReadFile("stdout")), &keys))
	id := ""
	for _, k := range keys {
		if k.Label == args[0] {
			id = k.ID
		}
	}
	if id == "" {
		ts.Fatalf("no key labelled %q", args[0])
	}
	tok := scriptToken(ts)
	var err error
	for _, login := range [][]string{nil, {"--login", "--pin", tok.PIN}} {
		if _, err = tok.Tool(append(login, "--delete-object", "--type", "pubkey", "--id", id)...); err != nil {
			continue
		}
		_, err = tok.Tool(append(login, "--write-object", ts.MkAbs(args[1]), "--type", "pubkey", "--id", id, "--label", args[0])...)
		ts.Logf("swapped the public key of %s (with the PIN: %v): %v", args[0], login != nil, err)
		break
	}
	ts.Check(err)
}
