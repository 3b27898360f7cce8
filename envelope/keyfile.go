package envelope

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// KeyRole is what a key file says its key is for: the "# tokenseal ROLE"
// line that `tokenseal key export` writes (docs/key-files.md).
type KeyRole uint8

// Roles. A file without a role line (OpenSSL's output, a certificate) is
// RoleUnmarked and may be used either way.
const (
	RoleUnmarked        KeyRole = iota
	RoleRecipient               // an exchange key: seal to it
	RoleSender                  // a signing key: trust it as a sender
	RoleRecipientSender         // a key allowed both (made by another tool)
)

// String is the role as a key file writes it ("" for RoleUnmarked).
func (r KeyRole) String() string {
	switch r {
	case RoleRecipient:
		return "recipient"
	case RoleSender:
		return "sender"
	case RoleRecipientSender:
		return "recipient+sender"
	}
	return ""
}

// ErrKeyRole is wrapped by the refusal of a key file whose role line
// forbids the use it was given for: a sender's key as a recipient, or a
// recipient's key as a sender.
var ErrKeyRole = errors.New("key file marked for another use")

// KeyFile is a parsed key file: a public key or certificate, PEM or DER,
// with tokenseal's comment lines (docs/key-files.md).
type KeyFile struct {
	Public   crypto.PublicKey
	Role     KeyRole
	Label    string      // the "label" comment, informational only
	OAEPHash crypto.Hash // from "oaep-hash" (RSA keys); 0 when absent

	certUsage x509.KeyUsage // a certificate's key usage; 0 when none
}

// Known comment names; any other name is ignored.
const (
	commentLabel    = "label"
	commentKeyID    = "key-id"
	commentOAEPHash = "oaep-hash"
)

// ParseKeyFile parses a key file: the DER of a SubjectPublicKeyInfo or of
// an X.509 certificate, or text holding exactly one PEM "PUBLIC KEY" or
// "CERTIFICATE" block. Comment lines before the PEM block are read as
// docs/key-files.md specifies:
//
//   - "# tokenseal recipient", "# tokenseal sender" or
//     "# tokenseal recipient+sender" is the key's role, given once;
//   - "# NAME: VALUE" with NAME (any case) "label", "key-id" or
//     "oaep-hash", each given once: a key-id must be the key's key
//     identifier in hex, an oaep-hash is "sha1" or "sha256" and only on
//     an RSA key; other names are ignored;
//   - any other comment, and any line before the block that is not a
//     comment, is ignored.
//
// After the block only blank lines may follow: a comment line there, a
// second block or other text is refused.
func ParseKeyFile(data []byte) (*KeyFile, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return parseDERKey(data)
	}
	if err := checkAfterBlock(rest); err != nil {
		return nil, err
	}
	kf := &KeyFile{}
	head := data[:bytes.Index(data, []byte("-----BEGIN"))]
	ids, err := kf.readComments(head)
	if err != nil {
		return nil, err
	}
	switch block.Type {
	case "PUBLIC KEY":
		kf.Public, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "CERTIFICATE":
		var c *x509.Certificate
		if c, err = x509.ParseCertificate(block.Bytes); err == nil {
			kf.Public, kf.certUsage = c.PublicKey, c.KeyUsage
		}
	default:
		return nil, fmt.Errorf("PEM block %q is not a public key or certificate", block.Type)
	}
	if err != nil {
		return nil, err
	}
	return kf, kf.check(ids)
}

func parseDERKey(data []byte) (*KeyFile, error) {
	if pub, err := x509.ParsePKIXPublicKey(data); err == nil {
		return &KeyFile{Public: pub}, nil
	}
	if c, err := x509.ParseCertificate(data); err == nil {
		return &KeyFile{Public: c.PublicKey, certUsage: c.KeyUsage}, nil
	}
	return nil, errors.New("not a PEM or DER public key or certificate")
}

// checkAfterBlock allows only blank lines after the PEM block.
func checkAfterBlock(rest []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(rest))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
		case strings.HasPrefix(line, "#"):
			return errors.New("comment line after the PEM block: tokenseal reads comments only before it")
		case strings.HasPrefix(line, "-----BEGIN"):
			return errors.New("more than one PEM block")
		default:
			return errors.New("data after the PEM block")
		}
	}
	return nil
}

// readComments reads the comment lines of head, the text before the PEM
// block, into kf, and returns the key-id comment ("" when absent).
func (kf *KeyFile) readComments(head []byte) (keyID string, err error) {
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(head))
	for sc.Scan() {
		text, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "#")
		if !ok {
			continue
		}
		text = strings.TrimSpace(text)
		if role, ok := parseRoleLine(text); ok {
			if kf.Role != RoleUnmarked {
				return "", errors.New("two \"# tokenseal\" role lines")
			}
			kf.Role = role
			continue
		}
		name, value, ok := strings.Cut(text, ":")
		name, value = strings.ToLower(strings.TrimSpace(name)), strings.TrimSpace(value)
		if !ok || (name != commentLabel && name != commentKeyID && name != commentOAEPHash) {
			continue // free text, or a name this version does not know
		}
		if seen[name] {
			return "", fmt.Errorf("comment %q given twice", name)
		}
		seen[name] = true
		switch name {
		case commentLabel:
			kf.Label = value
		case commentKeyID:
			keyID = value
		case commentOAEPHash:
			if kf.OAEPHash, err = parseOAEPHash(value); err != nil {
				return "", err
			}
		}
	}
	return keyID, nil
}

// parseRoleLine reads "tokenseal ROLE".
func parseRoleLine(text string) (KeyRole, bool) {
	for _, r := range []KeyRole{RoleRecipient, RoleSender, RoleRecipientSender} {
		if text == "tokenseal "+r.String() {
			return r, true
		}
	}
	return RoleUnmarked, false
}

func parseOAEPHash(v string) (crypto.Hash, error) {
	switch strings.ToLower(v) {
	case "sha1":
		return crypto.SHA1, nil
	case "sha256":
		return crypto.SHA256, nil
	}
	return 0, fmt.Errorf("unknown oaep-hash %q (want sha1 or sha256)", v)
}

// check holds the comments against the key: the key-id must be the
// key's, and an oaep-hash is for RSA keys only.
func (kf *KeyFile) check(keyID string) error {
	if keyID != "" {
		id, err := KeyIDOf(kf.Public)
		if err != nil {
			return err
		}
		if b, err := hex.DecodeString(keyID); err != nil || !bytes.Equal(b, id[:]) {
			return fmt.Errorf("key-id comment %s does not match the key (%s)", keyID, id)
		}
	}
	if _, ec := kf.Public.(*ecdsa.PublicKey); ec && kf.OAEPHash != 0 {
		return errors.New("oaep-hash comment on an EC key (it is for RSA keys only)")
	}
	return nil
}
