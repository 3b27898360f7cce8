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
		return NewRSARecipient(k, oaepHash)
	case *ecdsa.PublicKey:
		return NewECRecipient(k)
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
	block, rest := pem.Decode(data)
	var pub crypto.PublicKey
	var err error
	hash := crypto.SHA256
	var wantID string
	if block != nil {
		if len(bytes.TrimSpace(rest)) != 0 {
			return nil, errors.New("more than one PEM block")
		}
		comments := data[:bytes.Index(data, []byte("-----BEGIN"))]
		sc := bufio.NewScanner(bytes.NewReader(comments))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if !strings.HasPrefix(line, "#") {
				continue
			}
			name, value, ok := strings.Cut(strings.TrimSpace(line[1:]), ":")
			if !ok {
				continue
			}
			value = strings.TrimSpace(value)
			switch strings.TrimSpace(name) {
			case "oaep-hash":
				switch value {
				case "sha1":
					hash = crypto.SHA1
				case "sha256":
					hash = crypto.SHA256
				default:
					return nil, fmt.Errorf("unknown oaep-hash %q", value)
				}
			case "key-id":
				wantID = value
			}
		}
		switch block.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "CERTIFICATE":
			pub, err = certKey(block.Bytes)
		default:
			return nil, fmt.Errorf("PEM block %q is not a public key or certificate", block.Type)
		}
	} else {
		pub, err = x509.ParsePKIXPublicKey(data)
		if err != nil {
			pub, err = certKey(data)
			if err != nil {
				return nil, errors.New("not a PEM or DER public key or certificate")
			}
		}
	}
	if err != nil {
		return nil, err
	}
	if wantID != "" {
		id, err := KeyIDOf(pub)
		if err != nil {
			return nil, err
		}
		if b, err := hex.DecodeString(wantID); err != nil || !bytes.Equal(b, id[:]) {
			return nil, fmt.Errorf("key-id comment %s does not match the key (%s)", wantID, id)
		}
	}
	return NewRecipient(pub, hash)
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
