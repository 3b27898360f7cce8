package main

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"

	"github.com/tokenseal/tokenseal/token"
	"github.com/urfave/cli/v2"
)

var keyExportCommand = &cli.Command{
	Name:      "export",
	Usage:     "print a key's public key as PEM SubjectPublicKeyInfo (what senders seal to)",
	UsageText: "tokenseal key export --label LABEL [-o FILE]",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "label", Usage: "the key's `LABEL`"},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to `FILE` instead of stdout"},
	},
	Action: keyExport,
}

func keyExport(c *cli.Context) error {
	label := c.String("label")
	if label == "" {
		return usageErrorf("key export needs --label")
	}
	if c.Args().Present() {
		return usageErrorf("key export takes no arguments")
	}
	tok, err := openToken(c)
	if err != nil {
		return err
	}
	defer tok.Close()
	k, err := tok.FindKey(label)
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
// OpenSSL and Go's pem.Decode skip: recipient, label, key-id, and for RSA
// exchange keys the OAEP hash the token can undo (from ProbeOAEPHash).
func exportPEM(k *token.Key) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# tokenseal recipient\n# label: %s\n# key-id: %s\n", k.Label, hex.EncodeToString(k.ID))
	if _, ok := k.Public().(*rsa.PublicKey); ok && k.Usage == token.UsageExchange {
		h, _, err := k.ProbeOAEPHash()
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
