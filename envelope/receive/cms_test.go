package receive_test

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/envelope/cms"
	"github.com/tokenseal/tokenseal/envelope/receive"
	"github.com/tokenseal/tokenseal/envelope/state"
)

// cmsRig is the rig's recipient bob as a CMS identity, and a sender
// alice with a self-signed certificate.
type cmsRig struct {
	*rig
	to     *cms.Recipient
	alice  crypto.Signer
	aliceC *x509.Certificate
	stream uint64
}

func newCMSRig(t *testing.T) *cmsRig {
	r := newRig(t)
	key, err := cms.NewSoftwareKey(r.bob)
	if err != nil {
		t.Fatal(err)
	}
	id, err := cms.NewIdentity(unwrapKey{key.(cms.ECDHKey)})
	if err != nil {
		t.Fatal(err)
	}
	r.cfg.CMS.Keys = cms.Identities{id}
	to, err := cms.NewKeyRecipient(r.bob.Public(), 0)
	if err != nil {
		t.Fatal(err)
	}
	alice := p256(t)
	cert, err := cms.SelfSignedCertificate(alice, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &cmsRig{rig: r, to: to, alice: alice, aliceC: cert, stream: randomStream()}
}

// unwrapKey reports the software key's failures as envelope.ErrUnwrap,
// as a token's keys do.
type unwrapKey struct{ cms.ECDHKey }

func (k unwrapKey) ECDH(peer []byte) ([]byte, error) {
	z, err := k.ECDHKey.ECDH(peer)
	if err != nil {
		return nil, envelope.ErrUnwrap
	}
	return z, nil
}

// seal writes a CMS message to bob, signed by alice with serial when it is
// not zero.
func (r *cmsRig) seal(plain []byte, serial uint64, opts cms.SealOptions) []byte {
	r.t.Helper()
	if serial != 0 {
		opts.Sender = &cms.Sender{Signer: r.alice, Certificate: r.aliceC, StreamID: r.stream, Serial: serial, Time: time.Now()}
	}
	var b bytes.Buffer
	w, err := cms.Seal(&b, []*cms.Recipient{r.to}, &opts)
	if err != nil {
		r.t.Fatal(err)
	}
	w.Write(plain)
	if err := w.Close(); err != nil {
		r.t.Fatal(err)
	}
	return b.Bytes()
}

// TestCMSPolicy: CMS messages go through the receive policy as envelopes
// do, to a file (Batch) and to a stream: a trusted signer's message once,
// then a replay; an untrusted one refused without burning its serial;
// unsigned ones only with AllowAnonymous; EnvelopedData only with
// AllowUnauthenticated; tampered and truncated ones rejected with nothing
// released.
func TestCMSPolicy(t *testing.T) {
	r := newCMSRig(t)
	plain := []byte("cms through the receive policy")
	rcv := r.receiver()

	m1 := r.seal(plain, 1, cms.SealOptions{})
	r.refused(rcv, m1, envelope.ErrRejected, `^message is signed by an untrusted key [0-9a-f]{64}$`)
	r.ledgerIs("", 0, 0)
	r.trust("alice", r.alice.Public())
	rcv = r.receiver()
	r.openOK(rcv, m1, plain)
	r.ledgerIs("alice", 1, 1)
	r.refused(rcv, m1, state.ErrReplay, `replayed envelope: serial 1 from alice`)
	m2 := r.seal(plain, 2, cms.SealOptions{Armor: true})
	if got, err := openStream(rcv, m2); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("stream: %q, %v", got, err)
	}
	r.ledgerIs("alice", 2, 2)
	r.refused(rcv, m2, state.ErrReplay, `replayed envelope: serial 2`)

	unsigned := r.seal(plain, 0, cms.SealOptions{})
	r.refused(rcv, unsigned, cms.ErrUnsigned, `not signed`)
	anon := r.receiver(func(c *receive.Config) { c.AllowAnonymous = true })
	r.openOK(anon, unsigned, plain)
	if got, err := openStream(anon, unsigned); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("unsigned to a stream: %q, %v", got, err)
	}

	cbc := r.seal(plain, 3, cms.SealOptions{Compat: true})
	r.refused(rcv, cbc, cms.ErrUnauthenticated, `EnvelopedData`)
	r.ledgerIs("alice", 2, 2)
	unauth := r.receiver(func(c *receive.Config) { c.CMS.AllowUnauthenticated = true })
	r.openOK(unauth, cbc, plain)
	r.ledgerIs("alice", 3, 3)

	m4 := r.seal(bytes.Repeat(plain, 10000), 4, cms.SealOptions{})
	for _, bad := range [][]byte{flip(m4, len(m4)/2), flip(m4, len(m4)-20), m4[:len(m4)-30], m4[:len(m4)/2]} {
		r.refused(rcv, bad, envelope.ErrRejected, `.`)
	}
	r.ledgerIs("alice", 3, 3)
	r.openOK(rcv, m4, bytes.Repeat(plain, 10000))
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 1
	return c
}

// TestCMSFreshness: signingTime is judged like an envelope's timestamp,
// and a refusal for it burns nothing.
func TestCMSFreshness(t *testing.T) {
	r := newCMSRig(t)
	r.trust("alice", r.alice.Public())
	m := r.seal([]byte("x"), 1, cms.SealOptions{})
	late := r.receiver(func(c *receive.Config) { c.Now = func() time.Time { return time.Now().Add(8 * 24 * time.Hour) } })
	r.refused(late, m, state.ErrReplay, `older than`)
	early := r.receiver(func(c *receive.Config) { c.Now = func() time.Time { return time.Now().Add(-time.Hour) } })
	r.refused(early, m, state.ErrReplay, `in the future`)
	r.ledgerIs("", 0, 0)
	r.openOK(r.receiver(), m, []byte("x"))
}

// TestCMSMixedBatch: tokenseal envelopes and CMS messages in one batch,
// each opened by its own kind, recorded in one ledger.
func TestCMSMixedBatch(t *testing.T) {
	r := newCMSRig(t)
	r.trust("alice", r.alice.Public())
	env := r.rig.seal([]byte("envelope"), &envelope.Sender{Signer: r.alice, StreamID: r.stream, Serial: 1, Time: time.Now()})
	msg := r.seal([]byte("cms"), 2, cms.SealOptions{})
	outs := &outputs{}
	errs := r.receiver().Batch([]receive.Item{outs.item("cms", msg), outs.item("env", env)})
	if errs[0] != nil || errs[1] != nil || string(outs.committed(0)) != "cms" || string(outs.committed(1)) != "envelope" {
		t.Fatalf("batch: %v %q %q", errs, outs.committed(0), outs.committed(1))
	}
	r.ledgerIs("alice", 2, 2)
}

// failingKey is a key whose token went away.
type failingKey struct{ cms.ECDHKey }

var errGone = errors.New("token removed")

func (failingKey) ECDH([]byte) ([]byte, error) { return nil, errGone }

// TestCMSKeyFailure: a key that fails for another reason than the data
// (a token removed) is passed on as that failure, not as a rejection.
func TestCMSKeyFailure(t *testing.T) {
	r := newCMSRig(t)
	key, _ := cms.NewSoftwareKey(r.bob)
	id, err := cms.NewIdentity(failingKey{key.(cms.ECDHKey)})
	if err != nil {
		t.Fatal(err)
	}
	rcv := r.receiver(func(c *receive.Config) { c.CMS.Keys = cms.Identities{id}; c.AllowAnonymous = true })
	msg := r.seal([]byte("x"), 0, cms.SealOptions{})
	r.refused(rcv, msg, errGone, `^token removed$`)
	if _, err := openFile(rcv, msg); errors.Is(err, envelope.ErrRejected) {
		t.Fatalf("a token failure taken for a rejection: %v", err)
	}
	none := r.receiver(func(c *receive.Config) { c.CMS.Keys = nil; c.AllowAnonymous = true })
	r.refused(none, msg, envelope.ErrRejected, `no keys to open CMS`)
	if _, err := none.Rewrap(&memOutput{}, bytes.NewReader(msg), envelope.RewrapOptions{}, receive.RewrapPolicy{}); err == nil {
		t.Fatalf("rewrap of a CMS message: %v", err)
	}
}

// TestCMSUnstamped: a message signed by another tool (openssl cms -sign,
// then -encrypt) has no stamp: refused unless AllowUnstamped, then
// opened with its freshness checked and nothing recorded.
func TestCMSUnstamped(t *testing.T) {
	r := newCMSRig(t)
	r.trust("alice", r.alice.Public())
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(r.alice)
	if err != nil {
		t.Fatal(err)
	}
	alicePEM := write("alice.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.aliceC.Raw}))
	aliceKey := write("alice.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	bobC, err := cms.IssueCertificate(r.bob.Public(), r.alice, r.aliceC, nil)
	if err != nil {
		t.Fatal(err)
	}
	bobPEM := write("bob.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: bobC.Raw}))
	in := write("in", []byte("signed by openssl"))
	openssl(t, "cms", "-sign", "-binary", "-nodetach", "-md", "sha256", "-in", in, "-signer", alicePEM, "-inkey", aliceKey, "-outform", "DER", "-out", in+".p7s")
	openssl(t, "cms", "-encrypt", "-binary", "-aes-256-gcm", "-keyid", "-recip", bobPEM, "-keyopt", "ecdh_kdf_md:sha256", "-in", in+".p7s", "-outform", "DER", "-out", in+".p7m")
	msg, err := os.ReadFile(in + ".p7m")
	if err != nil {
		t.Fatal(err)
	}
	r.refused(r.receiver(), msg, receive.ErrUnstamped, `no tokenseal stamp`)
	ok := r.receiver(func(c *receive.Config) { c.CMS.AllowUnstamped = true })
	r.openOK(ok, msg, []byte("signed by openssl"))
	r.openOK(ok, msg, []byte("signed by openssl")) // no replay protection: that is what the flag says
	r.ledgerIs("", 0, 0)
	late := r.receiver(func(c *receive.Config) {
		c.CMS.AllowUnstamped = true
		c.Now = func() time.Time { return time.Now().Add(30 * 24 * time.Hour) }
	})
	r.refused(late, msg, state.ErrReplay, `older than`)
}

func openssl(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("openssl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %v: %v\n%s", args, err, out)
	}
}
