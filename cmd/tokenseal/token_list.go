package main

import (
	"fmt"
	"strings"

	"github.com/tokenseal/tokenseal/token"
	"github.com/urfave/cli/v2"
)

var tokenListCommand = &cli.Command{
	Name:   "list",
	Usage:  "list the module's slots and tokens (no PIN needed)",
	Action: tokenList,
}

func tokenList(c *cli.Context) error {
	if c.Args().Present() {
		return usageErrorf("token list takes no arguments")
	}
	module, toks, err := token.ListTokens(c.String("module"))
	if err != nil {
		return err
	}
	w := c.App.Writer
	fmt.Fprintf(w, "module: %s\n", module)
	if len(toks) == 0 {
		fmt.Fprintln(w, "no slots")
	}
	for _, t := range toks {
		if !t.Present {
			fmt.Fprintf(w, "slot %d: no token (%s)\n", t.Slot, printable(t.SlotDescription))
			continue
		}
		var flags []string
		if t.Initialized {
			flags = append(flags, "initialized")
		} else {
			flags = append(flags, "uninitialized")
		}
		if t.LoginRequired {
			flags = append(flags, "login-required")
		}
		if t.UserPINInit {
			flags = append(flags, "user-pin-set")
		}
		for _, f := range token.FlagNames(t.Flags) {
			switch f {
			case "CKF_USER_PIN_COUNT_LOW", "CKF_USER_PIN_FINAL_TRY", "CKF_USER_PIN_LOCKED":
				flags = append(flags, strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(f, "CKF_")), "_", "-"))
			}
		}
		fmt.Fprintf(w, "slot %d: label=%q serial=%s manufacturer=%q model=%q flags=%s\n",
			t.Slot, t.Label, printable(t.Serial), t.Manufacturer, t.Model, strings.Join(flags, ","))
	}
	return nil
}
