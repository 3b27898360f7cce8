// Command p11oneshot is the floor that scripts/bench.sh holds a one-shot
// `tokenseal open` to: the PKCS#11 steps of recovering a file key and
// nothing else, straight on github.com/miekg/pkcs11 (outside token/ on
// purpose, so that it measures the token and not tokenseal's binding).
// Load the module, initialise, find the token by label, open a session,
// log in, find the P-256 private key by CKA_LABEL, C_DeriveKey
// CKM_ECDH1_DERIVE (CKD_NULL) into a session CKK_GENERIC_SECRET, read its
// CKA_VALUE, destroy it, log out, close, finalise.
//
//	p11oneshot [-module PATH] [-token LABEL] [-pin-file FILE] -key LABEL
//
// The module, token and PIN default to TOKENSEAL_MODULE, TOKENSEAL_TOKEN
// and TOKENSEAL_PIN_FILE (or TOKENSEAL_PIN).
package main

import (
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/miekg/pkcs11"
)

func main() {
	module := flag.String("module", os.Getenv("TOKENSEAL_MODULE"), "PKCS#11 module `PATH`")
	tokenLabel := flag.String("token", os.Getenv("TOKENSEAL_TOKEN"), "token `LABEL`")
	pinFile := flag.String("pin-file", os.Getenv("TOKENSEAL_PIN_FILE"), "user PIN `FILE` (else TOKENSEAL_PIN)")
	key := flag.String("key", "", "CKA_LABEL of the P-256 exchange private key")
	flag.Parse()
	if err := run(*module, *tokenLabel, *pinFile, *key); err != nil {
		fmt.Fprintln(os.Stderr, "p11oneshot: error:", err)
		os.Exit(1)
	}
}

func run(module, tokenLabel, pinFile, key string) error {
	pin := os.Getenv("TOKENSEAL_PIN")
	if pinFile != "" {
		b, err := os.ReadFile(pinFile)
		if err != nil {
			return err
		}
		pin = strings.TrimSuffix(string(b), "\n")
	}
	if module == "" || key == "" {
		return errors.New("need -module and -key")
	}
	eph, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	peer := eph.PublicKey().Bytes()

	p := pkcs11.New(module)
	if p == nil {
		return fmt.Errorf("cannot load %s", module)
	}
	defer p.Destroy()
	if err := p.Initialize(); err != nil {
		return fmt.Errorf("C_Initialize: %w", err)
	}
	defer p.Finalize()
	slot, err := findSlot(p, tokenLabel)
	if err != nil {
		return err
	}
	sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return fmt.Errorf("C_OpenSession: %w", err)
	}
	defer p.CloseSession(sh)
	if err := p.Login(sh, pkcs11.CKU_USER, pin); err != nil {
		return fmt.Errorf("C_Login: %w", err)
	}
	defer p.Logout(sh)
	priv, err := findKey(p, sh, key)
	if err != nil {
		return err
	}
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDH1_DERIVE,
		pkcs11.NewECDH1DeriveParams(pkcs11.CKD_NULL, nil, peer))}
	obj, err := p.DeriveKey(sh, mech, priv, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
	})
	if err != nil {
		return fmt.Errorf("C_DeriveKey: %w", err)
	}
	attrs, err := p.GetAttributeValue(sh, obj, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
	if err != nil {
		return fmt.Errorf("C_GetAttributeValue: %w", err)
	}
	if len(attrs[0].Value) != 32 {
		return fmt.Errorf("shared secret is %d bytes, expected 32", len(attrs[0].Value))
	}
	clear(attrs[0].Value)
	if err := p.DestroyObject(sh, obj); err != nil {
		return fmt.Errorf("C_DestroyObject: %w", err)
	}
	return nil
}

// findSlot returns the slot whose token has label (SoftHSM2 pads labels
// with spaces), or the only token when label is empty.
func findSlot(p *pkcs11.Ctx, label string) (uint, error) {
	slots, err := p.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("C_GetSlotList: %w", err)
	}
	var found []uint
	for _, s := range slots {
		ti, err := p.GetTokenInfo(s)
		if err != nil {
			continue
		}
		if label == "" || strings.TrimRight(ti.Label, " \x00") == label {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		return 0, fmt.Errorf("%d tokens match %q", len(found), label)
	}
	return found[0], nil
}

// findKey returns the one private key with CKA_LABEL label.
func findKey(p *pkcs11.Ctx, sh pkcs11.SessionHandle, label string) (pkcs11.ObjectHandle, error) {
	if err := p.FindObjectsInit(sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}); err != nil {
		return 0, fmt.Errorf("C_FindObjectsInit: %w", err)
	}
	defer p.FindObjectsFinal(sh)
	hs, _, err := p.FindObjects(sh, 2)
	if err != nil {
		return 0, fmt.Errorf("C_FindObjects: %w", err)
	}
	if len(hs) != 1 {
		return 0, fmt.Errorf("%d private keys labelled %q", len(hs), label)
	}
	return hs[0], nil
}
