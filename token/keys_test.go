package token_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenseal/tokenseal/internal/p11test"
	"github.com/tokenseal/tokenseal/token"
)

// writeDER writes der to a file in t's temporary directory.
func writeDER(t *testing.T, der []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "obj.der")
	if err := os.WriteFile(p, der, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// swapPublic deletes the public-key object with id and writes attacker's
// key under the same label and id, with pkcs11-tool and without the PIN
// where the token allows it (else logged in, as an insider would).
func swapPublic(t *testing.T, pt *p11test.Token, label string, id []byte, attacker crypto.PublicKey) (withPIN bool, err error) {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(attacker)
	if err != nil {
		t.Fatal(err)
	}
	f := writeDER(t, der)
	hexID := hex.EncodeToString(id)
	for _, login := range [][]string{nil, {"--login", "--pin", pt.PIN}} {
		if _, err = pt.Tool(append(login, "--delete-object", "--type", "pubkey", "--id", hexID)...); err != nil {
			t.Logf("delete with login=%v: %v", login != nil, err)
			continue
		}
		if _, err = pt.Tool(append(login, "--write-object", f, "--type", "pubkey", "--id", hexID, "--label", label)...); err != nil {
			t.Logf("write with login=%v: %v", login != nil, err)
		}
		return login != nil, err
	}
	return false, err
}

// TestPublicKeySwap is the attack of issue 10: bob's public-key object
// replaced by an attacker's key under the same label and CKA_ID. The key
// must not be trusted: Check (which export, seal -r token: and doctor
// run) refuses it naming the key, and a signature never goes out under
// the attacker's key.
func TestPublicKeySwap(t *testing.T) {
	p11test.Each(t, func(t *testing.T, pt *p11test.Token) {
		tok := openToken(t, pt)
		var victims []*token.Key
		victims = append(victims, generate(t, tok, "bob-rsa", "rsa-2048", token.UsageExchange))
		switch {
		case pt.Caps().ECDH:
			victims = append(victims, generate(t, tok, "bob-ec", "p256", token.UsageExchange))
		case pt.Caps().EC:
			victims = append(victims, generate(t, tok, "bob-ec", "p256", token.UsageSign))
		}
		tok.Close()
		for _, v := range victims {
			var attacker crypto.PublicKey
			if strings.HasPrefix(v.Type, "rsa") {
				k, _ := rsa.GenerateKey(rand.Reader, 2048)
				attacker = &k.PublicKey
			} else {
				k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				attacker = &k.PublicKey
			}
			withPIN, err := swapPublic(t, pt, v.Label, v.ID, attacker)
			t.Logf("%s: public-key object swapped (needed the PIN: %v): %v", v.Label, withPIN, err)
			if withPIN != (pt.Kind == p11test.TPM2) {
				t.Errorf("%s: swapping needed the PIN: %v", v.Label, withPIN)
			}
			if err != nil {
				// tpm2-pkcs11 makes no EC public-key objects: the old
				// one is gone, none came in its place.
				if pt.Kind != p11test.TPM2 || v.Curve == "" {
					t.Fatal(err)
				}
				v.Label = "" // nothing to detect; checked below
			}
		}
		tok = openToken(t, pt)
		for _, v := range victims {
			if v.Label == "" {
				k, err := tok.FindKey("bob-ec")
				if err != nil || k.Check() != nil {
					t.Errorf("bob-ec without its public-key object: %v", err)
				}
				continue
			}
			k, err := tok.FindKey(v.Label)
			if err != nil {
				t.Fatalf("%s: %v", v.Label, err)
			}
			err = k.Check()
			if !errors.Is(err, token.ErrKeyMismatch) || !errors.Is(err, token.ErrToken) || !strings.Contains(err.Error(), v.Label) {
				t.Errorf("%s: Check = %v, want ErrKeyMismatch naming the key", v.Label, err)
			}
			if k.Usage.CanSign() {
				if s, err := k.Signer(); err == nil {
					if _, err := s.Sign(rand.Reader, make([]byte, 32), crypto.SHA256); !errors.Is(err, token.ErrKeyMismatch) {
						t.Errorf("%s: signing under the swapped key: %v", v.Label, err)
					}
				}
			}
		}
	})
}

// TestForeignKeys: keys made by pkcs11-tool with any CKA_ID are found by
// what they are, used, and told apart from keys tokenseal made; a key
// whose public key is only in an X.509 certificate (as PIV cards store
// them) too.
func TestForeignKeys(t *testing.T) {
	p11test.Each(t, func(t *testing.T, pt *p11test.Token) {
		types := []string{"rsa:2048"}
		if pt.Caps().EC {
			types = append(types, "EC:prime256v1")
		}
		for i, kt := range types {
			id := []byte{0x01 + byte(i)}
			usage := "--usage-decrypt"
			if strings.HasPrefix(kt, "EC") {
				usage = "--usage-sign"
				if pt.Caps().ECDH {
					usage = "--usage-derive"
				}
			}
			if out, err := pt.Tool("--login", "--pin", pt.PIN, "--keypairgen", "--key-type", kt, "--label", "foreign-"+kt[:2], "--id", hex.EncodeToString(id), usage); err != nil {
				t.Fatalf("pkcs11-tool keypairgen %s: %v\n%s", kt, err, out)
			}
		}
		tok := openToken(t, pt)
		keys, err := tok.Keys()
		if err != nil || len(keys) != len(types) {
			t.Fatalf("Keys: %d, %v", len(keys), err)
		}
		for _, k := range keys {
			if k.Generated() || len(k.ID) != 1 {
				t.Errorf("%s: generated=%v id %x", k.Label, k.Generated(), k.ID)
			}
			spki := sha256.Sum256(k.SPKI())
			if k2, err := tok.FindKeyByID(spki[:]); err != nil || k2.Label != k.Label {
				t.Errorf("%s: by key id: %v", k.Label, err)
			}
			if err := k.Check(); err != nil {
				t.Errorf("%s: Check: %v", k.Label, err)
			}
			useKey(t, k)
		}
		// The RSA key's public-key object goes; a certificate for it
		// stays: the key is found through the certificate.
		rk, err := tok.FindKeyByID([]byte{1})
		if err != nil {
			t.Fatal(err)
		}
		tok.Close()
		cert := certFor(t, rk.Public())
		if _, err := pt.Tool("--login", "--pin", pt.PIN, "--write-object", writeDER(t, cert), "--type", "cert", "--id", "01", "--label", "foreign-cert"); err != nil {
			t.Fatalf("write cert: %v", err)
		}
		if _, err := pt.Tool("--login", "--pin", pt.PIN, "--delete-object", "--type", "pubkey", "--id", "01"); err != nil {
			t.Fatalf("delete pubkey: %v", err)
		}
		tok = openToken(t, pt)
		k, err := tok.FindKeyByID([]byte{1})
		if err != nil || !k.Public().(*rsa.PublicKey).Equal(rk.Public()) {
			t.Fatalf("key with a certificate only: %v", err)
		}
		if err := k.Check(); err != nil {
			t.Error(err)
		}
		useKey(t, k)
	})
}

// useKey puts a key to its use: an OAEP round trip, ECDH, or a signature.
func useKey(t *testing.T, k *token.Key) {
	t.Helper()
	switch pub := k.Public().(type) {
	case *rsa.PublicKey:
		h, err := k.OAEPHash()
		if err != nil {
			t.Fatalf("%s: %v", k.Label, err)
		}
		ct, _ := rsa.EncryptOAEP(h.New(), rand.Reader, pub, []byte("file key"), nil)
		if pt, err := k.DecryptOAEP(h, ct); err != nil || string(pt) != "file key" {
			t.Errorf("%s: DecryptOAEP: %q %v", k.Label, pt, err)
		}
	case *ecdsa.PublicKey:
		if k.Usage.CanExchange() {
			eph, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			e, _ := eph.ECDH()
			if _, err := k.ECDH(e.PublicKey().Bytes()); err != nil {
				t.Errorf("%s: ECDH: %v", k.Label, err)
			}
			return
		}
		s, err := k.Signer()
		if err == nil {
			_, err = s.Sign(rand.Reader, make([]byte, 32), crypto.SHA256)
		}
		if err != nil {
			t.Errorf("%s: sign: %v", k.Label, err)
		}
	}
}

// certFor makes an X.509 certificate for pub, signed by a throwaway CA.
func certFor(t *testing.T, pub crypto.PublicKey) []byte {
	t.Helper()
	ca, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "foreign"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, ca)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
