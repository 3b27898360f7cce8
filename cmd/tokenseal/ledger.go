package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/tokenseal/tokenseal/envelope"
)

var ledgerShowCommand = &cli.Command{
	Name:  "show",
	Usage: "list the replay ledger: senders, highest serial, window occupancy, last accepted time",
	Flags: []cli.Flag{flagStateDir, flagStateURL, &cli.BoolFlag{Name: "json", Usage: "print a JSON array"},
		&cli.BoolFlag{Name: "labels", Usage: "name the senders that are keys on your own token (trusted without trust add) token:LABEL (needs the PIN)"}},
	Action: ledgerShow,
}

var ledgerForgetCommand = &cli.Command{
	Name:      "forget",
	Usage:     "drop the ledger entries of sender NAME, or of some of its streams (its old envelopes become acceptable again)",
	UsageText: "tokenseal ledger forget [--yes] [--stream ID ...] NAME|KEY-ID",
	Flags: []cli.Flag{flagStateDir, flagStateURL,
		&cli.BoolFlag{Name: "yes", Usage: "do not ask for confirmation"},
		&cli.StringSliceFlag{Name: "stream", Usage: "forget only the stream `ID` (as 'ledger show' lists it; repeatable)"},
	},
	Action: ledgerForget,
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
	labels := map[envelope.KeyID]string{}
	if c.Bool("labels") {
		if labels, err = tokenLabels(c); err != nil {
			return err
		}
	}
	out := make([]ledgerJSON, 0, len(es))
	for _, e := range es {
		name := e.Name
		if l, ok := labels[envelope.KeyID(e.KeyID)]; ok && name == "" {
			name = "token:" + l
		}
		out = append(out, ledgerJSON{name, e.KeyIDHex(), e.StreamID, e.Highest, e.Occupancy, e.LastAccepted.UTC().Format(time.RFC3339)})
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, out)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SENDER\tKEY-ID\tSTREAM\tHIGHEST\tIN-WINDOW\tLAST-ACCEPTED")
	for _, e := range out {
		name := printable(e.Sender)
		if e.Sender == "" {
			name = "(untrusted)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\n", name, e.KeyID, e.StreamID, e.Highest, e.Occupancy, e.LastAccepted)
	}
	return tw.Flush()
}

func ledgerForget(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageErrorf("ledger forget takes NAME (a trusted name or a key id)")
	}
	name := c.Args().First()
	var streams []uint64
	for _, s := range c.StringSlice("stream") {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return usageErrorf("--stream %q is not a stream id (see 'tokenseal ledger show')", s)
		}
		streams = append(streams, n)
	}
	what := fmt.Sprintf("every accepted serial of %q", name)
	if len(streams) > 0 {
		what = fmt.Sprintf("the accepted serials of %q in stream(s) %s", name, strings.Join(c.StringSlice("stream"), ", "))
	}
	if !c.Bool("yes") {
		if !canAsk(c) {
			return usageErrorf("ledger forget needs --yes without a terminal to ask on (or with --batch)")
		}
		ok, err := confirm(fmt.Sprintf("Forget %s? Those old envelopes would be accepted again.", what))
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
	n, err := st.Forget(context.Background(), name, streams...)
	if err != nil {
		return err
	}
	if len(streams) > 0 && n < len(streams) {
		fmt.Fprintf(c.App.Writer, "forgot %d of the %d stream(s) given of %q (the others are not in the ledger)\n", n, len(streams), name)
		return nil
	}
	fmt.Fprintf(c.App.Writer, "forgot %d stream(s) of %q\n", n, name)
	return nil
}
