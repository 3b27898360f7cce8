package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
)

var ledgerShowCommand = &cli.Command{
	Name:   "show",
	Usage:  "list the replay ledger: senders, highest serial, window occupancy, last accepted time",
	Flags:  []cli.Flag{flagStateDir, flagStateURL, &cli.BoolFlag{Name: "json", Usage: "print a JSON array"}},
	Action: ledgerShow,
}

var ledgerForgetCommand = &cli.Command{
	Name:      "forget",
	Usage:     "drop the ledger entries of sender NAME (its old envelopes become acceptable again)",
	UsageText: "tokenseal ledger forget [--yes] NAME",
	Flags:     []cli.Flag{flagStateDir, flagStateURL, &cli.BoolFlag{Name: "yes", Usage: "do not ask for confirmation"}},
	Action:    ledgerForget,
}

// ledgerJSON is one entry of `ledger show --json`.
type ledgerJSON struct {
	Sender       string `json:"sender"`
	KeyID        string `json:"key_id"`
	StreamID     uint64 `json:"stream_id"`
	Highest      uint64 `json:"highest_serial"`
	Occupancy    int    `json:"window_occupancy"`
	LastAccepted string `json:"last_accepted"`
}

func ledgerShow(c *cli.Context) error {
	if c.Args().Present() {
		return usageErrorf("ledger show takes no arguments")
	}
	st, err := openState(c)
	if err != nil {
		return err
	}
	defer st.Close()
	es, err := st.Ledger(context.Background())
	if err != nil {
		return err
	}
	out := make([]ledgerJSON, 0, len(es))
	for _, e := range es {
		out = append(out, ledgerJSON{e.Name, e.KeyIDHex(), e.StreamID, e.Highest, e.Occupancy, e.LastAccepted.UTC().Format(time.RFC3339)})
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SENDER\tKEY-ID\tSTREAM\tHIGHEST\tIN-WINDOW\tLAST-ACCEPTED")
	for _, e := range out {
		name := e.Sender
		if name == "" {
			name = "(untrusted)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\n", name, e.KeyID[:16], e.StreamID, e.Highest, e.Occupancy, e.LastAccepted)
	}
	return tw.Flush()
}

func ledgerForget(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageErrorf("ledger forget takes NAME")
	}
	name := c.Args().First()
	if !c.Bool("yes") {
		if !isTerminal(c.App.Reader) {
			return usageErrorf("ledger forget needs --yes when not on a terminal")
		}
		ok, err := confirm(fmt.Sprintf("Forget every accepted serial of %q? Its old envelopes would be accepted again.", name))
		if err != nil {
			return err
		}
		if !ok {
			return usageErrorf("not confirmed")
		}
	}
	st, err := openState(c)
	if err != nil {
		return err
	}
	defer st.Close()
	n, err := st.Forget(context.Background(), name)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "forgot %d stream(s) of %q\n", n, name)
	return nil
}
