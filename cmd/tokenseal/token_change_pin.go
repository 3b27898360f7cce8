package main

import (
	"fmt"
	"os"

	"github.com/tokenseal/tokenseal/token"
	"github.com/urfave/cli/v2"
)

var tokenChangePINCommand = &cli.Command{
	Name:      "change-pin",
	Usage:     "change the token's user PIN (C_SetPIN)",
	UsageText: "tokenseal token change-pin [--new-pin-file FILE]",
	Description: "The current PIN comes from --pin-file, TOKENSEAL_PIN, the URI's pin-source or a no-echo prompt;\n" +
		"the new one from --new-pin-file, TOKENSEAL_NEW_PIN, or a no-echo prompt asked twice. Neither is\n" +
		"ever taken from the command line. A wrong current PIN exits 3 and shows the token's PIN flags.",
	Flags: []cli.Flag{
		&cli.StringFlag{
			Name:    "new-pin-file",
			Usage:   "read the new user PIN from `FILE` (one trailing newline is stripped); TOKENSEAL_NEW_PIN gives it directly",
			EnvVars: []string{"TOKENSEAL_NEW_PIN_FILE"},
		},
	},
	Action: tokenChangePIN,
}

func tokenChangePIN(c *cli.Context) error {
	if c.Args().Present() {
		return usageErrorf("token change-pin takes no arguments")
	}
	// Find a source for the new PIN before the old one is tried: a file
	// or the environment is read now, a prompt comes after the login.
	var newPIN func() (string, error)
	switch f := c.String("new-pin-file"); {
	case f != "":
		p, err := token.ReadPINFile(f)
		if err != nil {
			return err
		}
		newPIN = func() (string, error) { return p, nil }
	case os.Getenv("TOKENSEAL_NEW_PIN") != "":
		p := os.Getenv("TOKENSEAL_NEW_PIN")
		newPIN = func() (string, error) { return p, nil }
	case isTerminal(c.App.Reader):
		newPIN = func() (string, error) { return readNew("user PIN") }
	default:
		return fmt.Errorf("%w: no new pin: use --new-pin-file, TOKENSEAL_NEW_PIN, or a terminal", token.ErrNoPIN)
	}
	cfg, err := tokenConfig(c)
	if err != nil {
		return err
	}
	info, err := token.ChangePIN(cfg, newPIN)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "changed the user PIN of token %q serial=%s slot=%d\n", info.Label, printable(info.Serial), info.Slot)
	switch {
	case c.String("pin-file") != "":
		fmt.Fprintf(c.App.ErrWriter, "tokenseal: hint: %s still holds the old PIN\n", c.String("pin-file"))
	case os.Getenv("TOKENSEAL_PIN") != "":
		fmt.Fprintln(c.App.ErrWriter, "tokenseal: hint: TOKENSEAL_PIN still holds the old PIN")
	}
	return nil
}
