package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"
)

var keyDeleteCommand = &cli.Command{
	Name:      "delete",
	Usage:     "delete a key pair from the token (asks on a terminal; --yes otherwise)",
	UsageText: "tokenseal key delete --label LABEL|--id HEX [--yes]",
	Flags: []cli.Flag{
		flagKeyLabel,
		flagKeyID,
		&cli.BoolFlag{Name: "yes", Usage: "delete without asking"},
	},
	Action: keyDelete,
}

var errNotConfirmed = errors.New("not deleted")

func keyDelete(c *cli.Context) error {
	find, err := keyFlag(c, "key delete")
	if err != nil {
		return err
	}
	if c.Args().Present() {
		return usageErrorf("key delete takes no arguments")
	}
	if !c.Bool("yes") && !isTerminal(c.App.Reader) {
		return usageErrorf("key delete needs --yes when not run on a terminal")
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
	if !c.Bool("yes") {
		ok, err := confirm(fmt.Sprintf("delete %s key %q (id %x) from token %q? This cannot be undone.", k.Type, k.Label, k.ID, tok.Info().Label))
		if err != nil {
			return err
		}
		if !ok {
			return errNotConfirmed
		}
	}
	if err := tok.DeleteKey(k); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "deleted key %q\n", k.Label)
	return tok.Close()
}
