package main

import (
	"encoding/hex"
	"fmt"
	"text/tabwriter"

	"github.com/tokenseal/tokenseal/envelope"
	"github.com/urfave/cli/v2"
)

var keyListCommand = &cli.Command{
	Name:  "list",
	Usage: "list the key pairs on the token",
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "json", Usage: "print a JSON array instead of a table"},
	},
	Action: keyList,
}

// keyJSON is one key in `key list --json`.
type keyJSON struct {
	Label            string `json:"label"`
	ID               string `json:"id"`
	Type             string `json:"type"`
	Bits             int    `json:"bits"`
	Curve            string `json:"curve,omitempty"`
	Usage            string `json:"usage"`
	Fingerprint      string `json:"fingerprint_sha256"`
	Sensitive        bool   `json:"sensitive"`
	NeverExtractable bool   `json:"never_extractable"`
	MadeByTokenseal  bool   `json:"made_by_tokenseal"`
}

func keyList(c *cli.Context) error {
	if c.Args().Present() {
		return usageErrorf("key list takes no arguments")
	}
	tok, err := openToken(c)
	if err != nil {
		return err
	}
	defer tok.Close()
	keys, err := tok.Keys()
	if err != nil {
		return err
	}
	out := make([]keyJSON, 0, len(keys))
	for _, k := range keys {
		fp, err := envelope.KeyIDOf(k.Public())
		if err != nil {
			return err
		}
		out = append(out, keyJSON{
			Label: k.Label, ID: hex.EncodeToString(k.ID), Type: k.Type, Bits: k.Bits, Curve: k.Curve,
			Usage: k.Usage.String(), Fingerprint: fp.String(),
			Sensitive: k.Sensitive, NeverExtractable: k.NeverExtractable, MadeByTokenseal: k.Generated(),
		})
	}
	if c.Bool("json") {
		if err := printJSON(c.App.Writer, out); err != nil {
			return err
		}
		return tok.Close()
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LABEL\tTYPE\tSIZE\tUSAGE\tSENSITIVE\tNEVER-EXTRACTABLE\tMADE-BY\tID")
	for _, k := range out {
		size := fmt.Sprint(k.Bits)
		if k.Curve != "" {
			size = k.Curve
		}
		maker := "other"
		if k.MadeByTokenseal {
			maker = "tokenseal"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", printable(k.Label), k.Type, size, plainUsage(k.Usage),
			yesNo(k.Sensitive), yesNo(k.NeverExtractable), maker, idColumn(k.ID, k.Fingerprint))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return tok.Close()
}

// plainUsage says what a key is for in the words of key files and seal:
// an exchange key is a recipient's, a signing key a sender's.
func plainUsage(usage string) string {
	switch usage {
	case "exchange":
		return "exchange (recipient)"
	case "sign":
		return "sign (sender)"
	case "exchange+sign":
		return "exchange+sign (recipient, sender)"
	}
	return usage + " (unusable)"
}

// idColumn is a key's one id column: its CKA_ID, which for the keys
// tokenseal makes is the key id (SHA-256 of the SPKI) that envelopes name;
// for a key whose CKA_ID is something else (another tool's), the key id
// follows it.
func idColumn(ckaID, keyID string) string {
	switch {
	case ckaID == keyID:
		return ckaID
	case ckaID == "":
		return "- (key id " + keyID + ")"
	}
	return ckaID + " (key id " + keyID + ")"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
