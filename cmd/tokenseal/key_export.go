package main

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"

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
	Usage:     "print a key's public key as PEM SubjectPublicKeyInfo (what senders seal to)",
	UsageText: "tokenseal key export --label LABEL|--id HEX [-o FILE]",
	Flags: []cli.Flag{
		flagKeyLabel,
		flagKeyID,
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to `FILE` instead of stdout"},
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
		return os.WriteFile(o, out, 0o644)
	}
	_, err = c.App.Writer.Write(out)
	return err
}

// exportPEM renders the public key with tokenseal's comment header, which
// OpenSSL and Go's pem.Decode skip: recipient, label, key-id (always
// SHA-256 of the SPKI, whatever the key's CKA_ID), and for RSA keys that
// can unwrap the OAEP hash the token undoes. The public key is checked
// against the private key first (a replaced public-key object is
// refused).
func exportPEM(k *token.Key) ([]byte, error) {
	if err := k.Check(); err != nil {
		return nil, err
	}
	id, err := envelope.KeyIDOf(k.Public())
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# tokenseal recipient\n# label: %s\n# key-id: %s\n", k.Label, id)
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
