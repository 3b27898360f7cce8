package main

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"encoding/hex"
	"encoding/pem"
	"fmt"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/tokenseal/tokenseal/token"
	"github.com/urfave/cli/v2"
)

// Flags naming one key pair on the token.
var (
	flagKeyLabel = &cli.StringFlag{Name: "label", Usage: "the key's `LABEL`"}
	flagKeyID    = &cli.StringFlag{Name: "id", Usage: "the key's CKA_ID or key id, in `HEX` (as `key list` shows them), for keys other tools made"}
)

var keyExportCommand = &cli.Command{
	Name:      "export",
	Usage:     "print a key's public key as PEM SubjectPublicKeyInfo, marked as a recipient's (exchange key) or a sender's (signing key)",
	UsageText: "tokenseal key export --label LABEL|--id HEX [-o FILE [--force]]",
	Flags: []cli.Flag{
		flagKeyLabel,
		flagKeyID,
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to `FILE` instead of stdout (refused if it exists, unless --force)"},
		&cli.BoolFlag{Name: "force", Usage: "overwrite FILE if it exists"},
	},
	Action: keyExport,
}

// keyFlag returns a lookup for the key pair --label or --id names
// (exactly one of them).
func keyFlag(c *cli.Context, cmd string) (func(*token.Token) (*token.Key, error), error) {
	label, idHex := c.String("label"), c.String("id")
	switch {
	case label != "" && idHex != "":
		return nil, usageErrorf("%s takes --label or --id, not both", cmd)
	case label != "":
		return func(tok *token.Token) (*token.Key, error) { return tok.FindKey(label) }, nil
	case idHex != "":
		id, err := hex.DecodeString(idHex)
		if err != nil || len(id) == 0 {
			return nil, usageErrorf("--id %q is not hex", idHex)
		}
		return func(tok *token.Token) (*token.Key, error) { return tok.FindKeyByID(id) }, nil
	}
	return nil, usageErrorf("%s needs --label or --id", cmd)
}

func keyExport(c *cli.Context) error {
	find, err := keyFlag(c, "key export")
	if err != nil {
		return err
	}
	if c.Args().Present() {
		return usageErrorf("key export takes no arguments")
	}
	tok, err := openToken(c)
	if err != nil {
		return err
	}
	defer tok.Close()
	k, err := find(tok)
	if err != nil {
		return err
	}
	out, err := exportPEM(k)
	if err != nil {
		return err
	}
	if err := tok.Close(); err != nil {
		return err
	}
	// The file is created only now that there is something to write.
	if o := c.String("output"); o != "" && o != "-" {
		return writeFileAtomic(o, out, c.Bool("force"))
	}
	_, err = c.App.Writer.Write(out)
	return err
}

// writeFileAtomic writes data to path as seal -o writes an envelope: an
// existing path is refused unless force, a symbolic link or other
// non-regular file always, and the file appears whole or not at all.
func writeFileAtomic(path string, data []byte, force bool) error {
	af, err := createOutput(path, force, 0o644)
	if err != nil {
		return err
	}
	defer af.Abort()
	if _, err := af.Write(data); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	return af.Commit(force, false)
}

// exportPEM renders the public key as a key file (docs/key-files.md):
// tokenseal's comment lines, which OpenSSL and Go's pem.Decode skip — the
// key's role (recipient for an exchange key, sender for a signing key),
// its label (escaped: a label is the token's string), its key-id (always
// SHA-256 of the SPKI, whatever the key's CKA_ID), and for RSA keys that
// can unwrap the OAEP hash the token undoes — then the PEM block. The
// public key is checked against the private key first (a replaced
// public-key object is refused).
func exportPEM(k *token.Key) ([]byte, error) {
	role, err := keyFileRole(k)
	if err != nil {
		return nil, err
	}
	if err := k.Check(); err != nil {
		return nil, err
	}
	id, err := envelope.KeyIDOf(k.Public())
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# tokenseal %s\n# label: %s\n# key-id: %s\n", role, printable(k.Label), id)
	if _, ok := k.Public().(*rsa.PublicKey); ok && k.Usage.CanExchange() {
		h, err := k.OAEPHash()
		if err != nil {
			return nil, err
		}
		name := "sha256"
		if h == crypto.SHA1 {
			name = "sha1"
		}
		fmt.Fprintf(&b, "# oaep-hash: %s\n", name)
	}
	if err := pem.Encode(&b, &pem.Block{Type: "PUBLIC KEY", Bytes: k.SPKI()}); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// keyFileRole is the role a key file marks a key with, from what the
// token lets the key do.
func keyFileRole(k *token.Key) (envelope.KeyRole, error) {
	switch u := k.Usage; {
	case u.CanExchange() && u.CanSign():
		return envelope.RoleRecipientSender, nil
	case u.CanExchange():
		return envelope.RoleRecipient, nil
	case u.CanSign():
		return envelope.RoleSender, nil
	}
	return 0, fmt.Errorf("%w: key %s may neither unwrap, derive nor sign (usage none): neither a recipient nor a sender could use it", token.ErrWrongKeyType, printable(k.Label))
}
