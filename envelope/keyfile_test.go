package envelope_test

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/tokenseal/tokenseal/envelope"
)

// TestParseKeyFile holds ParseKeyFile to docs/key-files.md: the role
// line, fields of any case given once, unknown names ignored, nothing
// but blank lines after the block (issue 11 finding 9: before, a comment
// after the block was "more than one PEM block" and a name's case
// silently skipped its check).
func TestParseKeyFile(t *testing.T) {
	p256, rsaKey := testKeys(t)[2], testKeys(t)[0]
	ec, rs := pemPublic(t, p256.priv.Public()), pemPublic(t, rsaKey.priv.Public())
	id, _ := envelope.KeyIDOf(p256.priv.Public())
	for _, c := range []struct {
		name, data string
		role       envelope.KeyRole
		hash       crypto.Hash
		label      string
		err        string // "" for success
	}{
		{"bare", ec, envelope.RoleUnmarked, 0, "", ""},
		{"recipient", "# tokenseal recipient\n" + ec, envelope.RoleRecipient, 0, "", ""},
		{"sender", "  #tokenseal sender  \n" + ec, envelope.RoleSender, 0, "", ""},
		{"both", "# tokenseal recipient+sender\n" + ec, envelope.RoleRecipientSender, 0, "", ""},
		{"unknown role is free text", "# tokenseal archiver\n" + ec, envelope.RoleUnmarked, 0, "", ""},
		{"two roles", "# tokenseal recipient\n# tokenseal sender\n" + ec, 0, 0, "", "two \"# tokenseal\" role lines"},
		{"fields any case", "# LABEL: Bob Smith \n# Key-ID: " + strings.ToUpper(id.String()) + "\n" + ec, 0, 0, "Bob Smith", ""},
		{"unknown names and text", "# x-note: hi\n# just a comment: with colon\nopenssl says hello\n" + ec, 0, 0, "", ""},
		{"key-id twice", "# key-id: " + id.String() + "\n# key-id: " + id.String() + "\n" + ec, 0, 0, "", `comment "key-id" given twice`},
		{"wrong key-id", "# key-id: " + strings.Repeat("00", 32) + "\n" + ec, 0, 0, "", "does not match the key"},
		{"oaep-hash", "# oaep-hash: SHA1\n" + rs, 0, crypto.SHA1, "", ""},
		{"oaep-hash unknown", "# oaep-hash: md5\n" + rs, 0, 0, "", `unknown oaep-hash "md5"`},
		{"oaep-hash on EC", "# oaep-hash: sha256\n" + ec, 0, 0, "", "oaep-hash comment on an EC key"},
		{"blank lines after", ec + "\n\n  \n", 0, 0, "", ""},
		{"comment after", ec + "# oaep-hash: sha1\n", 0, 0, "", "comment line after the PEM block"},
		{"two blocks", ec + ec, 0, 0, "", "more than one PEM block"},
		{"text after", ec + "hello\n", 0, 0, "", "data after the PEM block"},
		{"private key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", 0, 0, "", "is not a public key or certificate"},
		{"garbage", "hello", 0, 0, "", "not a PEM or DER public key or certificate"},
	} {
		kf, err := envelope.ParseKeyFile([]byte(c.data))
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err = %v, want %q", c.name, err, c.err)
			}
		case err != nil:
			t.Errorf("%s: %v", c.name, err)
		case kf.Role != c.role || kf.OAEPHash != c.hash || kf.Label != c.label:
			t.Errorf("%s: role %v hash %v label %q", c.name, kf.Role, kf.OAEPHash, kf.Label)
		}
	}
}

// Roles decide which use a key file may have; a certificate's key usage
// is checked for the use it is given (before, a signing certificate was
// refused as a sender for lacking key agreement).
func TestKeyFileRoles(t *testing.T) {
	k := testKeys(t)[2]
	ec := pemPublic(t, k.priv.Public())
	if _, err := envelope.ParseRecipient([]byte("# tokenseal sender\n" + ec)); !errors.Is(err, envelope.ErrKeyRole) {
		t.Errorf("sender as recipient: %v", err)
	}
	if _, err := envelope.ParseSenderKey([]byte("# tokenseal recipient\n" + ec)); !errors.Is(err, envelope.ErrKeyRole) {
		t.Errorf("recipient as sender: %v", err)
	}
	for _, data := range []string{ec, "# tokenseal recipient+sender\n" + ec} {
		if _, err := envelope.ParseRecipient([]byte(data)); err != nil {
			t.Errorf("as recipient: %v", err)
		}
		if _, err := envelope.ParseSenderKey([]byte(data)); err != nil {
			t.Errorf("as sender: %v", err)
		}
	}
	signing := certPEM(t, k.priv, x509.KeyUsageDigitalSignature)
	agreement := certPEM(t, k.priv, x509.KeyUsageKeyAgreement)
	if _, err := envelope.ParseSenderKey(signing); err != nil {
		t.Errorf("signing certificate as sender: %v", err)
	}
	if _, err := envelope.ParseRecipient(signing); err == nil {
		t.Error("signing certificate accepted as a recipient")
	}
	if _, err := envelope.ParseRecipient(agreement); err != nil {
		t.Errorf("key agreement certificate as recipient: %v", err)
	}
	if _, err := envelope.ParseSenderKey(agreement); err == nil {
		t.Error("key agreement certificate accepted as a sender")
	}
}

func certPEM(t *testing.T, priv crypto.Signer, usage x509.KeyUsage) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "t"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: usage}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
