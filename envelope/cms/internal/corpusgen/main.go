// Command corpusgen writes the seed corpus of envelope/cms's FuzzOpen:
// messages from Seal (every kind, small) and from openssl cms (every
// form), addressed by subject key identifier to the test keys in
// envelope/cms/testdata/keys, so that the fuzzer starts from messages
// that open. Run from the repository root:
//
//	go run ./envelope/cms/internal/corpusgen
package main

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/tokenseal/tokenseal/envelope/cms"
)

const (
	keyDir = "envelope/cms/testdata/keys"
	outDir = "envelope/cms/testdata/fuzz/FuzzOpen"
)

func main() {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		log.Fatal(err)
	}
	tmp, err := os.MkdirTemp("", "corpusgen")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	signP256 := load("sign-p256")
	signRSA := load("sign-rsa2048")
	issuerCert, err := cms.SelfSignedCertificate(signP256, &cms.CertOptions{Subject: pkix.Name{CommonName: "corpus"}})
	check(err)
	for _, name := range []string{"rsa2048", "p256", "p384"} {
		priv := load(name)
		r, err := cms.NewKeyRecipient(priv.Public(), 0)
		check(err)
		for _, c := range []struct {
			suffix string
			opts   cms.SealOptions
		}{
			{"gcm", cms.SealOptions{}},
			{"cbc", cms.SealOptions{Compat: true}},
			{"gcm-pem", cms.SealOptions{Armor: true}},
			{"gcm-signed-ecdsa", cms.SealOptions{Sender: &cms.Sender{Signer: signP256, Certificate: issuerCert, StreamID: 1, Serial: 2, Time: time.Unix(1.7e9, 0)}}},
			{"cbc-signed-pss", cms.SealOptions{Compat: true, Sender: &cms.Sender{Signer: signRSA, StreamID: 1, Serial: 3, Time: time.Unix(1.7e9, 0)}}},
		} {
			var buf bytes.Buffer
			w, err := cms.Seal(&buf, []*cms.Recipient{r}, &c.opts)
			check(err)
			fmt.Fprintf(w, "seed for %s %s\n", name, c.suffix)
			check(w.Close())
			write("seal-"+c.suffix+"-"+name, buf.Bytes())
		}
		cert, err := cms.IssueCertificate(priv.Public(), signP256, issuerCert, nil)
		check(err)
		certPath := filepath.Join(tmp, name+".crt")
		check(os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600))
		in := filepath.Join(tmp, "in")
		check(os.WriteFile(in, []byte("openssl seed\n"), 0o600))
		keyopt := []string{"-keyopt", "ecdh_kdf_md:sha256"}
		if name == "rsa2048" {
			keyopt = []string{"-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"}
		}
		for _, f := range []struct {
			suffix string
			args   []string
		}{
			{"gcm-der", []string{"-aes-256-gcm", "-outform", "DER"}},
			{"gcm-stream", []string{"-aes-256-gcm", "-outform", "DER", "-stream"}},
			{"gcm-pem", []string{"-aes-256-gcm", "-outform", "PEM", "-stream"}},
			{"cbc-smime", []string{"-aes-256-cbc"}},
		} {
			args := append([]string{"cms", "-encrypt", "-binary", "-keyid", "-in", in, "-recip", certPath}, keyopt...)
			out, err := exec.Command("openssl", append(args, f.args...)...).Output()
			check(err)
			write("openssl-"+f.suffix+"-"+name, out)
		}
	}
	// A few that must fail early.
	write("empty", nil)
	write("sequence-only", []byte{0x30, 0x80, 0x00, 0x00})
	write("pem-empty", []byte("-----BEGIN CMS-----\n-----END CMS-----\n"))
	write("smime-headers", []byte("MIME-Version: 1.0\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data\nContent-Transfer-Encoding: base64\n\nMIAGCSqGSIb3DQEHA6CA\n"))
}

func load(name string) crypto.Signer {
	data, err := os.ReadFile(filepath.Join(keyDir, name+".pem"))
	check(err)
	block, _ := pem.Decode(data)
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	check(err)
	return k.(crypto.Signer)
}

func write(name string, data []byte) {
	body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
	check(os.WriteFile(filepath.Join(outDir, name), []byte(body), 0o644))
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
