// Command p11rate measures a token's raw file-key recovery rate for
// scripts/bench.sh, straight on github.com/miekg/pkcs11 (outside token/ on
// purpose: it is the ceiling tokenseal's batch open is held to). One
// login; for each session count S, S goroutines each with its own session
// run a fixed share of N operations, and the wall-clock rate is printed:
//
//	ecdh-p256 sessions=1 ops=10000 seconds=2.115 rate=4729.1
//
// ECDH is C_DeriveKey CKM_ECDH1_DERIVE (CKD_NULL) into a session
// CKK_GENERIC_SECRET, read CKA_VALUE, destroy. With -rsa-key, the same for
// C_UnwrapKey CKM_RSA_PKCS_OAEP (SHA-1, MGF1-SHA-1, as SoftHSM2 2.6.1
// allows) of a 32-byte key.
//
//	p11rate [-module PATH] [-token LABEL] [-pin-file FILE] -key LABEL [-rsa-key LABEL] [-n 10000] [-sessions 1,2]
package main

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/pkcs11"
)

func main() {
	module := flag.String("module", os.Getenv("TOKENSEAL_MODULE"), "PKCS#11 module `PATH`")
	tokenLabel := flag.String("token", os.Getenv("TOKENSEAL_TOKEN"), "token `LABEL`")
	pinFile := flag.String("pin-file", os.Getenv("TOKENSEAL_PIN_FILE"), "user PIN `FILE` (else TOKENSEAL_PIN)")
	ecKey := flag.String("key", "", "CKA_LABEL of a P-256 exchange private key")
	rsaKey := flag.String("rsa-key", "", "CKA_LABEL of an RSA exchange private key (optional)")
	n := flag.Int("n", 10000, "operations per measurement (split across sessions)")
	sessions := flag.String("sessions", "1,2", "comma-separated session counts")
	flag.Parse()
	if err := run(*module, *tokenLabel, *pinFile, *ecKey, *rsaKey, *n, *sessions); err != nil {
		fmt.Fprintln(os.Stderr, "p11rate: error:", err)
		os.Exit(1)
	}
}

func run(module, tokenLabel, pinFile, ecKey, rsaKey string, n int, sessionList string) error {
	pin, counts, err := args(pinFile, sessionList)
	if err != nil {
		return err
	}
	if module == "" || ecKey == "" || n < 1 {
		return errors.New("need -module, -key and -n >= 1")
	}
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

	derive, err := ecdhOp(p, sh, ecKey)
	if err != nil {
		return err
	}
	for _, c := range counts {
		if err := measure(p, slot, "ecdh-p256", c, n, derive); err != nil {
			return err
		}
	}
	if rsaKey == "" {
		return nil
	}
	unwrap, err := rsaOp(p, sh, rsaKey)
	if err != nil {
		return err
	}
	rn := max(n/10, 1) // RSA is about ten times slower
	for _, c := range counts {
		if err := measure(p, slot, "rsa3072-oaep-unwrap", c, rn, unwrap); err != nil {
			return err
		}
	}
	return nil
}

// args reads the PIN (from pinFile, else TOKENSEAL_PIN) and the session
// counts.
func args(pinFile, sessionList string) (string, []int, error) {
	pin := os.Getenv("TOKENSEAL_PIN")
	if pinFile != "" {
		b, err := os.ReadFile(pinFile)
		if err != nil {
			return "", nil, err
		}
		pin = strings.TrimSuffix(string(b), "\n")
	}
	var counts []int
	for _, f := range strings.Split(sessionList, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || c < 1 {
			return "", nil, fmt.Errorf("bad -sessions %q", sessionList)
		}
		counts = append(counts, c)
	}
	return pin, counts, nil
}

// op is one timed operation in a session; it returns the object made.
type op func(s pkcs11.SessionHandle) (pkcs11.ObjectHandle, error)

// ecdhOp derives with the P-256 key labelled label and a fixed
// ephemeral peer.
func ecdhOp(p *pkcs11.Ctx, sh pkcs11.SessionHandle, label string) (op, error) {
	ecPriv, err := findKey(p, sh, pkcs11.CKO_PRIVATE_KEY, label)
	if err != nil {
		return nil, err
	}
	eph, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	ecMech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDH1_DERIVE,
		pkcs11.NewECDH1DeriveParams(pkcs11.CKD_NULL, nil, eph.PublicKey().Bytes()))}
	ecTmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
	}
	return func(s pkcs11.SessionHandle) (pkcs11.ObjectHandle, error) {
		return p.DeriveKey(s, ecMech, ecPriv, ecTmpl)
	}, nil
}

// rsaOp unwraps, with the RSA key labelled label, a 32-byte key wrapped
// to its public key with OAEP SHA-1.
func rsaOp(p *pkcs11.Ctx, sh pkcs11.SessionHandle, label string) (op, error) {
	rsaPriv, err := findKey(p, sh, pkcs11.CKO_PRIVATE_KEY, label)
	if err != nil {
		return nil, err
	}
	rsaPub, err := findKey(p, sh, pkcs11.CKO_PUBLIC_KEY, label)
	if err != nil {
		return nil, err
	}
	a, err := p.GetAttributeValue(sh, rsaPub, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil),
		pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, nil),
	})
	if err != nil {
		return nil, fmt.Errorf("C_GetAttributeValue: %w", err)
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(a[0].Value), E: int(new(big.Int).SetBytes(a[1].Value).Int64())}
	ct, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, make([]byte, 32), nil)
	if err != nil {
		return nil, err
	}
	rsaMech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_OAEP,
		pkcs11.NewOAEPParams(pkcs11.CKM_SHA_1, pkcs11.CKG_MGF1_SHA1, pkcs11.CKZ_DATA_SPECIFIED, nil))}
	rsaTmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
	}
	return func(s pkcs11.SessionHandle) (pkcs11.ObjectHandle, error) {
		return p.UnwrapKey(s, rsaMech, rsaPriv, ct, rsaTmpl)
	}, nil
}

// measure runs n operations across s sessions (one goroutine each) and
// prints the wall-clock rate, after an untimed warm-up of n/10. Each
// operation makes a session key with op, reads its CKA_VALUE and destroys
// it.
func measure(p *pkcs11.Ctx, slot uint, name string, s, n int, op func(pkcs11.SessionHandle) (pkcs11.ObjectHandle, error)) error {
	shs := make([]pkcs11.SessionHandle, s)
	for i := range shs {
		sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if err != nil {
			return fmt.Errorf("C_OpenSession: %w", err)
		}
		defer p.CloseSession(sh)
		shs[i] = sh
	}
	if _, err := loop(p, shs, name, max(n/10, s), op); err != nil {
		return err
	}
	sec, err := loop(p, shs, name, n, op)
	if err != nil {
		return err
	}
	fmt.Printf("%s sessions=%d ops=%d seconds=%.3f rate=%.1f\n", name, s, n, sec, float64(n)/sec)
	return nil
}

// loop runs n operations across the sessions shs, one goroutine each, and
// returns the wall-clock seconds.
func loop(p *pkcs11.Ctx, shs []pkcs11.SessionHandle, name string, n int, op func(pkcs11.SessionHandle) (pkcs11.ObjectHandle, error)) (float64, error) {
	s := len(shs)
	errs := make([]error, s)
	var wg sync.WaitGroup
	start := time.Now()
	for i, sh := range shs {
		share := n / s
		if i < n%s {
			share++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range share {
				obj, err := op(sh)
				if err != nil {
					errs[i] = fmt.Errorf("%s: %w", name, err)
					return
				}
				if _, err := p.GetAttributeValue(sh, obj, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)}); err != nil {
					errs[i] = fmt.Errorf("%s: C_GetAttributeValue: %w", name, err)
					return
				}
				if err := p.DestroyObject(sh, obj); err != nil {
					errs[i] = fmt.Errorf("%s: C_DestroyObject: %w", name, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start).Seconds(), errors.Join(errs...)
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

// findKey returns the one object of class with CKA_LABEL label.
func findKey(p *pkcs11.Ctx, sh pkcs11.SessionHandle, class uint, label string) (pkcs11.ObjectHandle, error) {
	if err := p.FindObjectsInit(sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
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
		return 0, fmt.Errorf("%d objects of class %d labelled %q", len(hs), class, label)
	}
	return hs[0], nil
}
