package token

import (
	"crypto"
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"
)

// This file holds the report of `tokenseal doctor`: what it checks
// ([Capabilities]), what it found ([Diagnosis]) and its verdict.
// survey.go reads what needs no login; trials.go tries everything for
// real after one.

// ModuleInfo is what C_GetInfo says about a module.
type ModuleInfo struct {
	Path            string // the module file loaded
	CryptokiVersion string // e.g. "2.40"
	Manufacturer    string // manufacturerID
	Description     string // libraryDescription
	LibraryVersion  string // e.g. "2.6"
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
	CapRSARawSign        = "rsa_x509_sign"
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
	{CapRSARaw, "CKM_RSA_X_509", "C_Decrypt", "open, RSA keys: last resort, OAEP decoded on the host", pkcs11.CKM_RSA_X_509, pkcs11.CKF_DECRYPT, crypto.SHA256},
	{CapECDH, "CKM_ECDH1_DERIVE", "C_DeriveKey", "open, EC keys: ECDH with CKD_NULL", pkcs11.CKM_ECDH1_DERIVE, pkcs11.CKF_DERIVE, 0},
	{CapAESKeyWrapPad, "CKM_AES_KEY_WRAP_PAD", "C_UnwrapKey", "not used on the token: AES-KWP runs on the host", pkcs11.CKM_AES_KEY_WRAP_PAD, pkcs11.CKF_UNWRAP, 0},
	{CapECDSA, "CKM_ECDSA", "C_Sign", "seal --sign-with, P-256 keys", pkcs11.CKM_ECDSA, pkcs11.CKF_SIGN, 0},
	{CapRSAPSS, "CKM_RSA_PKCS_PSS", "C_Sign", "seal --sign-with, RSA keys: first choice", pkcs11.CKM_RSA_PKCS_PSS, pkcs11.CKF_SIGN, 0},
	{CapRSARawSign, "CKM_RSA_X_509", "C_Sign", "seal --sign-with, RSA keys: PSS encoded on the host", pkcs11.CKM_RSA_X_509, pkcs11.CKF_SIGN, 0},
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
	noKey  bool // not tried because no key could be found or made
}

// Supported is the verdict: the trial's outcome when there was one;
// false when there was no key to try it on (none on the token, and none
// could be made); else whether the mechanism is offered.
func (r *CapabilityResult) Supported() bool {
	switch r.Trial {
	case TrialOK:
		return true
	case TrialRefused, TrialWrong:
		return false
	}
	return r.Offered && !r.noKey
}

// Login outcomes of a [Diagnosis].
const (
	LoginOK      = "ok"
	LoginSkipped = "skipped" // no PIN available without a prompt, or the PIN is locked
	LoginFailed  = "failed"
)

// KeyDiagnosis says what open or seal would do with one key pair.
type KeyDiagnosis struct {
	Label     string
	ID        []byte
	Type      string // as in [Key.Type]
	Usage     Usage
	Generated bool // made by tokenseal: CKA_ID is the SHA-256 of the SPKI
	// OAEPPathSHA1 and OAEPPathSHA256 are the paths [Key.OAEPPath] chose
	// for envelopes wrapped with that OAEP hash ([PathUnwrap],
	// [PathDecrypt], [PathRaw]); "" when none works. RSA exchange keys.
	OAEPPathSHA1   string
	OAEPPathSHA256 string
	// ExportHash is the oaep-hash `key export` records ("sha1" or
	// "sha256"), from [Key.OAEPHash]. RSA exchange keys only.
	ExportHash string
	// Derive is true when ECDH on the token gave the same shared secret
	// as the host. EC exchange keys only.
	Derive bool
	// Sign is "ecdsa" or "rsa-pss" when a signature made through
	// [Key.Signer], as seal makes them, verified on the host.
	Sign string
	// Problem says what does not work with this key; "" when all does.
	Problem string
}

// Diagnosis is the report of [Diagnose].
type Diagnosis struct {
	Module       *ModuleInfo // nil when no module could be loaded
	Slots        []Info      // every slot, with its token if present
	Token        *Info       // the selected token; nil when none
	Capabilities []CapabilityResult
	Login        string // LoginOK, LoginSkipped or LoginFailed
	// HavePIN is false when no PIN source was given and there is no
	// prompt: then Login is LoginSkipped and the trials did not run.
	HavePIN bool
	// TrialsRun is true when the capabilities were tried on the token
	// (after a login), false when they only reflect C_GetMechanismInfo.
	TrialsRun bool
	// TokenObjects is true when the token makes no session objects, so
	// the trials' temporary key pairs were token objects (destroyed
	// again before Diagnose returned).
	TokenObjects bool
	Keys         []KeyDiagnosis // the key pairs found after login, by label
	// Problems are what tokenseal needs and does not have. Each matches
	// [ErrToken]. Empty means nothing needed is known to be missing.
	Problems []error
	// Notes are things worth knowing that do not stop tokenseal.
	Notes []string
}

func (d *Diagnosis) problem(err error) {
	if !errors.Is(err, ErrToken) {
		err = fmt.Errorf("%w: %w", ErrToken, err)
	}
	d.Problems = append(d.Problems, err)
}

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

func (d *Diagnosis) skipTrials(why string) {
	for i := range d.Capabilities {
		d.Capabilities[i].Trial, d.Capabilities[i].Detail = TrialNotTried, why
	}
}

// openPaths are the capabilities any of which lets tokenseal open an
// envelope.
var openPaths = []string{CapOAEPUnwrapSHA1, CapOAEPUnwrapSHA256, CapOAEPDecryptSHA1, CapOAEPDecryptSHA256, CapRSARaw, CapECDH}

// verdict adds the problem of a token tokenseal cannot open anything
// with: no way to undo RSA-OAEP and no ECDH, on any key the token has or
// can make. It is never silent when nothing can be generated or opened.
func (d *Diagnosis) verdict() {
	if d.Token == nil {
		return
	}
	for _, name := range openPaths {
		if d.Capability(name).Supported() {
			return
		}
	}
	why := "no RSA-OAEP unwrap or decrypt, no raw RSA decrypt, no ECDH derive"
	if d.TrialsRun {
		why += " worked on any key the token has or could make"
	}
	d.problem(fmt.Errorf("%w: the token can open nothing: %s", ErrMechanism, why))
}
