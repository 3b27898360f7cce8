package main

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/tokenseal/tokenseal/token"
	"github.com/urfave/cli/v2"
)

var keyGenerateCommand = &cli.Command{
	Name:      "generate",
	Usage:     "generate a key pair on the token",
	UsageText: "tokenseal key generate --label LABEL --type rsa-2048|rsa-3072|rsa-4096|p256|p384 --usage exchange|sign",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "label", Usage: "the key's `LABEL` (CKA_LABEL); must not exist yet"},
		&cli.StringFlag{Name: "type", Usage: "key `TYPE`: " + strings.Join(token.KeyTypes, ", "), Value: "p256"},
		&cli.StringFlag{Name: "usage", Usage: "`USAGE`: exchange (receive sealed files) or sign", Value: "exchange"},
	},
	Action: keyGenerate,
}

func keyGenerate(c *cli.Context) error {
	label, typ := c.String("label"), c.String("type")
	usage, uerr := token.ParseUsage(c.String("usage"))
	switch {
	case label == "":
		return usageErrorf("key generate needs --label")
	case !slices.Contains(token.KeyTypes, typ):
		return usageErrorf("unknown --type %q (want one of %s)", typ, strings.Join(token.KeyTypes, ", "))
	case uerr != nil:
		return usageErrorf("--usage: %v", uerr)
	case c.Args().Present():
		return usageErrorf("key generate takes no arguments")
	}
	tok, err := openToken(c)
	if err != nil {
		return err
	}
	defer tok.Close()
	k, err := tok.GenerateKey(label, typ, usage)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "generated %s %s key %q id=%s\n", k.Type, k.Usage, k.Label, hex.EncodeToString(k.ID))
	return tok.Close()
}
