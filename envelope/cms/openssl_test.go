package cms

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Interoperability with the real openssl (OpenSSL 3.0 on Debian), both
// ways. In CI (CI=true) a missing openssl fails the test.

func needOpenSSL(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl not found (scripts/install-deps.sh installs it)")
		}
		t.Skip("openssl not found")
	}
	return p
}

func openssl(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// files writes the test keys and certificates as PEM into a temporary
// directory: NAME.key and NAME.crt.
func files(t *testing.T) string {
	t.Helper()
	ks, ss := keys(t)
	dir := t.TempDir()
	for name, k := range ks {
		writePEM(t, filepath.Join(dir, name+".crt"), "CERTIFICATE", k.cert.Raw)
		copyFile(t, filepath.Join("testdata", "keys", name+".pem"), filepath.Join(dir, name+".key"))
	}
	for name, k := range ss {
		writePEM(t, filepath.Join(dir, name+".crt"), "CERTIFICATE", k.cert.Raw)
	}
	return dir
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func randomFile(t *testing.T, dir string, size int) (string, []byte) {
	data := make([]byte, size)
	rand.Read(data)
	path := filepath.Join(dir, fmt.Sprintf("in-%d", size))
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, data
}

// TestOpenSSLEncryptsWeDecrypt: `openssl cms -encrypt` to a certificate
// made by IssueCertificate, in every form, opened by Open with the
// software key: the same bytes.
func TestOpenSSLEncryptsWeDecrypt(t *testing.T) {
	needOpenSSL(t)
	dir := files(t)
	ks, _ := keys(t)
	type keyOpt struct {
		name string
		args []string
	}
	keyOpts := map[string][]keyOpt{
		"rsa": {
			{"oaep-sha256", []string{"-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"}},
			{"oaep-sha1", []string{"-keyopt", "rsa_padding_mode:oaep"}},
		},
		"ec": {
			{"kdf-sha1 (openssl default)", nil},
			{"kdf-sha256", []string{"-keyopt", "ecdh_kdf_md:sha256"}},
		},
	}
	forms := []struct {
		name string
		args []string
	}{
		{"DER", []string{"-outform", "DER"}},
		{"DER-stream", []string{"-outform", "DER", "-stream"}},
		{"PEM-stream", []string{"-outform", "PEM", "-stream"}},
		{"SMIME", nil},
		{"SMIME-stream-keyid", []string{"-stream", "-keyid"}},
	}
	sizes := []int{0, 1, 16, 1000, 65537, contentChunk + 100}
	i := 0
	for _, name := range []string{"rsa2048", "rsa3072", "p256", "p384"} {
		kind := "ec"
		if strings.HasPrefix(name, "rsa") {
			kind = "rsa"
		}
		for _, cipher := range []string{"-aes-256-gcm", "-aes-256-cbc", "-aes-128-gcm"} {
			for _, ko := range keyOpts[kind] {
				for _, f := range forms {
					size := sizes[i%len(sizes)]
					i++
					if size == 0 && strings.HasSuffix(cipher, "gcm") && strings.Contains(strings.Join(f.args, " "), "-stream") {
						// OpenSSL 3.0 quirk: -stream with AES-GCM fails on
						// empty input ("Error writing CMS output", exit 6).
						size = 1
					}
					in, want := randomFile(t, t.TempDir(), size)
					args := append([]string{"cms", "-encrypt", "-binary", cipher, "-in", in, "-recip", filepath.Join(dir, name+".crt")}, ko.args...)
					msg := openssl(t, append(args, f.args...)...)
					label := fmt.Sprintf("%s %s %s %s %d bytes", name, cipher, ko.name, f.name, size)
					got, _, err := openBytes(msg, ks[name].identity(t), &OpenOptions{AllowUnsigned: true, AllowUnauthenticated: cipher == "-aes-256-cbc"})
					if err != nil {
						t.Fatalf("%s: %v", label, err)
					}
					if !bytes.Equal(got, want) {
						t.Fatalf("%s: plaintext differs", label)
					}
				}
			}
		}
	}
}

// TestOpenSSLPKCS1v15Refused: openssl's default RSA key transport is
// PKCS#1 v1.5, which Open refuses before using the key.
func TestOpenSSLPKCS1v15Refused(t *testing.T) {
	needOpenSSL(t)
	dir := files(t)
	ks, _ := keys(t)
	in, _ := randomFile(t, t.TempDir(), 100)
	msg := openssl(t, "cms", "-encrypt", "-binary", "-aes-256-gcm", "-outform", "DER", "-in", in, "-recip", filepath.Join(dir, "rsa2048.crt"))
	_, _, err := openBytes(msg, ks["rsa2048"].identity(t), &OpenOptions{AllowUnsigned: true})
	if !errors.Is(err, ErrPKCS1v15) {
		t.Fatalf("PKCS#1 v1.5 message: %v", err)
	}
}

// TestWeEncryptOpenSSLDecrypts: Seal's output, in binary and PEM, to
// certificates and to bare keys, opened by `openssl cms -decrypt` with
// the software key; signed messages then pass `openssl cms -verify`
// with the signer's self-signed certificate as trust anchor.
func TestWeEncryptOpenSSLDecrypts(t *testing.T) {
	needOpenSSL(t)
	dir := files(t)
	ks, _ := keys(t)
	sizes := []int{0, 1, 15, 4096, contentChunk - 1, contentChunk + 1}
	i := 0
	for _, name := range []string{"rsa2048", "rsa3072", "p256", "p384"} {
		k := ks[name]
		for _, byCert := range []bool{true, false} {
			for _, compat := range []bool{false, true} {
				for _, armor := range []bool{false, true} {
					for _, signer := range []string{"", "sign-p256", "sign-rsa2048"} {
						size := sizes[i%len(sizes)]
						i++
						label := fmt.Sprintf("%s cert=%v compat=%v armor=%v signer=%q %d bytes", name, byCert, compat, armor, signer, size)
						weEncrypt(t, dir, label, k, byCert, &SealOptions{Compat: compat, Armor: armor}, signer, size)
					}
				}
			}
		}
	}
}

func weEncrypt(t *testing.T, dir, label string, k *testKey, byCert bool, opts *SealOptions, signer string, size int) {
	r := recipientFor(t, k, byCert)
	if signer != "" {
		opts.Sender = sender(t, signer, true)
	}
	pt := make([]byte, size)
	rand.Read(pt)
	msg := sealBytes(t, pt, []*Recipient{r}, opts)
	tmp := t.TempDir()
	in := filepath.Join(tmp, "msg")
	if err := os.WriteFile(in, msg, 0o600); err != nil {
		t.Fatal(err)
	}
	form := "DER"
	if opts.Armor {
		form = "PEM"
	}
	args := []string{"cms", "-decrypt", "-binary", "-inform", form, "-in", in, "-inkey", filepath.Join(dir, k.name+".key")}
	if byCert {
		args = append(args, "-recip", filepath.Join(dir, k.name+".crt"))
	}
	got := openssl(t, args...)
	if signer == "" {
		if !bytes.Equal(got, pt) {
			t.Fatalf("%s: openssl's plaintext differs", label)
		}
		return
	}
	inner := filepath.Join(tmp, "inner")
	if err := os.WriteFile(inner, got, 0o600); err != nil {
		t.Fatal(err)
	}
	verified := openssl(t, "cms", "-verify", "-binary", "-inform", "DER", "-in", inner, "-CAfile", filepath.Join(dir, signer+".crt"))
	if !bytes.Equal(verified, pt) {
		t.Fatalf("%s: openssl -verify's content differs", label)
	}
}

// TestOpenSSLLarge runs 100 MiB once each way, streaming on our side.
func TestOpenSSLLarge(t *testing.T) {
	needOpenSSL(t)
	if testing.Short() {
		t.Skip("100 MiB")
	}
	dir := files(t)
	ks, _ := keys(t)
	tmp := t.TempDir()
	const size = 100 << 20
	in, data := randomFile(t, tmp, size)
	want := sha256.Sum256(data)
	// openssl -> us, streamed in: the BER form with indefinite lengths.
	enc := filepath.Join(tmp, "enc")
	openssl(t, "cms", "-encrypt", "-binary", "-stream", "-aes-256-gcm", "-outform", "DER", "-in", in, "-out", enc,
		"-recip", filepath.Join(dir, "p256.crt"), "-keyopt", "ecdh_kdf_md:sha256")
	f, err := os.Open(enc)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := Open(f, ks["p256"].identity(t), &OpenOptions{AllowUnsigned: true})
	if err != nil {
		t.Fatal(err)
	}
	h := &hashOut{h: sha256.New()}
	if _, err := d.DecryptTo(h); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h.h.Sum(nil), want[:]) {
		t.Fatal("100 MiB from openssl: plaintext differs")
	}
	// us -> openssl, signed, to an RSA certificate.
	r, _ := NewCertificateRecipient(ks["rsa3072"].cert, 0)
	out, err := os.Create(filepath.Join(tmp, "ours"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := Seal(out, []*Recipient{r}, nil)
	if err != nil {
		t.Fatal(err)
	}
	src, _ := os.Open(in)
	defer src.Close()
	if _, err := io.Copy(w, src); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out.Close()
	got := openssl(t, "cms", "-decrypt", "-binary", "-inform", "DER", "-in", out.Name(),
		"-inkey", filepath.Join(dir, "rsa3072.key"), "-recip", filepath.Join(dir, "rsa3072.crt"))
	if sha256.Sum256(got) != want {
		t.Fatal("100 MiB to openssl: plaintext differs")
	}
}

// hashOut is a PendingOutput that only hashes.
type hashOut struct {
	h interface {
		io.Writer
		Sum([]byte) []byte
	}
}

func (o *hashOut) Write(p []byte) (int, error) { return o.h.Write(p) }
func (o *hashOut) Discard() error              { return nil }
