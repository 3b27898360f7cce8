package cms

import (
	"bytes"
	"errors"
	"testing"

	"github.com/tokenseal/tokenseal/envelope"
)

// TestPolicy: what Open and DecryptTo refuse by the caller's options.
func TestPolicy(t *testing.T) {
	ks, _ := keys(t)
	k := ks["p256"]
	r := recipientFor(t, k, true)
	signer := sender(t, "sign-p256", true)
	other := sender(t, "sign-rsa2048", false)
	unsigned := sealBytes(t, []byte("hello"), []*Recipient{r}, nil)
	signed := sealBytes(t, []byte("hello"), []*Recipient{r}, &SealOptions{Sender: signer})
	cbc := sealBytes(t, []byte("hello"), []*Recipient{r}, &SealOptions{Compat: true, Sender: signer})
	trust := trusted{signer.Signer.Public()}
	for _, c := range []struct {
		name string
		msg  []byte
		opts *OpenOptions
		want func(error) bool
	}{
		{"unsigned refused by default", unsigned, &OpenOptions{Senders: trust}, is(ErrUnsigned)},
		{"unsigned allowed", unsigned, &OpenOptions{AllowUnsigned: true}, is(nil)},
		{"signed, trusted", signed, &OpenOptions{Senders: trust}, is(nil)},
		{"signed, untrusted", signed, &OpenOptions{Senders: trusted{other.Signer.Public()}}, unknownSender},
		{"signed, no senders given", signed, &OpenOptions{AllowUnsigned: true}, is(errNoSenders)},
		{"EnvelopedData refused by default", cbc, &OpenOptions{Senders: trust}, is(ErrUnauthenticated)},
		{"EnvelopedData allowed, signed", cbc, &OpenOptions{Senders: trust, AllowUnauthenticated: true}, is(nil)},
		{"EnvelopedData, untrusted sender named", cbc, &OpenOptions{Senders: trusted{}, AllowUnauthenticated: true}, unknownSender},
	} {
		got, res, err := openBytes(c.msg, k.identity(t), c.opts)
		if !c.want(err) {
			t.Fatalf("%s: %v", c.name, err)
		}
		if errors.Is(err, ErrRejected) != errors.Is(err, envelope.ErrRejected) {
			t.Fatalf("%s: %v does not match envelope.ErrRejected", c.name, err)
		}
		if err == nil && (string(got) != "hello" || res.Length != 5) {
			t.Fatalf("%s: %q", c.name, got)
		}
	}
}

func is(target error) func(error) bool {
	return func(err error) bool {
		if target == nil {
			return err == nil
		}
		return errors.Is(err, target)
	}
}

func unknownSender(err error) bool {
	var us *UnknownSenderError
	return errors.As(err, &us) && errors.Is(err, ErrRejected)
}

// TestSniff tells CMS from other input in every form.
func TestSniff(t *testing.T) {
	ks, _ := keys(t)
	r := recipientFor(t, ks["rsa2048"], false)
	for _, opts := range []*SealOptions{nil, {Armor: true}, {Compat: true}} {
		msg := sealBytes(t, nil, []*Recipient{r}, opts)
		if !Sniff(msg[:64]) {
			t.Fatalf("%+v: not sniffed as CMS", opts)
		}
	}
	smime := []byte("MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n")
	if !Sniff(smime) {
		t.Fatal("S/MIME not sniffed")
	}
	for _, other := range [][]byte{
		[]byte("tokenseal\x01"), []byte("-----BEGIN TOKENSEAL ENVELOPE-----"), {0x30, 0x03, 0x02, 0x01, 0x00},
		{0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02}, // signedData
		nil, {0x30},
	} {
		if Sniff(other) {
			t.Fatalf("%q sniffed as CMS", other)
		}
	}
}

// TestUseOnce: a Decrypter decrypts once.
func TestUseOnce(t *testing.T) {
	ks, _ := keys(t)
	r := recipientFor(t, ks["p384"], false)
	msg := sealBytes(t, []byte("x"), []*Recipient{r}, nil)
	d, err := Open(bytes.NewReader(msg), ks["p384"].identity(t), &OpenOptions{AllowUnsigned: true})
	if err != nil {
		t.Fatal(err)
	}
	if d.Recipient().IsIssuerAndSerial() || !d.Authenticated() {
		t.Fatalf("recipient %v", d.Recipient())
	}
	if _, err := d.DecryptTo(&memOut{}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DecryptTo(&memOut{}); err == nil {
		t.Fatal("second DecryptTo succeeded")
	}
	if _, err := d.VerifyTo(&bytes.Buffer{}); err == nil {
		t.Fatal("VerifyTo after DecryptTo succeeded")
	}
}
