package main

import (
	"fmt"
	"os"

	"github.com/tokenseal/tokenseal/token"
	"github.com/urfave/cli/v2"
)

var tokenInitCommand = &cli.Command{
	Name:      "init",
	Usage:     "initialize a token (SoftHSM2 and others that allow it) and set its user PIN",
	UsageText: "tokenseal token init --label LABEL [--so-pin-file FILE]",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "label", Usage: "the new token's `LABEL` (up to 32 bytes)"},
		&cli.StringFlag{
			Name:    "so-pin-file",
			Usage:   "read the security officer PIN from `FILE`; TOKENSEAL_SO_PIN gives it directly",
			EnvVars: []string{"TOKENSEAL_SO_PIN_FILE"},
		},
	},
	Action: tokenInit,
}

func tokenInit(c *cli.Context) error {
	label := c.String("label")
	if label == "" || len(label) > 32 {
		return usageErrorf("token init needs --label of 1 to 32 bytes")
	}
	if c.Args().Present() {
		return usageErrorf("token init takes no arguments")
	}
	var so string
	var err error
	switch {
	case c.String("so-pin-file") != "":
		so, err = token.ReadPINFile(c.String("so-pin-file"))
	case os.Getenv("TOKENSEAL_SO_PIN") != "":
		so = os.Getenv("TOKENSEAL_SO_PIN")
	case isTerminal(c.App.Reader):
		so, err = readNew("security officer PIN")
	default:
		err = fmt.Errorf("%w: no security officer pin: use --so-pin-file or TOKENSEAL_SO_PIN", token.ErrNoPIN)
	}
	if err != nil {
		return err
	}
	user, err := userPIN(c)
	if err != nil {
		return err
	}
	if user == "" {
		if !isTerminal(c.App.Reader) {
			return fmt.Errorf("%w: no user pin: use --pin-file or TOKENSEAL_PIN", token.ErrNoPIN)
		}
		if user, err = readNew("user PIN"); err != nil {
			return err
		}
	}
	info, err := token.InitToken(c.String("module"), label, so, user)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "initialized token %q serial=%s slot=%d\n", info.Label, printable(info.Serial), info.Slot)
	return nil
}

// readNew asks for a new secret twice on the terminal.
func readNew(what string) (string, error) {
	a, err := readSecret("new " + what + ": ")
	if err != nil {
		return "", err
	}
	b, err := readSecret("repeat " + what + ": ")
	if err != nil {
		return "", err
	}
	if a != b {
		return "", usageErrorf("the two %ss differ", what)
	}
	return a, nil
}
