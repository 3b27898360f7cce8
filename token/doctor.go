package token

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strings"

	"github.com/miekg/pkcs11"
)

// This file holds what `tokenseal doctor` asks of a module and a token:
// [Diagnose] surveys the module without logging in (C_GetInfo, slots,
// token info, C_GetMechanismInfo), then, when a PIN is available, logs in
// and tries every mechanism tokenseal may use for real, and runs each key
// through the path open or seal would take with it.

// ModuleInfo is what C_GetInfo says about a module.
type ModuleInfo struct {
	Path            string // the module file loaded
	CryptokiVersion string // e.g. "2.40"
	Manufacturer    string // manufacturerID
	Description     string // libraryDescription
	LibraryVersion  string // e.g. "2.6"
}

// TokenDetails is [TokenInfo] with what else C_GetTokenInfo reports that
// an operator may want to see.
type TokenDetails struct {
	TokenInfo
	MinPINLen       uint
	MaxPINLen       uint
	HardwareVersion string
	FirmwareVersion string
}

func versionString(v pkcs11.Version) string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// tokenFlags are the CKF_ token flags, in the order PKCS#11 defines them.
var tokenFlags = []struct {
	flag uint
	name string
}{
	{pkcs11.CKF_RNG, "CKF_RNG"},
	{pkcs11.CKF_WRITE_PROTECTED, "CKF_WRITE_PROTECTED"},
	{pkcs11.CKF_LOGIN_REQUIRED, "CKF_LOGIN_REQUIRED"},
	{pkcs11.CKF_USER_PIN_INITIALIZED, "CKF_USER_PIN_INITIALIZED"},
	{pkcs11.CKF_RESTORE_KEY_NOT_NEEDED, "CKF_RESTORE_KEY_NOT_NEEDED"},
	{pkcs11.CKF_CLOCK_ON_TOKEN, "CKF_CLOCK_ON_TOKEN"},
	{pkcs11.CKF_PROTECTED_AUTHENTICATION_PATH, "CKF_PROTECTED_AUTHENTICATION_PATH"},
	{pkcs11.CKF_DUAL_CRYPTO_OPERATIONS, "CKF_DUAL_CRYPTO_OPERATIONS"},
	{pkcs11.CKF_TOKEN_INITIALIZED, "CKF_TOKEN_INITIALIZED"},
	{pkcs11.CKF_SECONDARY_AUTHENTICATION, "CKF_SECONDARY_AUTHENTICATION"},
	{pkcs11.CKF_USER_PIN_COUNT_LOW, "CKF_USER_PIN_COUNT_LOW"},
	{pkcs11.CKF_USER_PIN_FINAL_TRY, "CKF_USER_PIN_FINAL_TRY"},
	{pkcs11.CKF_USER_PIN_LOCKED, "CKF_USER_PIN_LOCKED"},
	{pkcs11.CKF_USER_PIN_TO_BE_CHANGED, "CKF_USER_PIN_TO_BE_CHANGED"},
	{pkcs11.CKF_SO_PIN_COUNT_LOW, "CKF_SO_PIN_COUNT_LOW"},
	{pkcs11.CKF_SO_PIN_FINAL_TRY, "CKF_SO_PIN_FINAL_TRY"},
	{pkcs11.CKF_SO_PIN_LOCKED, "CKF_SO_PIN_LOCKED"},
	{pkcs11.CKF_SO_PIN_TO_BE_CHANGED, "CKF_SO_PIN_TO_BE_CHANGED"},
	{pkcs11.CKF_ERROR_STATE, "CKF_ERROR_STATE"},
}

// TokenFlagNames names the CKF_ flags set in a token's flags, e.g.
// "CKF_RNG", "CKF_LOGIN_REQUIRED", "CKF_USER_PIN_COUNT_LOW".
func TokenFlagNames(flags uint) []string {
	var out []string
	for _, f := range tokenFlags {
		if flags&f.flag != 0 {
			out = append(out, f.name)
		}
	}
	return out
}

// Capability names: stable identifiers, used as they are in doctor's JSON.
const (
	CapOAEPUnwrapSHA1    = "rsa_oaep_unwrap_sha1"
	CapOAEPUnwrapSHA256  = "rsa_oaep_unwrap_sha256"
	CapOAEPDecryptSHA1   = "rsa_oaep_decrypt_sha1"
	CapOAEPDecryptSHA256 = "rsa_oaep_decrypt_sha256"
	CapRSARaw            = "rsa_x509_decrypt"
	CapECDH              = "ecdh1_derive_null"
	CapAESKeyWrapPad     = "aes_key_wrap_pad"
	CapECDSA             = "ecdsa_sign"
	CapRSAPSS            = "rsa_pss_sign"
	CapRandom            = "generate_random"
	CapRSAKeyGen         = "rsa_key_pair_gen"
	CapECKeyGen          = "ec_key_pair_gen"
)

// Capability is one thing tokenseal may ask of a token: a mechanism used
// by one PKCS#11 function (with one OAEP hash, for RSA-OAEP).
type Capability struct {
	Name      string // one of the Cap constants
	Mechanism string // the CKM_ name; "" for C_GenerateRandom
	Function  string // the PKCS#11 function that uses it
	UsedFor   string // what tokenseal does with it
	mech      uint
	flag      uint // the CKF_ mechanism flag it needs (for random: the CKF_RNG token flag)
	hash      crypto.Hash
}

// Capabilities lists everything [Diagnose] checks, in report order.
var Capabilities = []Capability{
	{CapOAEPUnwrapSHA1, "CKM_RSA_PKCS_OAEP", "C_UnwrapKey", "open, RSA keys: first choice (oaep-hash sha1)", pkcs11.CKM_RSA_PKCS_OAEP, pkcs11.CKF_UNWRAP, crypto.SHA1},
	{CapOAEPUnwrapSHA256, "CKM_RSA_PKCS_OAEP", "C_UnwrapKey", "open, RSA keys: first choice (oaep-hash sha256)", pkcs11.CKM_RSA_PKCS_OAEP, pkcs11.CKF_UNWRAP, crypto.SHA256},
	{CapOAEPDecryptSHA1, "CKM_RSA_PKCS_OAEP", "C_Decrypt", "open, RSA keys: second choice (oaep-hash sha1)", pkcs11.CKM_RSA_PKCS_OAEP, pkcs11.CKF_DECRYPT, crypto.SHA1},
	{CapOAEPDecryptSHA256, "CKM_RSA_PKCS_OAEP", "C_Decrypt", "open, RSA keys: second choice (oaep-hash sha256)", pkcs11.CKM_RSA_PKCS_OAEP, pkcs11.CKF_DECRYPT, crypto.SHA256},
	{CapRSARaw, "CKM_RSA_X_509", "C_Decrypt", "open, RSA keys: last resort, OAEP decoded on the host", pkcs11.CKM_RSA_X_509, pkcs11.CKF_DECRYPT, 0},
	{CapECDH, "CKM_ECDH1_DERIVE", "C_DeriveKey", "open, EC keys: ECDH with CKD_NULL", pkcs11.CKM_ECDH1_DERIVE, pkcs11.CKF_DERIVE, 0},
	{CapAESKeyWrapPad, "CKM_AES_KEY_WRAP_PAD", "C_UnwrapKey", "not used on the token: AES-KWP runs on the host", pkcs11.CKM_AES_KEY_WRAP_PAD, pkcs11.CKF_UNWRAP, 0},
	{CapECDSA, "CKM_ECDSA", "C_Sign", "seal --sign-with, P-256 keys", pkcs11.CKM_ECDSA, pkcs11.CKF_SIGN, 0},
	{CapRSAPSS, "CKM_RSA_PKCS_PSS", "C_Sign", "seal --sign-with, RSA keys", pkcs11.CKM_RSA_PKCS_PSS, pkcs11.CKF_SIGN, 0},
	{CapRandom, "", "C_GenerateRandom", "not required: tokenseal draws keys from the host's RNG", 0, pkcs11.CKF_RNG, 0},
	{CapRSAKeyGen, "CKM_RSA_PKCS_KEY_PAIR_GEN", "C_GenerateKeyPair", "key generate/provision rsa-*", pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, pkcs11.CKF_GENERATE_KEY_PAIR, 0},
	{CapECKeyGen, "CKM_EC_KEY_PAIR_GEN", "C_GenerateKeyPair", "key generate/provision p256, p384", pkcs11.CKM_EC_KEY_PAIR_GEN, pkcs11.CKF_GENERATE_KEY_PAIR, 0},
}

// Trial outcomes of a [CapabilityResult].
const (
	TrialOK       = "ok"        // the token did it and the host checked the result
	TrialRefused  = "refused"   // the token returned an error (Detail names it)
	TrialWrong    = "wrong"     // the token answered, but the result did not check out
	TrialNotTried = "not-tried" // no trial (no login, not offered, not used on the token, ...): Detail says why
)

// CapabilityResult is what [Diagnose] found out about one [Capability].
type CapabilityResult struct {
	Capability
	// Offered: C_GetMechanismInfo lists the mechanism with the flag the
	// function needs (random: the token has CKF_RNG).
	Offered bool
	Trial   string // TrialOK, TrialRefused, TrialWrong or TrialNotTried
	// Detail says which key the trial ran on, the CKR_ value of a
	// refusal, or why there was no trial.
	Detail string
}

// Supported is the verdict: the trial's outcome when there was one, else
// whether the mechanism is offered.
func (r *CapabilityResult) Supported() bool {
	switch r.Trial {
	case TrialOK:
		return true
	case TrialRefused, TrialWrong:
		return false
	}
	return r.Offered
}

// Login outcomes of a [Diagnosis].
const (
	LoginOK      = "ok"
	LoginSkipped = "skipped" // no PIN available without a prompt, or the PIN is locked
	LoginFailed  = "failed"
)

// KeyDiagnosis says what open or seal would do with one key pair.
type KeyDiagnosis struct {
	Label string
	ID    []byte
	Type  string // as in [Key.Type]
	Usage string // as in [Key.Usage]
	// OAEPPathSHA1 and OAEPPathSHA256 are the paths [Key.DecryptOAEP]
	// takes for an envelope wrapped with that OAEP hash ([PathUnwrap],
	// [PathDecrypt], [PathRaw]), found by a trial; "" when none works.
	// RSA keys that may decrypt or unwrap only.
	OAEPPathSHA1   string
	OAEPPathSHA256 string
	// ExportHash is the oaep-hash `key export` records ("sha1" or
	// "sha256"), from [Key.ProbeOAEPHash]. RSA exchange keys only.
	ExportHash string
	// Derive is true when C_DeriveKey (CKM_ECDH1_DERIVE, CKD_NULL) gave
	// the same shared secret as the host. EC keys that may derive only.
	Derive bool
	// Sign is "ecdsa" or "rsa-pss" when a trial signature through the
	// path seal uses verified on the host. Keys that may sign only.
	Sign string
	// Problem says what does not work with this key; "" when all does.
	Problem string
}

// Diagnosis is the report of [Diagnose].
type Diagnosis struct {
	Module       *ModuleInfo   // nil when no module could be loaded
	Slots        []TokenInfo   // every slot, with its token if present
	Token        *TokenDetails // the selected token; nil when none
	Capabilities []CapabilityResult
	Login        string // LoginOK, LoginSkipped or LoginFailed
	// TrialsRun is true when the capabilities were tried on the token
	// (after a login), false when they only reflect C_GetMechanismInfo.
	TrialsRun bool
	Keys      []KeyDiagnosis // the key pairs found after login, by label
	// Problems are what tokenseal needs and does not have. Each matches
	// [ErrToken]. Empty means nothing needed is known to be missing.
	Problems []error
	// Notes are things worth knowing that do not stop tokenseal.
	Notes []string
}

func (d *Diagnosis) problem(err error) { d.Problems = append(d.Problems, err) }

func (d *Diagnosis) note(format string, a ...any) {
	d.Notes = append(d.Notes, fmt.Sprintf(format, a...))
}

// Capability returns the result for the capability called name.
func (d *Diagnosis) Capability(name string) *CapabilityResult {
	for i := range d.Capabilities {
		if d.Capabilities[i].Name == name {
			return &d.Capabilities[i]
		}
	}
	return nil
}

// Diagnose reports what the module and token chosen by cfg offer
// tokenseal. It never fails: what goes wrong is in the report's Problems.
//
// Without logging in it reads C_GetInfo, the slots, the token's info and
// flags, and C_GetMechanismInfo for each [Capability]. Then, if a PIN is
// available (cfg.PIN, the URI's pin-source, or cfg.Prompt), it logs in
// once and tries each capability for real: on an existing key pair that
// allows the operation, or else on a temporary session key pair
// (CKA_TOKEN false) made for the purpose and destroyed before Diagnose
// returns. Every key pair is then run through the path open or seal would
// take with it. With no PIN the trials are skipped and the report says so.
func Diagnose(cfg Config) *Diagnosis {
	d := &Diagnosis{Login: LoginSkipped}
	for _, c := range Capabilities {
		d.Capabilities = append(d.Capabilities, CapabilityResult{Capability: c, Trial: TrialNotTried, Detail: "no login"})
	}
	module, label, serial, uri, err := resolveSelector(cfg)
	if err != nil {
		d.problem(err)
		return d
	}
	path, err := FindModule(module)
	if err != nil {
		d.problem(err)
		return d
	}
	if err := d.survey(path, label, serial); err != nil {
		d.problem(err)
		return d
	}

	ti := d.Token
	if ti.Flags&pkcs11.CKF_ERROR_STATE != 0 {
		d.problem(fmt.Errorf("%w: token %q reports CKF_ERROR_STATE", ErrToken, ti.Label))
	}
	if !ti.UserPINInit {
		d.problem(fmt.Errorf("%w: token %q has no user PIN set (CKF_USER_PIN_INITIALIZED is clear)", ErrLoginFailed, ti.Label))
	}
	if ti.Flags&pkcs11.CKF_USER_PIN_LOCKED != 0 {
		d.problem(fmt.Errorf("%w: the user PIN of token %q is locked (CKF_USER_PIN_LOCKED)", ErrLoginFailed, ti.Label))
	}
	if ti.Flags&pkcs11.CKF_USER_PIN_FINAL_TRY != 0 {
		d.note("one more wrong user PIN locks token %q (CKF_USER_PIN_FINAL_TRY)", ti.Label)
	} else if ti.Flags&pkcs11.CKF_USER_PIN_COUNT_LOW != 0 {
		d.note("a wrong user PIN was entered on token %q recently (CKF_USER_PIN_COUNT_LOW)", ti.Label)
	}
	if ti.Flags&pkcs11.CKF_USER_PIN_TO_BE_CHANGED != 0 {
		d.note("token %q wants its user PIN changed (CKF_USER_PIN_TO_BE_CHANGED): run 'tokenseal token change-pin'", ti.Label)
	}

	havePIN := cfg.PIN != "" || cfg.Prompt != nil
	if uri != nil {
		if _, ok := uri.Query["pin-source"]; ok {
			havePIN = true
		}
	}
	switch {
	case ti.Flags&pkcs11.CKF_USER_PIN_LOCKED != 0 || !ti.UserPINInit:
		d.skipTrials("no login: the user PIN is locked or not set")
	case !havePIN:
		d.skipTrials("no login")
		d.note("trials skipped: no PIN available without a prompt (give --pin-file or TOKENSEAL_PIN to run them); mechanisms are as C_GetMechanismInfo lists them")
	default:
		t, err := Open(cfg)
		if err != nil {
			d.Login = LoginFailed
			d.skipTrials("login failed")
			d.problem(err)
			break
		}
		d.Login = LoginOK
		d.TrialsRun = true
		if err := d.trials(t); err != nil {
			d.problem(err)
		}
		if err := t.Close(); err != nil {
			d.problem(err)
		}
	}
	d.verdict()
	return d
}

func (d *Diagnosis) skipTrials(why string) {
	for i := range d.Capabilities {
		d.Capabilities[i].Trial, d.Capabilities[i].Detail = TrialNotTried, why
	}
}

// verdict adds the problem of a token tokenseal cannot open anything
// with: no RSA path and no ECDH.
func (d *Diagnosis) verdict() {
	for _, name := range []string{CapOAEPUnwrapSHA1, CapOAEPUnwrapSHA256, CapOAEPDecryptSHA1, CapOAEPDecryptSHA256, CapRSARaw, CapECDH} {
		if d.Capability(name).Supported() {
			return
		}
	}
	d.problem(fmt.Errorf("%w: the token can open nothing: no RSA-OAEP unwrap or decrypt, no raw RSA decrypt, no ECDH derive", ErrMechanism))
}

// survey loads the module on its own, reads what needs no login, selects
// the token and releases the module again.
func (d *Diagnosis) survey(path, label, serial string) error {
	if err := claimModule(path); err != nil {
		return err
	}
	defer releaseModule(path)
	ctx, err := loadModule(path)
	if err != nil {
		return err
	}
	defer ctx.Destroy()
	defer ctx.Finalize()
	info, err := ctx.GetInfo()
	if err != nil {
		return p11err("C_GetInfo", err)
	}
	d.Module = &ModuleInfo{
		Path:            path,
		CryptokiVersion: versionString(info.CryptokiVersion),
		Manufacturer:    strings.TrimRight(info.ManufacturerID, " \x00"),
		Description:     strings.TrimRight(info.LibraryDescription, " \x00"),
		LibraryVersion:  versionString(info.LibraryVersion),
	}
	toks, err := listTokens(ctx)
	if err != nil {
		return err
	}
	d.Slots = toks
	sel, err := selectToken(toks, label, serial)
	if err != nil {
		return err
	}
	raw, err := ctx.GetTokenInfo(sel.Slot)
	if err != nil {
		return p11err("C_GetTokenInfo", err)
	}
	d.Token = &TokenDetails{
		TokenInfo:       sel,
		MinPINLen:       raw.MinPinLen,
		MaxPINLen:       raw.MaxPinLen,
		HardwareVersion: versionString(raw.HardwareVersion),
		FirmwareVersion: versionString(raw.FirmwareVersion),
	}
	for i := range d.Capabilities {
		c := &d.Capabilities[i]
		if c.mech == 0 && c.flag == pkcs11.CKF_RNG {
			c.Offered = sel.Flags&pkcs11.CKF_RNG != 0
			continue
		}
		mi, err := ctx.GetMechanismInfo(sel.Slot, []*pkcs11.Mechanism{pkcs11.NewMechanism(c.mech, nil)})
		switch {
		case err == nil:
			c.Offered = mi.Flags&c.flag == c.flag
		case hasCode(err, pkcs11.CKR_MECHANISM_INVALID):
			c.Offered = false
		default:
			return p11err("C_GetMechanismInfo", err)
		}
	}
	return nil
}

// doctorLabel labels the temporary session objects the trials make.
const doctorLabel = "tokenseal-doctor-temporary"

// tempPair is a session key pair made for the trials.
type tempPair struct {
	key       *Key
	priv, pub pkcs11.ObjectHandle
}

// trials runs every capability trial and every key's path on an open,
// logged-in token. Temporary objects are destroyed before it returns.
func (d *Diagnosis) trials(t *Token) error {
	keys, err := t.Keys()
	if err != nil {
		d.skipTrials("listing the keys failed")
		return err
	}
	// By label, so the report and the keys the trials use do not depend
	// on the order the token lists objects in.
	sort.SliceStable(keys, func(i, j int) bool { return keys[i].Label < keys[j].Label })
	var temps []*tempPair
	defer func() {
		for _, tp := range temps {
			if err := t.destroyPair(tp); err != nil {
				d.problem(fmt.Errorf("destroying a temporary session key pair: %w", err))
			}
		}
	}()
	// pick returns an existing key pair for which ok holds, else a
	// temporary one of that kind (made once), else nil and why not.
	// One temporary pair per kind, made on first need: index 1 is RSA.
	type temp struct {
		pair *tempPair
		err  error
		made bool
	}
	var tmp [2]temp
	kinds := [2]struct{ cap, what string }{
		{CapECKeyGen, "a temporary session P-256 key pair"},
		{CapRSAKeyGen, "a temporary session RSA-2048 key pair"},
	}
	pick := func(rsaKey bool, ok func(*Key) bool) (*Key, string, error) {
		for _, k := range keys {
			_, isRSA := k.pub.(*rsa.PublicKey)
			if isRSA == rsaKey && ok(k) {
				return k, fmt.Sprintf("on key %q", k.Label), nil
			}
		}
		n := 0
		if rsaKey {
			n = 1
		}
		tp := &tmp[n]
		if !tp.made {
			tp.made = true
			tp.pair, tp.err = t.tempPair(rsaKey)
			if tp.pair != nil {
				temps = append(temps, tp.pair)
			}
			d.Capability(kinds[n].cap).setTrial(tp.err, "made "+kinds[n].what)
		}
		if tp.err != nil {
			return nil, "", tp.err
		}
		return tp.pair.key, "on " + kinds[n].what, nil
	}
	for _, name := range []string{CapRSAKeyGen, CapECKeyGen} {
		c := d.Capability(name)
		c.Trial, c.Detail = TrialNotTried, "not needed: existing keys were used for the trials"
	}
	c := d.Capability(CapAESKeyWrapPad)
	c.Trial, c.Detail = TrialNotTried, "not used on the token"

	for i := range d.Capabilities {
		c := &d.Capabilities[i]
		var run func(*Key) error
		var rsaKey bool
		var need func(*Key) bool
		switch c.Name {
		case CapOAEPUnwrapSHA1, CapOAEPUnwrapSHA256:
			rsaKey, need = true, func(k *Key) bool { return k.canUnw }
			run = func(k *Key) error { return trialUnwrap(k, c.hash) }
		case CapOAEPDecryptSHA1, CapOAEPDecryptSHA256:
			rsaKey, need = true, func(k *Key) bool { return k.canDec }
			run = func(k *Key) error { return trialDecrypt(k, c.hash) }
		case CapRSARaw:
			rsaKey, need = true, func(k *Key) bool { return k.canDec }
			run = trialRaw
		case CapECDH:
			need = func(k *Key) bool { return k.canDer }
			run = trialECDH
		case CapECDSA:
			need = func(k *Key) bool { return k.Usage == UsageSign || k.Usage == "exchange+sign" }
			run = trialECDSA
		case CapRSAPSS:
			rsaKey, need = true, func(k *Key) bool { return k.Usage == UsageSign || k.Usage == "exchange+sign" }
			run = trialPSS
		case CapRandom:
			if !c.Offered {
				c.Trial, c.Detail = TrialNotTried, "the token does not have CKF_RNG"
				continue
			}
			_, err := t.GenerateRandom(32)
			c.setTrial(err, "32 bytes")
			continue
		default:
			continue
		}
		if !c.Offered {
			c.Trial, c.Detail = TrialNotTried, "not offered by C_GetMechanismInfo"
			continue
		}
		k, on, err := pick(rsaKey, need)
		if err != nil {
			c.Trial, c.Detail = TrialNotTried, "no key to try it on: "+oneLineErr(err)
			continue
		}
		c.setTrial(run(k), on)
	}

	for _, k := range keys {
		d.Keys = append(d.Keys, d.diagnoseKey(k))
	}
	if len(keys) == 0 {
		d.note("no key pairs on the token: make some with 'tokenseal key generate' or 'tokenseal key provision'")
	}
	return nil
}

func oneLineErr(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// setTrial records a trial's outcome: ok with what it ran on, else the
// error (a wrong result is errTrialWrong).
func (c *CapabilityResult) setTrial(err error, on string) {
	switch {
	case err == nil:
		c.Trial, c.Detail = TrialOK, on
	case errors.Is(err, errTrialWrong):
		c.Trial, c.Detail = TrialWrong, on+": "+oneLineErr(err)
	default:
		c.Trial, c.Detail = TrialRefused, on+": "+oneLineErr(err)
	}
}

// errTrialWrong is a trial in which the token answered with a result the
// host could not confirm.
var errTrialWrong = errors.New("result does not match the host's")

// diagnoseKey runs one key through the path open or seal takes with it.
func (d *Diagnosis) diagnoseKey(k *Key) KeyDiagnosis {
	kd := KeyDiagnosis{Label: k.Label, ID: k.ID, Type: k.Type, Usage: k.Usage}
	var problems []string
	switch pub := k.pub.(type) {
	case *rsa.PublicKey:
		if k.canDec || k.canUnw {
			var errs []string
			for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
				p, err := k.trialOAEPPath(h)
				if err != nil {
					errs = append(errs, fmt.Sprintf("%s: %s", hashName(h), oneLineErr(err)))
				}
				if h == crypto.SHA1 {
					kd.OAEPPathSHA1 = p
				} else {
					kd.OAEPPathSHA256 = p
				}
			}
			switch {
			case kd.OAEPPathSHA1 == "" && kd.OAEPPathSHA256 == "":
				problems = append(problems, "no way to undo RSA-OAEP with sha1 or sha256 ("+strings.Join(errs, "; ")+")")
			default:
				if h, _, err := k.ProbeOAEPHash(); err == nil {
					kd.ExportHash = hashName(h)
				} else {
					problems = append(problems, "key export cannot find an OAEP hash: "+oneLineErr(err))
				}
			}
			if kd.OAEPPathSHA256 == "" && kd.OAEPPathSHA1 != "" {
				d.note("key %q opens only sha1 stanzas: senders must seal to its exported PEM (oaep-hash: sha1), not to a certificate", k.Label)
			}
		}
		if k.Usage == UsageSign || k.Usage == "exchange+sign" {
			if err := signTrial(k, pub); err != nil {
				problems = append(problems, "RSA-PSS signing failed: "+oneLineErr(err))
			} else {
				kd.Sign = "rsa-pss"
			}
		}
	case *ecdsa.PublicKey:
		if k.canDer {
			if err := trialECDHVia(k, k.ECDH); err != nil {
				problems = append(problems, "ECDH derive failed: "+oneLineErr(err))
			} else {
				kd.Derive = true
			}
		}
		if k.Usage == UsageSign || k.Usage == "exchange+sign" {
			if err := signTrial(k, pub); err != nil {
				problems = append(problems, "ECDSA signing failed: "+oneLineErr(err))
			} else {
				kd.Sign = "ecdsa"
			}
			if pub.Curve != elliptic.P256() {
				d.note("key %q: envelopes are signed with P-256 ECDSA or RSA-PSS only, so seal cannot sign with this %s key", k.Label, k.Curve)
			}
		}
	}
	if len(problems) > 0 {
		kd.Problem = strings.Join(problems, "; ")
		d.problem(fmt.Errorf("%w: key %q: %s", ErrMechanism, k.Label, kd.Problem))
	}
	return kd
}

func hashName(h crypto.Hash) string {
	if h == crypto.SHA1 {
		return "sha1"
	}
	return strings.ToLower(strings.ReplaceAll(h.String(), "-", ""))
}

// trialOAEPPath wraps a random secret with RSA-OAEP and hash h on the host
// and undoes it as [Key.DecryptOAEP] does, trying the paths in the same
// order; it returns the path that worked.
func (k *Key) trialOAEPPath(h crypto.Hash) (string, error) {
	secret, ct, err := oaepTrialInput(k, h)
	if err != nil {
		return "", err
	}
	defer clear(secret)
	if err := k.checkRSA(ct); err != nil {
		return "", err
	}
	for _, p := range oaepPaths {
		pt, err := k.oaepVia(p, h, ct)
		if errors.Is(err, errNextPath) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("%s path: %w", p, err)
		}
		ok := subtle.ConstantTimeCompare(pt, secret) == 1
		clear(pt)
		if !ok {
			return "", fmt.Errorf("%s path: %w", p, errTrialWrong)
		}
		return p, nil
	}
	return "", fmt.Errorf("%w: no path offered or accepted", ErrMechanism)
}

func oaepTrialInput(k *Key, h crypto.Hash) (secret, ct []byte, err error) {
	pub, ok := k.pub.(*rsa.PublicKey)
	if !ok {
		return nil, nil, fmt.Errorf("%w: key %q is not an rsa key", ErrWrongKeyType, k.Label)
	}
	secret = make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, nil, err
	}
	ct, err = rsa.EncryptOAEP(h.New(), rand.Reader, pub, secret, nil)
	if err != nil {
		return nil, nil, err
	}
	return secret, ct, nil
}

// trialUnwrap: C_UnwrapKey with CKM_RSA_PKCS_OAEP into a session secret,
// read back and destroyed, as the unwrap path does.
func trialUnwrap(k *Key, h crypto.Hash) error {
	secret, ct, err := oaepTrialInput(k, h)
	if err != nil {
		return err
	}
	defer clear(secret)
	mech, err := oaepMechanism(h)
	if err != nil {
		return err
	}
	tmpl := unwrapTemplate(pkcs11.NewAttribute(pkcs11.CKA_LABEL, doctorLabel))
	return k.t.withSession(func(sh pkcs11.SessionHandle) error {
		obj, err := k.t.ctx.UnwrapKey(sh, mech, k.priv, ct, tmpl)
		if err != nil {
			return p11err("C_UnwrapKey", err)
		}
		v, rerr := readValue(k.t.ctx, sh, obj)
		if err := k.t.ctx.DestroyObject(sh, obj); err != nil {
			return p11err("C_DestroyObject", err)
		}
		if rerr != nil {
			return rerr
		}
		defer clear(v)
		if subtle.ConstantTimeCompare(v, secret) != 1 {
			return errTrialWrong
		}
		return nil
	})
}

// decryptTrial runs C_DecryptInit and C_Decrypt with mech on ct.
func decryptTrial(k *Key, mech []*pkcs11.Mechanism, ct []byte) ([]byte, error) {
	var out []byte
	err := k.t.withSession(func(sh pkcs11.SessionHandle) error {
		if err := k.t.ctx.DecryptInit(sh, mech, k.priv); err != nil {
			return p11err("C_DecryptInit", err)
		}
		pt, err := k.t.ctx.Decrypt(sh, ct)
		if err != nil {
			return p11err("C_Decrypt", err)
		}
		out = pt
		return nil
	})
	return out, err
}

// trialDecrypt: C_Decrypt with CKM_RSA_PKCS_OAEP.
func trialDecrypt(k *Key, h crypto.Hash) error {
	secret, ct, err := oaepTrialInput(k, h)
	if err != nil {
		return err
	}
	defer clear(secret)
	mech, err := oaepMechanism(h)
	if err != nil {
		return err
	}
	pt, err := decryptTrial(k, mech, ct)
	if err != nil {
		return err
	}
	defer clear(pt)
	if subtle.ConstantTimeCompare(pt, secret) != 1 {
		return errTrialWrong
	}
	return nil
}

// trialRaw: C_Decrypt with CKM_RSA_X_509 of m^e mod n for a random m.
func trialRaw(k *Key) error {
	pub := k.pub.(*rsa.PublicKey)
	m, err := rand.Int(rand.Reader, new(big.Int).Sub(pub.N, big.NewInt(2)))
	if err != nil {
		return err
	}
	m.Add(m, big.NewInt(2))
	c := new(big.Int).Exp(m, big.NewInt(int64(pub.E)), pub.N)
	ct := c.FillBytes(make([]byte, pub.Size()))
	out, err := decryptTrial(k, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_X_509, nil)}, ct)
	if err != nil {
		return err
	}
	if new(big.Int).SetBytes(out).Cmp(m) != 0 {
		return errTrialWrong
	}
	return nil
}

// trialECDH runs the real ECDH path ([Key.ECDH]).
func trialECDH(k *Key) error { return trialECDHVia(k, k.ECDH) }

// trialECDHVia checks derive against the host's ECDH with an ephemeral key.
func trialECDHVia(k *Key, derive func([]byte) ([]byte, error)) error {
	pub := k.pub.(*ecdsa.PublicKey)
	var curve ecdh.Curve
	switch pub.Curve {
	case elliptic.P256():
		curve = ecdh.P256()
	case elliptic.P384():
		curve = ecdh.P384()
	default:
		return fmt.Errorf("%w: unsupported curve", ErrWrongKeyType)
	}
	eph, err := curve.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	peer, err := pub.ECDH()
	if err != nil {
		return err
	}
	want, err := eph.ECDH(peer)
	if err != nil {
		return err
	}
	got, err := derive(eph.PublicKey().Bytes())
	if err != nil {
		return err
	}
	defer clear(got)
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return errTrialWrong
	}
	return nil
}

// signRaw runs C_SignInit and C_Sign with mech over digest.
func signRaw(k *Key, mech *pkcs11.Mechanism, digest []byte) ([]byte, error) {
	var sig []byte
	err := k.t.withSession(func(sh pkcs11.SessionHandle) error {
		if err := k.t.ctx.SignInit(sh, []*pkcs11.Mechanism{mech}, k.priv); err != nil {
			return p11err("C_SignInit", err)
		}
		s, err := k.t.ctx.Sign(sh, digest)
		if err != nil {
			return p11err("C_Sign", err)
		}
		sig = s
		return nil
	})
	return sig, err
}

func trialDigest() []byte {
	var b [32]byte
	rand.Read(b[:])
	d := sha256.Sum256(b[:])
	return d[:]
}

// trialECDSA: C_Sign with CKM_ECDSA over a SHA-256 digest, r||s verified
// on the host.
func trialECDSA(k *Key) error {
	pub := k.pub.(*ecdsa.PublicKey)
	digest := trialDigest()
	sig, err := signRaw(k, pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil), digest)
	if err != nil {
		return err
	}
	size := (pub.Curve.Params().BitSize + 7) / 8
	if len(sig) != 2*size {
		return fmt.Errorf("%w: signature is %d bytes", errTrialWrong, len(sig))
	}
	r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
	if !ecdsa.Verify(pub, digest, r, s) {
		return errTrialWrong
	}
	return nil
}

// trialPSS: C_Sign with CKM_RSA_PKCS_PSS (SHA-256, MGF1-SHA-256, salt 32)
// as the envelope format signs, verified on the host.
func trialPSS(k *Key) error {
	pub := k.pub.(*rsa.PublicKey)
	digest := trialDigest()
	mech := pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_PSS, pkcs11.NewPSSParams(pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256, 32))
	sig, err := signRaw(k, mech, digest)
	if err != nil {
		return err
	}
	if err := rsa.VerifyPSS(pub, crypto.SHA256, digest, sig, &rsa.PSSOptions{SaltLength: 32}); err != nil {
		return errTrialWrong
	}
	return nil
}

// signTrial signs through [Key.Signer], the path seal takes, and verifies
// on the host: ECDSA with SHA-256, or RSA-PSS with SHA-256 and a 32-byte
// salt.
func signTrial(k *Key, pub crypto.PublicKey) error {
	s, err := k.Signer()
	if err != nil {
		return err
	}
	digest := trialDigest()
	switch pub := pub.(type) {
	case *ecdsa.PublicKey:
		sig, err := s.Sign(rand.Reader, digest, crypto.SHA256)
		if err != nil {
			return p11err("C_Sign", err)
		}
		if !ecdsa.VerifyASN1(pub, digest, sig) {
			return errTrialWrong
		}
	case *rsa.PublicKey:
		opts := &rsa.PSSOptions{SaltLength: 32, Hash: crypto.SHA256}
		sig, err := s.Sign(rand.Reader, digest, opts)
		if err != nil {
			return p11err("C_Sign", err)
		}
		if err := rsa.VerifyPSS(pub, crypto.SHA256, digest, sig, opts); err != nil {
			return errTrialWrong
		}
	}
	return nil
}

// tempPair makes a session key pair (CKA_TOKEN false) for the trials: RSA
// 2048 that may decrypt, unwrap and sign, or P-256 that may derive and
// sign. The caller destroys it with destroyPair.
func (t *Token) tempPair(isRSA bool) (*tempPair, error) {
	id := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	common := func(private bool) []*pkcs11.Attribute {
		return []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, private),
			pkcs11.NewAttribute(pkcs11.CKA_ID, id),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, doctorLabel),
		}
	}
	pubT, privT := common(false), common(true)
	privT = append(privT,
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true))
	pubT = append(pubT, pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true))
	var mech uint
	if isRSA {
		mech = pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN
		pubT = append(pubT,
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, 2048),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_WRAP, true))
		privT = append(privT,
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, true))
	} else {
		mech = pkcs11.CKM_EC_KEY_PAIR_GEN
		params, err := asn1.Marshal(oidP256)
		if err != nil {
			return nil, err
		}
		pubT = append(pubT, pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, params))
		privT = append(privT, pkcs11.NewAttribute(pkcs11.CKA_DERIVE, true))
	}
	var tp *tempPair
	err := t.withSession(func(sh pkcs11.SessionHandle) error {
		pub, priv, err := t.ctx.GenerateKeyPair(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, pubT, privT)
		if err != nil {
			return p11err("C_GenerateKeyPair", err)
		}
		tp = &tempPair{priv: priv, pub: pub}
		k, err := t.loadKey(sh, priv)
		if err != nil {
			return err
		}
		tp.key = k
		return nil
	})
	if err != nil && tp != nil {
		if derr := t.destroyPair(tp); derr != nil {
			return nil, fmt.Errorf("%w (and destroying it failed: %w)", err, derr)
		}
		return nil, err
	}
	return tp, err
}

// destroyPair destroys a temporary pair. Session objects also go when
// their session closes; this does not wait for that.
func (t *Token) destroyPair(tp *tempPair) error {
	return t.withSession(func(sh pkcs11.SessionHandle) error {
		for _, h := range []pkcs11.ObjectHandle{tp.priv, tp.pub} {
			if err := t.ctx.DestroyObject(sh, h); err != nil {
				return p11err("C_DestroyObject", err)
			}
		}
		return nil
	})
}
