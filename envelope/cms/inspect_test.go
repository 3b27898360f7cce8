package cms

import (
	"bytes"
	"strings"
	"testing"
)

func TestInspect(t *testing.T) {
	ks, _ := keys(t)
	a, _ := NewCertificateRecipient(ks["rsa2048"].cert, 0)
	b, _ := NewKeyRecipient(ks["p384"].priv.Public(), 0)
	for _, opts := range []*SealOptions{nil, {Compat: true, Armor: true}} {
		msg := sealBytes(t, make([]byte, 1000), []*Recipient{a, b}, opts)
		info, err := Inspect(bytes.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		compat := opts != nil
		if info.Authenticated == compat || !info.Indefinite || len(info.Recipients) != 2 || info.EncryptedContentType != "data" {
			t.Fatalf("%+v", info)
		}
		if compat && (info.Form != FormPEM || info.ContentAlgorithm != "AES-256-CBC" || info.ContentLength != 1008 || info.Version != 2) {
			t.Fatalf("%+v", info)
		}
		if !compat && (info.Form != FormBinary || info.ContentAlgorithm != "AES-256-GCM" || info.ContentLength != 1000 || info.Version != 0) {
			t.Fatalf("%+v", info)
		}
		var algs []string
		for _, r := range info.Recipients {
			algs = append(algs, r.Type+": "+r.Algorithm+" "+r.ID.String())
		}
		got := strings.Join(algs, "\n")
		for _, want := range []string{
			"KeyTransRecipientInfo: RSAES-OAEP SHA-256 issuer \"CN=sign-p256\" serial",
			"KeyAgreeRecipientInfo: ECDH dhSinglePass-stdDH-sha256kdf-scheme, AES-256 key wrap subjectKeyIdentifier ",
		} {
			if !strings.Contains(got, want) {
				t.Fatalf("recipients:\n%s\nwant %q", got, want)
			}
		}
	}
}
