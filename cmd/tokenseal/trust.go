package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/tokenseal/tokenseal/envelope/state"
	"github.com/urfave/cli/v2"
)

var trustAddCommand = &cli.Command{
	Name:      "add",
	Usage:     "trust the sender whose signing public key is in PUBKEY, under NAME",
	UsageText: "tokenseal trust add NAME PUBKEY.pem",
	Flags:     []cli.Flag{flagStateDir, flagStateURL},
	Action:    trustAdd,
}

var trustListCommand = &cli.Command{
	Name:   "list",
	Usage:  "list trusted senders",
	Flags:  []cli.Flag{flagStateDir, flagStateURL, &cli.BoolFlag{Name: "json", Usage: "print a JSON array"}},
	Action: trustList,
}

var trustRemoveCommand = &cli.Command{
	Name:      "remove",
	Usage:     "stop trusting the sender NAME (its ledger entries stay)",
	UsageText: "tokenseal trust remove NAME",
	Flags:     []cli.Flag{flagStateDir, flagStateURL},
	Action:    trustRemove,
}

func trustAdd(c *cli.Context) error {
	if c.NArg() != 2 {
		return usageErrorf("trust add takes NAME and PUBKEY")
	}
	pub, err := readPublicKey(c.Args().Get(1))
	if err != nil {
		return fmt.Errorf("sender key %s: %w", c.Args().Get(1), err)
	}
	st, err := openState(c)
	if err != nil {
		return err
	}
	defer st.Close()
	t, err := st.AddTrusted(context.Background(), c.Args().Get(0), pub)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "trusted %q key-id=%s\n", t.Name, hex.EncodeToString(t.KeyID[:]))
	return nil
}

// trustJSON is one sender in `trust list --json`.
type trustJSON struct {
	Name  string `json:"name"`
	KeyID string `json:"key_id"`
	Added string `json:"added"`
}

func trustList(c *cli.Context) error {
	if c.Args().Present() {
		return usageErrorf("trust list takes no arguments")
	}
	st, err := openState(c)
	if err != nil {
		return err
	}
	defer st.Close()
	ts, err := st.ListTrusted(context.Background())
	if err != nil {
		return err
	}
	out := make([]trustJSON, 0, len(ts))
	for _, t := range ts {
		out = append(out, trustJSON{t.Name, hex.EncodeToString(t.KeyID[:]), t.Added.UTC().Format(time.RFC3339)})
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, out)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKEY-ID\tADDED")
	for _, t := range out {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Name, t.KeyID, t.Added)
	}
	return tw.Flush()
}

func trustRemove(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageErrorf("trust remove takes NAME")
	}
	st, err := openState(c)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.RemoveTrusted(context.Background(), c.Args().First()); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "removed %q\n", c.Args().First())
	return nil
}

var _ = state.ErrNotFound
