package envelope

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// NewRecipient returns the recipient for a public key: RSA-OAEP with
// oaepHash for RSA keys (crypto.SHA256 when zero), ECDH for P-256 and
// P-384 keys.
func NewRecipient(pub crypto.PublicKey, oaepHash crypto.Hash) (Recipient, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if oaepHash == 0 {
			oaepHash = crypto.SHA256
		}
		return newRSARecipient(k, oaepHash)
	case *ecdsa.PublicKey:
		return newECRecipient(k)
	}
	return nil, fmt.Errorf("unsupported public key type %T", pub)
}

// ParseRecipient parses a recipient's public key file: a PEM "PUBLIC KEY"
// (SubjectPublicKeyInfo) or "CERTIFICATE" block, or the DER of either.
//
// Comment lines before a PEM block, in the form "# name: value", are read
// as the exported recipient files of `tokenseal key export` write them:
// "oaep-hash" (sha1 or sha256) chooses the OAEP digest the recipient's
// token accepts, and "key-id", when present, must match the key. Without
// an oaep-hash line an RSA recipient gets SHA-256.
func ParseRecipient(data []byte) (Recipient, error) {
	pub, comments, err := parsePublic(data)
	if err != nil {
		return nil, err
	}
	hash := crypto.SHA256
	switch v := comments["oaep-hash"]; v {
	case "":
	case "sha1":
		hash = crypto.SHA1
	case "sha256":
		hash = crypto.SHA256
	default:
		return nil, fmt.Errorf("unknown oaep-hash %q", v)
	}
	return NewRecipient(pub, hash)
}

// ParsePublicKey parses a PEM or DER public key (SubjectPublicKeyInfo) or
// certificate, as ParseRecipient does, and returns its public key.
func ParsePublicKey(data []byte) (crypto.PublicKey, error) {
	pub, _, err := parsePublic(data)
	return pub, err
}

func parsePublic(data []byte) (crypto.PublicKey, map[string]string, error) {
	block, rest := pem.Decode(data)
	comments := map[string]string{}
	var pub crypto.PublicKey
	var err error
	if block != nil {
		if len(bytes.TrimSpace(rest)) != 0 {
			return nil, nil, errors.New("more than one PEM block")
		}
		head := data[:bytes.Index(data, []byte("-----BEGIN"))]
		sc := bufio.NewScanner(bytes.NewReader(head))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if !strings.HasPrefix(line, "#") {
				continue
			}
			name, value, ok := strings.Cut(strings.TrimSpace(line[1:]), ":")
			if ok {
				comments[strings.TrimSpace(name)] = strings.TrimSpace(value)
			}
		}
		switch block.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "CERTIFICATE":
			pub, err = certKey(block.Bytes)
		default:
			return nil, nil, fmt.Errorf("PEM block %q is not a public key or certificate", block.Type)
		}
	} else {
		pub, err = x509.ParsePKIXPublicKey(data)
		if err != nil {
			pub, err = certKey(data)
			if err != nil {
				return nil, nil, errors.New("not a PEM or DER public key or certificate")
			}
		}
	}
	if err != nil {
		return nil, nil, err
	}
	if want := comments["key-id"]; want != "" {
		id, err := KeyIDOf(pub)
		if err != nil {
			return nil, nil, err
		}
		if b, err := hex.DecodeString(want); err != nil || !bytes.Equal(b, id[:]) {
			return nil, nil, fmt.Errorf("key-id comment %s does not match the key (%s)", want, id)
		}
	}
	return pub, comments, nil
}

func certKey(der []byte) (crypto.PublicKey, error) {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	if c.KeyUsage != 0 {
		switch c.PublicKey.(type) {
		case *rsa.PublicKey:
			if c.KeyUsage&(x509.KeyUsageKeyEncipherment|x509.KeyUsageDataEncipherment) == 0 {
				return nil, errors.New("certificate's key usage does not allow key encipherment")
			}
		case *ecdsa.PublicKey:
			if c.KeyUsage&x509.KeyUsageKeyAgreement == 0 {
				return nil, errors.New("certificate's key usage does not allow key agreement")
			}
		}
	}
	return c.PublicKey, nil
}
