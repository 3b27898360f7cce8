package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// doctorLabel starts the labels of the trials' temporary key pairs.
const doctorLabel = "tokenseal-doctor-"

// errTrialWrong is a trial in which the token answered with a result the
// host could not confirm.
var errTrialWrong = errors.New("result does not match the host's")

// trialKeys hands the trials a key pair of the kind each needs: an
// existing one that fits, else a temporary one made once per kind with
// the template `key generate` uses.
type trialKeys struct {
	d     *Diagnosis
	t     *Token
	keys  []*Key
	temps map[trialKind]*tempKey
}

type trialKind struct {
	rsa   bool
	usage Usage
}

type tempKey struct {
	key  *Key
	err  error
	what string
}

func (k trialKind) describe() (typ, what string) {
	typ, what = "p256", "P-256"
	if k.rsa {
		typ, what = "rsa-2048", "RSA-2048"
	}
	return typ, fmt.Sprintf("a temporary %s %s key pair", what, k.usage)
}

// get returns a key of kind for which ok holds, with the words the
// report uses for it.
func (tk *trialKeys) get(kind trialKind, ok func(*Key) bool) (*Key, string, error) {
	for _, k := range tk.keys {
		if _, isRSA := k.pub.(*rsa.PublicKey); isRSA == kind.rsa && k.Usage&kind.usage != 0 && ok(k) && k.Check() == nil {
			return k, fmt.Sprintf("on key %s", k), nil
		}
	}
	tmp, made := tk.temps[kind]
	if !made {
		tmp = tk.make(kind)
		tk.temps[kind] = tmp
	}
	if tmp.err != nil {
		return nil, "", tmp.err
	}
	if !ok(tmp.key) {
		return nil, "", fmt.Errorf("%s does not allow it", tmp.what)
	}
	return tmp.key, "on " + tmp.what, nil
}

// make generates a temporary key pair: session objects, or token
// objects on tokens that make no session objects. The generation is the
// trial of the key-pair generation capability.
func (tk *trialKeys) make(kind trialKind) *tempKey {
	typ, what := kind.describe()
	var b [6]byte
	rand.Read(b[:])
	label := doctorLabel + hex.EncodeToString(b[:])
	k, err := tk.t.generate(label, typ, kind.usage, tk.d.TokenObjects)
	if err != nil && !tk.d.TokenObjects && !errors.Is(err, ErrMechanism) {
		if k2, err2 := tk.t.generate(label, typ, kind.usage, true); err2 == nil {
			tk.d.TokenObjects = true
			tk.d.note("the token makes no session objects (%s): the trials' temporary key pairs were token objects, destroyed again", oneLine(err))
			k, err = k2, nil
		}
	}
	capName := CapECKeyGen
	if kind.rsa {
		capName = CapRSAKeyGen
	}
	// A key the token cannot use is refused before anything is generated
	// (ErrMechanism): that says nothing about key-pair generation itself.
	if c := tk.d.Capability(capName); c.Trial != TrialOK && !errors.Is(err, ErrMechanism) {
		c.setTrial(err, "made "+what)
	}
	return &tempKey{key: k, err: err, what: what}
}

// cleanup destroys the temporary key pairs.
func (tk *trialKeys) cleanup() {
	for _, tmp := range tk.temps {
		if tmp.key == nil {
			continue
		}
		if err := tk.t.DeleteKey(tmp.key); err != nil {
			tk.d.problem(fmt.Errorf("destroying %s: %w", tmp.what, err))
		}
	}
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
	for _, k := range keys {
		d.Keys = append(d.Keys, d.diagnoseKey(k))
	}
	if len(keys) == 0 {
		d.note("no key pairs on the token")
	}
	tk := &trialKeys{d: d, t: t, keys: keys, temps: map[trialKind]*tempKey{}}
	defer tk.cleanup()
	for _, name := range []string{CapRSAKeyGen, CapECKeyGen} {
		c := d.Capability(name)
		c.Trial, c.Detail = TrialNotTried, "not needed: existing keys were used for the trials"
		if !c.Offered {
			c.Detail = "not offered by C_GetMechanismInfo"
		}
	}
	c := d.Capability(CapAESKeyWrapPad)
	c.Trial, c.Detail = TrialNotTried, "not used on the token"
	for i := range d.Capabilities {
		tk.run(&d.Capabilities[i])
	}
	return nil
}

// capTrial is how one capability is tried: on a key of kind for which
// ok holds, by run.
type capTrial struct {
	kind trialKind
	ok   func(*Key) bool
	run  func(*Key) error
}

func (tk *trialKeys) trialFor(c *CapabilityResult) (capTrial, bool) {
	rsaX, ecX := trialKind{true, UsageExchange}, trialKind{false, UsageExchange}
	rsaS, ecS := trialKind{true, UsageSign}, trialKind{false, UsageSign}
	any := func(*Key) bool { return true }
	oaep := func(path string) func(*Key) error {
		return func(k *Key) error { return trialOAEP(k, path, c.hash) }
	}
	switch c.Name {
	case CapOAEPUnwrapSHA1, CapOAEPUnwrapSHA256:
		return capTrial{rsaX, func(k *Key) bool { return k.perm.unwrap }, oaep(PathUnwrap)}, true
	case CapOAEPDecryptSHA1, CapOAEPDecryptSHA256:
		return capTrial{rsaX, func(k *Key) bool { return k.perm.decrypt }, oaep(PathDecrypt)}, true
	case CapRSARaw:
		return capTrial{rsaX, func(k *Key) bool { return k.perm.decrypt }, oaep(PathRaw)}, true
	case CapECDH:
		return capTrial{ecX, any, func(k *Key) error { return k.checkDerive(k.pub.(*ecdsa.PublicKey)) }}, true
	case CapECDSA:
		return capTrial{ecS, any, func(k *Key) error { _, err := k.signECDSA(k.pub.(*ecdsa.PublicKey), randomDigest()); return err }}, true
	case CapRSAPSS:
		return capTrial{rsaS, any, func(k *Key) error { return trialPSS(k, signPSS) }}, true
	case CapRSARawSign:
		return capTrial{rsaS, any, func(k *Key) error { return trialPSS(k, signRaw) }}, true
	}
	return capTrial{}, false
}

// run tries one capability.
func (tk *trialKeys) run(c *CapabilityResult) {
	if c.Name == CapRandom {
		if !c.Offered {
			c.Trial, c.Detail = TrialNotTried, "the token does not have CKF_RNG"
			return
		}
		_, err := tk.t.GenerateRandom(32)
		c.setTrial(err, "32 bytes")
		return
	}
	tr, ok := tk.trialFor(c)
	if !ok {
		return
	}
	if !c.Offered {
		c.Trial, c.Detail = TrialNotTried, "not offered by C_GetMechanismInfo"
		return
	}
	k, on, err := tk.get(tr.kind, tr.ok)
	if err != nil {
		c.Trial, c.Detail, c.noKey = TrialNotTried, "no key to try it on: "+oneLine(err), true
		return
	}
	c.setTrial(tr.run(k), on)
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// setTrial records a trial's outcome: ok with what it ran on, else the
// error (a wrong result is errTrialWrong or a key mismatch).
func (c *CapabilityResult) setTrial(err error, on string) {
	switch {
	case err == nil:
		c.Trial, c.Detail = TrialOK, on
	case errors.Is(err, errTrialWrong), errors.Is(err, ErrKeyMismatch):
		c.Trial, c.Detail = TrialWrong, on+": "+oneLine(err)
	default:
		c.Trial, c.Detail = TrialRefused, on+": "+oneLine(err)
	}
}

// trialOAEP wraps a random secret with RSA-OAEP and hash h on the host
// and undoes it by one path.
func trialOAEP(k *Key, path string, h crypto.Hash) error {
	pub := k.pub.(*rsa.PublicKey)
	secret := make([]byte, 32)
	rand.Read(secret)
	defer clear(secret)
	ct, err := rsa.EncryptOAEP(h.New(), rand.Reader, pub, secret, nil)
	if err != nil {
		return err
	}
	pt, err := k.oaepVia(path, h, ct)
	if err != nil {
		return err
	}
	defer clear(pt)
	if subtle.ConstantTimeCompare(pt, secret) != 1 {
		return errTrialWrong
	}
	return nil
}

// trialPSS signs a random digest by one RSA-PSS path, verified on the
// host.
func trialPSS(k *Key, path string) error {
	pub := k.pub.(*rsa.PublicKey)
	digest := randomDigest()
	sig, err := k.pssVia(path, pub, digest)
	if err != nil {
		return err
	}
	if rsa.VerifyPSS(pub, crypto.SHA256, digest, sig, &rsa.PSSOptions{SaltLength: 32}) != nil {
		return errTrialWrong
	}
	return nil
}

func hashName(h crypto.Hash) string {
	if h == crypto.SHA1 {
		return "sha1"
	}
	return "sha256"
}

// diagnoseKey runs one key through what open or seal do with it.
func (d *Diagnosis) diagnoseKey(k *Key) KeyDiagnosis {
	kd := KeyDiagnosis{Label: k.Label, ID: k.ID, Type: k.Type, Usage: k.Usage, Generated: k.Generated()}
	if err := k.Check(); err != nil {
		kd.Problem = oneLine(err)
		d.problem(err)
		return kd
	}
	problems := append(d.diagnoseExchange(k, &kd), d.diagnoseSign(k, &kd)...)
	if len(problems) > 0 {
		kd.Problem = strings.Join(problems, "; ")
		d.problem(fmt.Errorf("%w: key %s: %s", ErrMechanism, k, kd.Problem))
	}
	return kd
}

func (d *Diagnosis) diagnoseExchange(k *Key, kd *KeyDiagnosis) []string {
	if !k.Usage.CanExchange() {
		return nil
	}
	pub, isEC := k.pub.(*ecdsa.PublicKey)
	if isEC {
		if err := k.checkDerive(pub); err != nil {
			return []string{"ECDH derive failed: " + oneLine(err)}
		}
		kd.Derive = true
		return nil
	}
	var errs []string
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
		p, err := k.OAEPPath(h)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %s", hashName(h), oneLine(err)))
		}
		if h == crypto.SHA1 {
			kd.OAEPPathSHA1 = p
		} else {
			kd.OAEPPathSHA256 = p
		}
	}
	if kd.OAEPPathSHA1 == "" && kd.OAEPPathSHA256 == "" {
		return []string{"no way to undo RSA-OAEP with sha1 or sha256 (" + strings.Join(errs, "; ") + ")"}
	}
	h, err := k.OAEPHash()
	if err != nil {
		return []string{"key export cannot find an OAEP hash: " + oneLine(err)}
	}
	kd.ExportHash = hashName(h)
	if kd.OAEPPathSHA256 == "" {
		d.note("key %s opens only sha1 stanzas: senders must seal to its exported PEM (oaep-hash: sha1), not to a certificate", k)
	}
	return nil
}

func (d *Diagnosis) diagnoseSign(k *Key, kd *KeyDiagnosis) []string {
	if !k.Usage.CanSign() {
		return nil
	}
	s, err := k.Signer()
	if err == nil {
		var opts crypto.SignerOpts = crypto.SHA256
		if _, isRSA := k.pub.(*rsa.PublicKey); isRSA {
			opts = &rsa.PSSOptions{SaltLength: 32, Hash: crypto.SHA256}
		}
		_, err = s.Sign(rand.Reader, randomDigest(), opts)
	}
	pub, isEC := k.pub.(*ecdsa.PublicKey)
	alg := "rsa-pss"
	if isEC {
		alg = "ecdsa"
		if pub.Curve != elliptic.P256() {
			d.note("key %s: envelopes are signed with P-256 ECDSA or RSA-PSS only, so seal cannot sign with this %s key", k, k.Curve)
		}
	}
	if err != nil {
		return []string{strings.ToUpper(alg) + " signing failed: " + oneLine(err)}
	}
	kd.Sign = alg
	return nil
}
